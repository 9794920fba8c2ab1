package api

import (
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultHostAllowlist is Web3Signer's default for --http-host-allowlist and
// --metrics-host-allowlist.
const DefaultHostAllowlist = "localhost,127.0.0.1"

// HostAllowlist is the set of Host header values a listener answers (a defence against DNS
// rebinding: a web page whose name an attacker re-points at 127.0.0.1 reaches the listener with
// its own name in Host). Hosts compare without their port, case-insensitively, with one
// trailing dot ignored; IPv6 literals are written with or without brackets and compare as
// addresses ("[0:0::1]" is "::1").
type HostAllowlist struct {
	flag  string // the flag that configures it, named in refusals
	any   bool
	hosts map[string]bool
}

// ParseHostAllowlist parses a comma-separated list of host names and addresses; "*" or "all"
// (anywhere in the list) allows any Host. flag names the option in error messages and refusals.
func ParseHostAllowlist(flag, list string) (*HostAllowlist, error) {
	a := &HostAllowlist{flag: flag, hosts: map[string]bool{}}
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimSpace(e)
		switch strings.ToLower(e) {
		case "":
			continue
		case "*", "all":
			a.any = true
			continue
		}
		h, ok := normalizeAllowEntry(e)
		if !ok {
			return nil, fmt.Errorf("--%s: %q is not a host name or address (give hosts without ports; IPv6 as ::1 or [::1])", flag, e)
		}
		a.hosts[h] = true
	}
	if !a.any && len(a.hosts) == 0 {
		return nil, fmt.Errorf("--%s is empty: give host names (default %s) or * for any", flag, DefaultHostAllowlist)
	}
	return a, nil
}

// String lists the allowed hosts (for the startup log).
func (a *HostAllowlist) String() string {
	if a.any {
		return "*"
	}
	out := make([]string, 0, len(a.hosts))
	for h := range a.hosts {
		out = append(out, h)
	}
	return strings.Join(out, ",")
}

// Any reports whether every Host is allowed.
func (a *HostAllowlist) Any() bool { return a.any }

func normalizeAllowEntry(e string) (string, bool) {
	if strings.HasPrefix(e, "[") {
		if !strings.HasSuffix(e, "]") {
			return "", false
		}
		e = e[1 : len(e)-1]
	}
	if strings.Contains(e, ":") { // only an IPv6 literal may hold a colon here
		ip, err := netip.ParseAddr(e)
		if err != nil || !ip.Is6() {
			return "", false
		}
		return ip.WithZone("").String(), true
	}
	h, ok := normalizeName(e)
	return h, ok && h != ""
}

// normalizeName lower-cases a host name or IPv4 address and drops one trailing dot.
func normalizeName(h string) (string, bool) {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "", false
		}
	}
	return h, true
}

// hostOf returns the host part of a Host header value, normalised like the allowlist entries;
// ok is false for a malformed value (a bare IPv6 literal, a non-numeric port, stray characters).
func hostOf(hostHeader string) (string, bool) {
	h := hostHeader
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", false
		}
		ip, err := netip.ParseAddr(h[1:end])
		if err != nil || !ip.Is6() || !validPort(h[end+1:]) {
			return "", false
		}
		return ip.WithZone("").String(), true
	}
	name, port, hasPort := strings.Cut(h, ":")
	if hasPort && !validPort(":"+port) {
		return "", false
	}
	return normalizeName(name)
}

// validPort accepts "", ":" (an empty port, which RFC 3986 allows) or ":<digits>".
func validPort(s string) bool {
	if s == "" || s == ":" {
		return true
	}
	if s[0] != ':' {
		return false
	}
	_, err := strconv.ParseUint(s[1:], 10, 16)
	return err == nil
}

// Allows reports whether a request with this Host header value may be answered.
func (a *HostAllowlist) Allows(hostHeader string) bool {
	if a == nil || a.any {
		return true
	}
	h, ok := hostOf(hostHeader)
	return ok && h != "" && a.hosts[h]
}

// probeRoutes answer without a Host check. They carry no key or signing information (a fixed
// "OK", or ready/not ready), and load balancers and Kubernetes probes reach them by pod IP or
// with no Host at all, so checking them would only break health checks. /healthcheck is not
// exempt: it reports key counts and errors.
var probeRoutes = map[string]bool{"/upcheck": true, "/livez": true, "/readyz": true}

// HostGuard answers 403 (JSON) to a request whose Host is not in allow, except on the probe
// routes; a nil allow lets everything through.
func HostGuard(allow *HostAllowlist, log *slog.Logger, next http.Handler) http.Handler {
	if allow == nil || allow.any {
		return next
	}
	var lastLog atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow.Allows(r.Host) || (probeRoutes[r.URL.Path] && (r.Method == http.MethodGet || r.Method == http.MethodHead)) {
			next.ServeHTTP(w, r)
			return
		}
		shown := r.Host
		if len(shown) > 100 {
			shown = shown[:100] + "…"
		}
		// At most one log line a second: a flood of refused requests must not flood the log.
		if now := time.Now().UnixNano(); log != nil && now-lastLog.Load() > int64(time.Second) {
			lastLog.Store(now)
			log.Warn("request refused: Host not in allowlist", "host", shown, "remote", r.RemoteAddr,
				"path", r.URL.Path, "allowlist", "--"+allow.flag)
		}
		writeError(w, http.StatusForbidden, fmt.Sprintf("Host not authorized: %q is not in --%s", shown, allow.flag))
	})
}

// isJSONContentType reports whether a Content-Type header value is application/json (any case,
// with or without parameters such as charset).
func isJSONContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil && err != mime.ErrInvalidMediaParameter {
		return false
	}
	return mt == "application/json"
}

// requireJSON answers 415 unless the request declares Content-Type: application/json. A browser
// can send a cross-origin POST without a CORS preflight only with text/plain, form or multipart
// bodies; application/json needs a preflight, which Vigil never grants (OPTIONS is 405 without
// CORS headers). So a web page cannot get a signature (or a keymanager change) through a
// visitor's browser. Every validator client sends application/json.
func requireJSON(w http.ResponseWriter, r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if isJSONContentType(ct) {
		return true
	}
	if ct == "" {
		writeError(w, http.StatusUnsupportedMediaType, "missing Content-Type: send Content-Type: application/json")
		return false
	}
	if len(ct) > 100 {
		ct = ct[:100] + "…"
	}
	writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q is not supported: send Content-Type: application/json", ct))
	return false
}
