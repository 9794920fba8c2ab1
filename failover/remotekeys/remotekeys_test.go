package remotekeys

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// FakeVC is a hand-written VC keymanager (remotekeys) with Lodestar 1.5.1's quirk: the first
// DELETE of a key answers "deleted" but keeps it.
type fakeVC struct {
	mu      sync.Mutex
	keys    map[string]string // pubkey → url
	deletes map[string]int
	token   string
}

func (f *fakeVC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		var data []Key
		for p, u := range f.keys {
			data = append(data, Key{Pubkey: p, URL: u})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
	case http.MethodPost:
		var in struct {
			RemoteKeys []struct{ Pubkey, URL string } `json:"remote_keys"`
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		var data []Result
		for _, k := range in.RemoteKeys {
			st := "imported"
			if _, ok := f.keys[k.Pubkey]; ok {
				st = "duplicate"
			}
			f.keys[k.Pubkey] = k.URL
			data = append(data, Result{Status: st})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
	case http.MethodDelete:
		var in struct{ Pubkeys []string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		var data []Result
		for _, p := range in.Pubkeys {
			if _, ok := f.keys[p]; !ok {
				data = append(data, Result{Status: "not_found"})
				continue
			}
			f.deletes[p]++
			if f.deletes[p] > 1 {
				delete(f.keys, p)
			}
			data = append(data, Result{Status: "deleted"})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
	}
}

func TestRemoteKeys(t *testing.T) {
	vc := &fakeVC{keys: map[string]string{}, deletes: map[string]int{}, token: "km-token"}
	srv := httptest.NewServer(vc)
	defer srv.Close()
	tf := filepath.Join(t.TempDir(), "token")
	_ = os.WriteFile(tf, []byte("km-token\n"), 0o600)
	c := &Client{URL: srv.URL, TokenFile: tf}
	ctx := context.Background()
	res, err := c.Import(ctx, []string{"0xaa", "0xbb"}, "http://vigil:9102")
	if err != nil || res[0].Status != "imported" || res[1].Status != "imported" {
		t.Fatalf("Import = %v, %v", res, err)
	}
	keys, err := c.List(ctx)
	if err != nil || !Holds(keys, []string{"0xAA"})["0xAA"] || keys[0].URL != "http://vigil:9102" {
		t.Fatalf("List = %v, %v", keys, err)
	}
	// Lodestar 1.5.1: the first delete answers deleted and keeps the key; the repeat removes it.
	if res, err := c.Delete(ctx, []string{"0xaa"}); err != nil || res[0].Status != "deleted" {
		t.Fatalf("Delete = %v, %v", res, err)
	}
	keys, _ = c.List(ctx)
	if !Holds(keys, []string{"0xaa"})["0xaa"] {
		t.Fatal("the fake lost its quirk")
	}
	_, _ = c.Delete(ctx, []string{"0xaa"})
	keys, _ = c.List(ctx)
	if Holds(keys, []string{"0xaa"})["0xaa"] {
		t.Fatal("still listed after the repeat")
	}
	bad := &Client{URL: srv.URL, TokenFile: filepath.Join(t.TempDir(), "missing")}
	if _, err := bad.List(ctx); err == nil {
		t.Fatal("a missing token file was not an error")
	}
	_ = os.WriteFile(tf, []byte("wrong"), 0o600)
	if _, err := c.List(ctx); err == nil {
		t.Fatal("a wrong token was not an error")
	}
}
