package beacon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// A hand-written beacon node: Lodestar 1.5.1's shapes (pre-standard liveness only).
func fakeNode(t *testing.T, standardLiveness bool) *httptest.Server {
	t.Helper()
	pk := "0x" + strings.Repeat("ab", 48)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /eth/v1/node/syncing", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"data":{"head_slot":"77","sync_distance":"0","is_syncing":false}}`)
	})
	mux.HandleFunc("GET /eth/v1/beacon/states/head/validators", func(w http.ResponseWriter, r *http.Request) {
		if ids := r.URL.Query()["id"]; len(ids) != 2 || ids[0] != pk || ids[1] != "0x"+strings.Repeat("cd", 48) {
			t.Errorf("ids %q: want each key as its own id parameter", ids)
		}
		fmt.Fprintf(w, `{"data":[{"index":"5","status":"active_ongoing","validator":{"pubkey":"%s"}}]}`, pk)
	})
	if standardLiveness {
		mux.HandleFunc("POST /eth/v1/validator/liveness/{epoch}", func(w http.ResponseWriter, r *http.Request) {
			var idx []string
			_ = json.NewDecoder(r.Body).Decode(&idx)
			fmt.Fprintf(w, `{"data":[{"index":"%s","is_live":true}]}`, idx[0])
		})
	}
	mux.HandleFunc("GET /eth/v1/validator/liveness", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("epoch") != "3" || len(q["indices"]) != 2 {
			t.Errorf("liveness query %v", q)
		}
		fmt.Fprint(w, `{"data":[{"index":"5","is_live":true},{"index":"6","is_live":false}]}`)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestClient(t *testing.T) {
	ctx := context.Background()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	node := fakeNode(t, false)
	c, err := New([]string{down.URL, node.URL}, time.Second) // the first node is down: the second answers
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Syncing(ctx)
	if err != nil || s.HeadSlot != 77 || s.IsSyncing {
		t.Fatalf("Syncing = %+v, %v", s, err)
	}
	var a, b phase0.BLSPubKey
	for i := range a {
		a[i], b[i] = 0xab, 0xcd
	}
	vs, err := c.Validators(ctx, []phase0.BLSPubKey{a, b})
	if err != nil || len(vs) != 1 || vs[a].Index != 5 || !vs[a].Active() {
		t.Fatalf("Validators = %v, %v", vs, err)
	}
	live, err := c.Liveness(ctx, 3, []phase0.ValidatorIndex{5, 6})
	if err != nil || !live[5] || live[6] {
		t.Fatalf("Liveness (Lodestar 1.5.1 fallback) = %v, %v", live, err)
	}
	std, _ := New([]string{fakeNode(t, true).URL}, time.Second)
	if live, err := std.Liveness(ctx, 3, []phase0.ValidatorIndex{9}); err != nil || !live[9] {
		t.Fatalf("standard Liveness = %v, %v", live, err)
	}
	allDown, _ := New([]string{down.URL}, time.Second)
	if _, err := allDown.Syncing(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("every node down: %v", err)
	}
	if _, err := New([]string{"ftp://x"}, 0); err == nil {
		t.Fatal("a non-http URL was accepted")
	}
}
