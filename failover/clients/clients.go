// Package clients is the set of validator clients (VCs) Vigil serves, from the clients file
// (--clients-file, YAML, hot reloadable): each client's name, how a request is attributed to it,
// and what the failover controller needs to reach it.
//
// A request is attributed to a client by, in this order: the listener it arrived on (a client's
// own `listen` address: works with every VC), its verified TLS client certificate (subject
// common name or a SAN DNS name, e-mail or URI equal to one of the client's `tls_names`), or its
// bearer token (`token_file`). Names, listen addresses, certificate names and tokens are unique
// across the file, so one credential names at most one client. The api package resolves the
// identity (Set implements its ClientIdentifier); the signer decides what the client may do.
//
// Invariant: a Set never changes after Parse; Registry swaps whole sets, so a request sees one
// consistent file.
package clients

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync/atomic"

	"github.com/goccy/go-yaml"
)

// Role is what a client does for its keys.
type Role string

const (
	// Active clients sign for the keys assigned to them.
	Active Role = "active"
	// Standby clients take over the keys of a failed active client.
	Standby Role = "standby"
)

// Client is one validator client of the clients file.
type Client struct {
	Name     string   `yaml:"name"`
	Role     Role     `yaml:"role"`     // active (default) or standby
	Priority int      `yaml:"priority"` // among standbys: lower first
	Listen   string   `yaml:"listen"`   // host:port of the client's own signing listener ("" none)
	TLSNames []string `yaml:"tls_names"`
	// TokenFile holds the bearer token the client sends on signing requests ("" none).
	TokenFile string `yaml:"token_file"`
	// KeymanagerURL is the VC's keymanager API (remotekeys), with its bearer token in
	// KeymanagerTokenFile; SignerURL is the URL by which that VC reaches Vigil (given to it
	// with every key imported into it).
	KeymanagerURL       string `yaml:"keymanager_url"`
	KeymanagerTokenFile string `yaml:"keymanager_token_file"`
	SignerURL           string `yaml:"signer_url"`

	tokenHash [sha256.Size]byte
	hasToken  bool
}

// HasToken reports whether the client authenticates with a bearer token.
func (c *Client) HasToken() bool { return c.hasToken }

type file struct {
	Clients []Client `yaml:"clients"`
}

// Set is one parsed, validated clients file.
type Set struct {
	clients []*Client // sorted by name
	byName  map[string]*Client
	byCert  map[string]*Client
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Parse reads a clients file's content; relative token file paths are relative to dir.
func Parse(data []byte, dir string) (*Set, error) {
	var f file
	if err := yaml.UnmarshalWithOptions(data, &f, yaml.DisallowUnknownField()); err != nil {
		return nil, fmt.Errorf("clients file: %v", err)
	}
	s := &Set{byName: map[string]*Client{}, byCert: map[string]*Client{}}
	listens := map[string]string{}
	tokens := map[[sha256.Size]byte]string{}
	for i := range f.Clients {
		c := f.Clients[i]
		where := fmt.Sprintf("clients[%d]", i)
		if c.Name != "" {
			where = fmt.Sprintf("client %q", c.Name)
		}
		switch {
		case !nameRE.MatchString(c.Name):
			return nil, fmt.Errorf("clients file: %s: name must be 1-63 letters, digits, '.', '_' or '-'", where)
		case s.byName[c.Name] != nil:
			return nil, fmt.Errorf("clients file: client %q is listed twice", c.Name)
		case c.Role == "":
			c.Role = Active
		case c.Role != Active && c.Role != Standby:
			return nil, fmt.Errorf("clients file: %s: role %q: want active or standby", where, c.Role)
		}
		if c.Listen != "" {
			if _, _, err := net.SplitHostPort(c.Listen); err != nil {
				return nil, fmt.Errorf("clients file: %s: listen %q: want host:port", where, c.Listen)
			}
			if other, dup := listens[c.Listen]; dup {
				return nil, fmt.Errorf("clients file: clients %q and %q share listen %s", other, c.Name, c.Listen)
			}
			listens[c.Listen] = c.Name
		}
		for _, n := range c.TLSNames {
			if n == "" {
				return nil, fmt.Errorf("clients file: %s: empty tls_names entry", where)
			}
			if other := s.byCert[n]; other != nil {
				return nil, fmt.Errorf("clients file: clients %q and %q share the certificate name %q", other.Name, c.Name, n)
			}
		}
		for _, u := range []struct{ key, v string }{{"keymanager_url", c.KeymanagerURL}, {"signer_url", c.SignerURL}} {
			if u.v == "" {
				continue
			}
			p, err := url.Parse(u.v)
			if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				return nil, fmt.Errorf("clients file: %s: %s %q: want an http:// or https:// URL", where, u.key, u.v)
			}
		}
		if c.TokenFile != "" {
			tok, err := readSecret(dir, c.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("clients file: %s: token_file: %v", where, err)
			}
			c.tokenHash, c.hasToken = sha256.Sum256(tok), true
			clear(tok)
			if other, dup := tokens[c.tokenHash]; dup {
				return nil, fmt.Errorf("clients file: clients %q and %q have the same token", other, c.Name)
			}
			tokens[c.tokenHash] = c.Name
		}
		if c.KeymanagerTokenFile != "" {
			tok, err := readSecret(dir, c.KeymanagerTokenFile)
			if err != nil {
				return nil, fmt.Errorf("clients file: %s: keymanager_token_file: %v", where, err)
			}
			clear(tok)
		}
		cp := c
		s.byName[c.Name] = &cp
		for _, n := range c.TLSNames {
			s.byCert[n] = &cp
		}
		s.clients = append(s.clients, &cp)
	}
	sort.Slice(s.clients, func(i, j int) bool { return s.clients[i].Name < s.clients[j].Name })
	return s, nil
}

