package api

import (
	"errors"
	"net/http"
	"path/filepath"
	"regexp"
	"time"

	"github.com/vigil-signer/vigil/signer"
)

// DefaultReloadTimeout bounds one reload started by POST /reload (Web3Signer's --reload-timeout).
const DefaultReloadTimeout = 30 * time.Minute

// Reloader is what POST/GET /reload drive (the key loader, keyset.Loader).
type Reloader interface {
	// Reload begins a reload in the background; signer.ErrReloadRunning when one runs.
	Reload(timeout time.Duration) error
	Status() signer.ReloadStatus
}

// startReload: 202 when a reload starts, 409 while one is running (Web3Signer answers 200 and
// queues; refusing makes the outcome observable and never stacks reloads).
func (s *server) startReload(w http.ResponseWriter, _ *http.Request) {
	timeout := s.ReloadTimeout
	if timeout <= 0 {
		timeout = DefaultReloadTimeout
	}
	if err := s.Reloader.Reload(timeout); err != nil {
		if errors.Is(err, signer.ErrReloadRunning) {
			writeError(w, http.StatusConflict, err.Error()+"; GET /reload for its status")
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, reloadJSON(s.Reloader.Status()))
}

func (s *server) reloadStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, reloadJSON(s.Reloader.Status()))
}

type reloadSourceJSON struct {
	Name   string   `json:"name"`
	Status string   `json:"status"` // UP or DOWN
	Keys   int      `json:"keys"`
	Kept   int      `json:"keys_kept,omitempty"`
	Error  string   `json:"error,omitempty"`
	Errors []string `json:"errors,omitempty"`
	TookMS int64    `json:"took_ms"`
}

type reloadStatusJSON struct {
	Status   string             `json:"status"`
	Started  *time.Time         `json:"started,omitempty"`
	Finished *time.Time         `json:"finished,omitempty"`
	Keys     int                `json:"keys"`
	Added    int                `json:"added"`
	Removed  int                `json:"removed"`
	Kept     int                `json:"kept"`
	Error    string             `json:"error,omitempty"`
	Sources  []reloadSourceJSON `json:"sources"`
}

func reloadJSON(st signer.ReloadStatus) reloadStatusJSON {
	out := reloadStatusJSON{Status: string(st.State), Keys: st.Keys, Added: st.Added, Removed: st.Removed,
		Kept: st.Kept, Error: st.Error, Sources: []reloadSourceJSON{}}
	if !st.Started.IsZero() {
		out.Started = &st.Started
	}
	if !st.Finished.IsZero() {
		out.Finished = &st.Finished
	}
	for _, r := range st.Sources {
		j := reloadSourceJSON{Name: r.Name, Status: updown(r.OK()), Keys: r.Loaded, Kept: r.Kept, TookMS: r.Took.Milliseconds()}
		if r.Err != nil {
			j.Error = publicSourceError(r.Err)
		}
		for _, e := range r.Errors {
			j.Errors = append(j.Errors, publicLoadError(e))
		}
		out.Sources = append(out.Sources, j)
	}
	return out
}

// Key-source failures as the unauthenticated /healthcheck and GET /reload show them: the item's
// base name and a reason from the error vocabulary, never the absolute path of a key file, a
// password file or a key config directory, nor the address of Vault. The key loader logs the
// full error (path and address included) when the failure happens.

// publicReason says why err happened without its paths or addresses: the error's own text (the
// keystore and store errors carry no secrets by contract), with every address hidden and every
// absolute path shortened to its base name. Malformed-key errors name the field only.
func publicReason(err error) string {
	var me *signer.MalformedError
	if errors.As(err, &me) {
		return me.Error()
	}
	return publicText(err.Error())
}

var (
	absPath = regexp.MustCompile(`(^|[\s'"(=])(/[^\s:'"()]+)`)
	// host names without a port: DNS lookups, certificate names, pgx's "host=… user=…".
	namedHost = regexp.MustCompile(`(lookup |valid for |, not |host=|user=|database=|server name |hostname )[^\s,;:'"()` + "`" + `]+`)
	address   = regexp.MustCompile(`[a-z][a-z0-9+.-]*://[^\s'"(),:/]+(:[0-9]+)?(/[^\s'"(),:]*)?|\[?[0-9A-Za-z.:-]+\]?:[0-9]{1,5}\b`)
)

// publicText hides addresses and shortens absolute paths to base names in an error message: the
// unauthenticated health routes name things, never where they live (the log has the full text).
func publicText(msg string) string {
	msg = address.ReplaceAllString(msg, "(address)")
	msg = namedHost.ReplaceAllString(msg, "${1}(address)")
	return absPath.ReplaceAllStringFunc(msg, func(m string) string {
		sub := absPath.FindStringSubmatch(m)
		return sub[1] + filepath.Base(sub[2])
	})
}

// publicLoadError is an item failure as "<base name>: <reason>".
func publicLoadError(e signer.LoadError) string {
	return publicItem(e.Item) + ": " + publicReason(e.Err)
}

// publicSourceError is a whole-source failure (Vault unreachable, HSM not logged in).
func publicSourceError(err error) string { return publicReason(err) }

// publicItem is the last element of an item name: a file's base name, a Vault secret's name
// (vault:<mount>/<path>/0x…), an HSM label.
func publicItem(item string) string {
	b := filepath.Base(item)
	if b == "." || b == string(filepath.Separator) {
		return "(unnamed item)"
	}
	return b
}
