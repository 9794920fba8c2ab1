package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/vigil-signer/vigil/signer"
)

// DefaultReloadTimeout bounds one reload started by POST /reload (Web3Signer's --reload-timeout).
const DefaultReloadTimeout = 30 * time.Minute

// Reloader is what POST/GET /reload drive (signer.KeyLoader).
type Reloader interface {
	// Start begins a reload in the background; signer.ErrReloadRunning when one runs.
	Start(timeout time.Duration) error
	Status() signer.ReloadStatus
}

// startReload: 202 when a reload starts, 409 while one is running (Web3Signer answers 200 and
// queues; refusing makes the outcome observable and never stacks reloads).
func (s *server) startReload(w http.ResponseWriter, _ *http.Request) {
	timeout := s.ReloadTimeout
	if timeout <= 0 {
		timeout = DefaultReloadTimeout
	}
	if err := s.Reloader.Start(timeout); err != nil {
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
	Status     string             `json:"status"`
	Started    *time.Time         `json:"started,omitempty"`
	Finished   *time.Time         `json:"finished,omitempty"`
	Keys       int                `json:"keys"`
	Added      int                `json:"added"`
	Removed    int                `json:"removed"`
	Kept       int                `json:"kept"`
	Error      string             `json:"error,omitempty"`
	DisableErr string             `json:"disable_error,omitempty"`
	Sources    []reloadSourceJSON `json:"sources"`
}

func reloadJSON(st signer.ReloadStatus) reloadStatusJSON {
	out := reloadStatusJSON{Status: string(st.State), Keys: st.Keys, Added: st.Added, Removed: st.Removed,
		Kept: st.Kept, Error: st.Error, DisableErr: st.DisableErr, Sources: []reloadSourceJSON{}}
	if !st.Started.IsZero() {
		out.Started = &st.Started
	}
	if !st.Finished.IsZero() {
		out.Finished = &st.Finished
	}
	for _, r := range st.Sources {
		j := reloadSourceJSON{Name: r.Name, Status: updown(r.OK()), Keys: r.Loaded, Kept: r.Kept, TookMS: r.Took.Milliseconds()}
		if r.Err != nil {
			j.Error = r.Err.Error()
		}
		for _, e := range r.Errors {
			j.Errors = append(j.Errors, e.Error())
		}
		out.Sources = append(out.Sources, j)
	}
	return out
}