// readSecret reads a one-line secret file (surrounding white space trimmed; not empty).
func readSecret(dir, path string) ([]byte, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return nil, errors.New("the file is empty")
	}
	if bytes.ContainsAny(t, " \t\r\n") {
		return nil, errors.New("the token must be one word")
	}
	out := append([]byte(nil), t...)
	clear(b)
	return out, nil
}

// Load reads and parses a clients file.
func Load(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("clients file: %w", err)
	}
	return Parse(data, filepath.Dir(path))
}

// Clients lists the clients by name.
func (s *Set) Clients() []*Client { return s.clients }

// Get returns the client called name.
func (s *Set) Get(name string) (*Client, bool) {
	c, ok := s.byName[name]
	return c, ok
}

// Configured reports whether any client is configured (then unidentified requests are refused).
func (s *Set) Configured() bool { return s != nil && len(s.clients) > 0 }

// ByToken returns the client whose token is token. It compares against every client's token
// hash in constant time (no early exit), so timing says nothing about which tokens exist.
func (s *Set) ByToken(token string) (string, bool) {
	h := sha256.Sum256([]byte(token))
	found := ""
	for _, c := range s.clients {
		if c.hasToken && subtle.ConstantTimeCompare(h[:], c.tokenHash[:]) == 1 {
			found = c.Name
		}
	}
	return found, found != ""
}

// ByCertificate returns the client a verified client certificate names: its subject common
// name, or one of its SAN DNS names, e-mail addresses or URIs, equal to a client's tls_names.
// A certificate whose names point at two different clients names none.
func (s *Set) ByCertificate(cert *x509.Certificate) (string, bool) {
	names := append([]string{cert.Subject.CommonName}, cert.DNSNames...)
	names = append(names, cert.EmailAddresses...)
	for _, u := range cert.URIs {
		names = append(names, u.String())
	}
	found := ""
	for _, n := range names {
		if c := s.byCert[n]; c != nil && n != "" {
			if found != "" && found != c.Name {
				return "", false
			}
			found = c.Name
		}
	}
	return found, found != ""
}

// Registry holds the current Set and swaps it on reload.
type Registry struct {
	path string
	cur  atomic.Pointer[Set]
}

// NewRegistry loads path (an error if it does not parse).
func NewRegistry(path string) (*Registry, error) {
	s, err := Load(path)
	if err != nil {
		return nil, err
	}
	r := &Registry{path: path}
	r.cur.Store(s)
	return r, nil
}

// Current is the set in force.
func (r *Registry) Current() *Set { return r.cur.Load() }

// Reload parses the file again; a file that does not parse leaves the current set in force. It
// reports what cannot change without a restart (listen addresses).
func (r *Registry) Reload() (restartNeeded []string, err error) {
	s, err := Load(r.path)
	if err != nil {
		return nil, err
	}
	old := r.cur.Load()
	for _, c := range s.clients {
		if o, ok := old.byName[c.Name]; !ok || o.Listen != c.Listen {
			if c.Listen != "" {
				restartNeeded = append(restartNeeded, c.Name+" listen "+c.Listen)
			}
		}
	}
	for _, o := range old.clients {
		if c, ok := s.byName[o.Name]; o.Listen != "" && (!ok || c.Listen != o.Listen) {
			restartNeeded = append(restartNeeded, o.Name+" listener "+o.Listen+" stays until a restart")
		}
	}
	r.cur.Store(s)
	return restartNeeded, nil
}

// ByToken implements the api's ClientIdentifier over the current set.
func (r *Registry) ByToken(token string) (string, bool) { return r.Current().ByToken(token) }

// ByCertificate implements the api's ClientIdentifier over the current set.
func (r *Registry) ByCertificate(c *x509.Certificate) (string, bool) {
	return r.Current().ByCertificate(c)
}

// Configured implements the api's ClientIdentifier over the current set.
func (r *Registry) Configured() bool { return r.Current().Configured() }

// Known reports whether name is a client of the current set (a listener's client removed by a
// reload no longer identifies its requests).
func (r *Registry) Known(name string) bool {
	_, ok := r.Current().Get(name)
	return ok
}
