// Package watch is Vigil's own view of whether each validator client is doing its duties: from
// the signer's request stream (it is a signer.Observer) it records, per client and key, the
// target epochs of the ATTESTATION signatures asked for, and per client the time of its last
// request. It is the earliest signal of a failed client: a client whose active keys asked for no
// attestation of epoch E by the end of E (plus a grace) missed E, whatever the beacon chain says.
//
// Every identified request counts, whatever its outcome: a 403 (a hot standby asking for keys it
// does not hold yet) or a 412 (a repeat refused by slashing protection) still proves the client
// is alive and has the duty. Anonymous requests count for no client.
package watch

import (
	"sync"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/signer"
)

// ring is how many recent target epochs are kept per client and key.
const ring = 8

type keyClient struct {
	client string
	key    signer.PublicKey
}

type epochs struct {
	e [ring]phase0.Epoch
	n int // valid entries (≤ ring), newest at (next-1)
	i int // next slot
}

func (r *epochs) add(e phase0.Epoch) {
	for k := 0; k < r.n; k++ {
		if r.e[k] == e {
			return
		}
	}
	r.e[r.i] = e
	r.i = (r.i + 1) % ring
	if r.n < ring {
		r.n++
	}
}

func (r *epochs) has(e phase0.Epoch) bool {
	for k := 0; k < r.n; k++ {
		if r.e[k] == e {
			return true
		}
	}
	return false
}

// ClientStats is what the tracker knows of one client.
type ClientStats struct {
	LastRequest time.Time
	// LastAttestation is when the client last asked for an ATTESTATION signature (any key).
	LastAttestation time.Time
	Requests        uint64
}

// Tracker implements signer.Observer.
type Tracker struct {
	now func() time.Time

	mu      sync.Mutex
	att     map[keyClient]*epochs
	any     map[string]*epochs // client → target epochs it asked attestations for (any key)
	clients map[string]*ClientStats
}

var _ signer.Observer = (*Tracker)(nil)

// New returns an empty tracker; now is the clock (nil: time.Now).
func New(now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	return &Tracker{now: now, att: map[keyClient]*epochs{}, any: map[string]*epochs{}, clients: map[string]*ClientStats{}}
}

// ObserveRequest implements signer.Observer.
func (t *Tracker) ObserveRequest(e signer.Event) {
	if e.Caller == signer.Anonymous || e.Caller.Name == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.clients[e.Caller.Name]
	if cs == nil {
		cs = &ClientStats{}
		t.clients[e.Caller.Name] = cs
	}
	cs.LastRequest = t.now()
	cs.Requests++
	if e.Type != signer.TypeAttestation || e.Key == (signer.PublicKey{}) || e.Outcome == signer.OutcomeInvalid {
		return
	}
	cs.LastAttestation = cs.LastRequest
	ra := t.any[e.Caller.Name]
	if ra == nil {
		ra = &epochs{}
		t.any[e.Caller.Name] = ra
	}
	ra.add(e.Epoch)
	k := keyClient{e.Caller.Name, e.Key}
	r := t.att[k]
	if r == nil {
		r = &epochs{}
		t.att[k] = r
	}
	r.add(e.Epoch)
}

// AttestedBy reports whether client asked for key's attestation with target epoch.
func (t *Tracker) AttestedBy(client string, key signer.PublicKey, epoch phase0.Epoch) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.att[keyClient{client, key}]
	return r != nil && r.has(epoch)
}

// AttestedAny reports whether client asked for an attestation with target epoch for any key
// (refused requests included: a fenced client that asks is alive).
func (t *Tracker) AttestedAny(client string, epoch phase0.Epoch) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.any[client]
	return r != nil && r.has(epoch)
}

// Client returns the stats of client (zero when it never asked).
func (t *Tracker) Client(client string) ClientStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cs := t.clients[client]; cs != nil {
		return *cs
	}
	return ClientStats{}
}
