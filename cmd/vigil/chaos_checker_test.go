package main

// The independent checker. It knows only the requests sent and the signatures returned with
// 200, never the server's state:
//
//  1. every returned signature verifies against the interop public key and the signing root
//     computed here (chaos_fixtures_test.go);
//  2. no two returned signatures of one key form a slashable pair (EIP-3076: double proposal,
//     double vote, surround vote);
//  3. every returned signature is durably recorded: after the run, with the instances healthy,
//     a conflicting request for each returned message is refused with 412, and the message's
//     signing root is in the exported EIP-3076 history.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/keystore"
)

type checkStats struct {
	results   int            // logical requests
	oks       int            // 200 with a signature
	distinct  int            // distinct signed messages
	byStatus  map[string]int // final status of the others
	byLabel   map[string]int // 200s by request label
	conflicts int            // conflicting 200 pairs found (must be 0)
}

func (s checkStats) String() string {
	var keys []string
	for k := range s.byStatus {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	refusals := ""
	for _, k := range keys {
		refusals += fmt.Sprintf(" %s×%d", k, s.byStatus[k])
	}
	var labels []string
	for k := range s.byLabel {
		labels = append(labels, k)
	}
	sort.Strings(labels)
	oks := ""
	for _, k := range labels {
		oks += fmt.Sprintf(" %s×%d", k, s.byLabel[k])
	}
	return fmt.Sprintf("%d requests, %d signed (%d distinct messages; by kind:%s), not signed by final status:%s", s.results, s.oks, s.distinct, oks, refusals)
}

// checkSignatures runs checks 1 and 2 and returns the distinct signed messages.
func (p *haPair) checkSignatures(t testing.TB) ([]*signMsg, checkStats) {
	t.Helper()
	results, _ := p.rec.snapshot()
	st := checkStats{results: len(results), byStatus: map[string]int{}, byLabel: map[string]int{}}
	byKey := map[uint64][]*signMsg{}
	seen := map[[32]byte]keystore.Signature{}
	var bad int
	for _, r := range results {
		if r.status != http.StatusOK {
			name := strconv.Itoa(r.status)
			if r.status == 0 {
				name = "conn-error"
			}
			switch {
			case r.refusal:
				name = "refused-by-standby-as-expected(" + name + ")"
			case r.stopped:
				name = "abandoned-at-stop(" + name + ")"
			case (attemptResult{status: r.status}).retryable():
				name = "gave-up-after-30s(" + name + ")"
			}
			st.byStatus[name]++
			continue
		}
		if r.sigErr != "" {
			t.Errorf("%s via %s: %s", r.msg, r.target, r.sigErr)
			continue
		}
		st.oks++
		st.byLabel[r.msg.Label]++
		if !keystore.Verify(p.keys.pubs[r.msg.Key], r.msg.root[:], r.sig) {
			bad++
			if bad <= 10 {
				t.Errorf("%s via %s: the returned signature %s does not verify against key %d and signing root %#x", r.msg, r.target, r.sig, r.msg.Key, r.msg.root[:])
			}
			continue
		}
		if prev, ok := seen[r.msg.root]; ok {
			if prev != r.sig {
				t.Errorf("%s: two different signatures for one signing root", r.msg)
			}
			continue
		}
		seen[r.msg.root] = r.sig
		byKey[r.msg.Key] = append(byKey[r.msg.Key], r.msg)
	}
	var distinct []*signMsg
	for _, msgs := range byKey {
		for i, a := range msgs {
			for _, b := range msgs[i+1:] {
				if ok, why := chaosSlashable(a, b); ok {
					st.conflicts++
					if st.conflicts <= 20 {
						t.Errorf("SLASHABLE: %s and %s were both signed (%s)", a, b, why)
					}
				}
			}
		}
		distinct = append(distinct, msgs...)
	}
	st.distinct = len(distinct)
	if bad > 10 {
		t.Errorf("%d signatures in all do not verify", bad)
	}
	if st.conflicts > 20 {
		t.Errorf("%d slashable pairs in all", st.conflicts)
	}
	return distinct, st
}

// checkDurable runs check 3: a conflicting request for every signed message is refused (412)
// by the pair (sent with fail-over over targets), and every signing root is in the export.
func (p *haPair) checkDurable(t testing.TB, msgs []*signMsg, targets []signTarget) {
	t.Helper()
	t0 := time.Now()
	jobs := make(chan *signMsg)
	var mu sync.Mutex
	counts := map[int]int{}
	var wrong []string
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range jobs {
				c := m.conflicting()
				r := p.send(targets, int(m.Key)%len(targets), c, 30*time.Second, nil)
				mu.Lock()
				counts[r.status]++
				if r.status != http.StatusPreconditionFailed && len(wrong) < 20 {
					wrong = append(wrong, fmt.Sprintf("%s (conflicting with signed %s): %d via %s", c, m, r.status, r.target))
				}
				mu.Unlock()
			}
		}()
	}
	for _, m := range msgs {
		jobs <- m
	}
	close(jobs)
	wg.Wait()
	t.Logf("durability: %d conflicting requests for the %d signed messages in %s: %v", len(msgs), len(msgs), time.Since(t0).Round(time.Millisecond), counts)
	for _, w := range wrong {
		t.Errorf("NOT DURABLE (want 412): %s", w)
	}

	// The export names every signed root.
	exp := exec.Command(vigilBin, "slashing", "export", "--slashing-protection-db-url", p.dbURL)
	exp.Env = testEnv()
	var stdout, stderr bytes.Buffer
	exp.Stdout, exp.Stderr = &stdout, &stderr
	if err := exp.Run(); err != nil {
		t.Errorf("vigil slashing export: %v\n%s", err, stderr.String())
		return
	}
	var doc struct {
		Data []struct {
			Pubkey string `json:"pubkey"`
			Blocks []struct {
				Slot        string `json:"slot"`
				SigningRoot string `json:"signing_root"`
			} `json:"signed_blocks"`
			Atts []struct {
				Source      string `json:"source_epoch"`
				Target      string `json:"target_epoch"`
				SigningRoot string `json:"signing_root"`
			} `json:"signed_attestations"`
		} `json:"data"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		t.Errorf("export is not JSON: %v", err)
		return
	}
	have := map[string]bool{}
	for _, d := range doc.Data {
		for _, b := range d.Blocks {
			have[d.Pubkey+"/b/"+b.Slot+"/"+b.SigningRoot] = true
		}
		for _, a := range d.Atts {
			have[d.Pubkey+"/a/"+a.Source+"/"+a.Target+"/"+a.SigningRoot] = true
		}
	}
	missing := 0
	for _, m := range msgs {
		pub := p.keys.pubs[m.Key].String()
		var k string
		if m.Kind == msgBlock {
			k = pub + "/b/" + strconv.FormatUint(uint64(m.Slot), 10) + "/" + hex0x(m.root[:])
		} else {
			k = pub + "/a/" + strconv.FormatUint(uint64(m.Source), 10) + "/" + strconv.FormatUint(uint64(m.Target), 10) + "/" + hex0x(m.root[:])
		}
		if !have[k] {
			missing++
			if missing <= 10 {
				t.Errorf("NOT DURABLE: signed %s (root %#x) is not in the exported history", m, m.root[:])
			}
		}
	}
	if missing > 10 {
		t.Errorf("%d signed messages in all are missing from the export", missing)
	}
	t.Logf("durability: the export (%d validators, %d records) holds %d of the %d signed messages", len(doc.Data), len(have), len(msgs)-missing, len(msgs))
}
