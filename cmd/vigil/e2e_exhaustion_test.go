package main

// End-to-end tests of the listener against connection and memory exhaustion (connlimit.go,
// api/bodybudget.go) with the real binary: the connection cap under a slowloris and under busy
// connections, the body read timeout, the request-body budget and RSS, and the largest real
// request. The helpers (send, metric, waitMetric, dial, vmRSS) are in http_e2e_test.go.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/altair"
	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/internal/signingtest"
)

// ---------------------------------------------------------------------------------------------
// Item 7: connection and memory exhaustion.

// More slow connections than the cap: the oldest not-yet-requesting ones make room, honest
// requests are signed, the process holds no more descriptors than the cap allows. When every
// connection is busy, a new one gets a 503 JSON reply at once, and signing resumes as soon as
// the busy ones finish.
//
// The test counts places exactly: a connection the server has not closed yet still holds one,
// so each step waits for the server to let go of the previous step's connections (signClosed,
// vigil_http_open_connections) instead of assuming it has.
func TestE2EConnectionCap(t *testing.T) {
	const capacity, slow = 16, 120
	// A read timeout longer than the test: no connection ends by timing out, every place is
	// freed by an eviction or a close the test waits for.
	v := start(t, append([]string{"--network", "mainnet", "--http-max-connections", strconv.Itoa(capacity), "--http-read-timeout", "2m"},
		writeKeystores(t, 0)...)...)
	pub0 := interopPub(t, 0)
	body, root := randaoRequest(t)
	url := v.URL + signPath(pub0)
	fdBase := openFDs(t, v.pid())

	// Slowloris: connections that never finish their headers. Each one over the cap is closed:
	// evicted, or refused with 503 when it comes while the server has not yet read the partial
	// headers of every connection it holds (Accept takes a burst of queued connections before
	// their goroutines run; see connLimiter).
	slowConns := make([]net.Conn, slow)
	for i := range slowConns {
		slowConns[i] = dial(t, v)
		fmt.Fprintf(slowConns[i], "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl", signPath(pub0))
	}
	var refused float64
	evicted := waitMetric(t, v, "vigil_http_connections_evicted_total", func(f float64) bool {
		refused = metric(t, v, "vigil_http_connections_refused_total")
		return f+refused >= slow-capacity
	}, "slow connections over the cap are closed")
	fds := openFDs(t, v.pid())
	t.Logf("%d slow connections, cap %d: %v evicted, %v refused; descriptors %d before, %d after", slow, capacity, evicted, refused, fdBase, fds)
	// A refused connection's 503 writer holds its descriptor until the client closes (at most a
	// second; at most maxRejecting writers).
	if fds > fdBase+capacity+min(int(refused), maxRejecting)+4 {
		t.Errorf("process holds %d descriptors (%d before): more than the cap of %d connections", fds, fdBase, capacity)
	}
	// Honest requests take the place of a slow connection (or, while the server has not yet
	// read the slow ones, get the 503 and try again, as its Retry-After asks).
	for range 3 {
		wantSignature(t, 0, root, signature(t, signClosed(t, v, signPath(pub0), body)))
	}
	if n := metric(t, v, "vigil_http_connections_evicted_total"); n <= evicted {
		t.Errorf("vigil_http_connections_evicted_total %v after the honest requests, %v before: no slow connection made room", n, evicted)
	}
	// The slowloris gives up: its connections (and the 503 writers of the refused ones) end.
	for _, c := range slowConns {
		c.Close()
	}
	waitMetric(t, v, "vigil_http_open_connections", func(f float64) bool { return f == 1 }, "closed slow connections free their places") // 1: this scrape

	// Busy connections: complete headers, a body that is still arriving. They are in-flight
	// work: never evicted (not even before the server has read their headers).
	busy := make([]net.Conn, capacity)
	for i := range busy {
		busy[i] = dial(t, v)
		fmt.Fprintf(busy[i], "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"type\":", signPath(pub0))
	}
	// Every busy handler has reserved its 1000 body bytes: all of them are being handled.
	waitMetric(t, v, "vigil_http_body_buffered_bytes", func(f float64) bool { return f == capacity*1000 }, "busy connections are in their handlers")
	refused = metric(t, v, "vigil_http_connections_refused_total")
	c := dial(t, v)
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", signPath(pub0), len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("connection over the cap: no reply: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	wantError(t, reply{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: got}, 503, "too many connections")
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if n := metric(t, v, "vigil_http_connections_refused_total"); n != refused+1 {
		t.Errorf("vigil_http_connections_refused_total = %v after a refusal, was %v", n, refused)
	}
	// No busy connection was dropped for it: each still gets its answer when its body ends.
	for _, b := range busy[:2] {
		rest := `"RANDAO_REVEAL"}`
		fmt.Fprint(b, rest+strings.Repeat(" ", 1000-len(`{"type":`)-len(rest)))
		resp, err := http.ReadResponse(bufio.NewReader(b), nil)
		if err != nil {
			t.Fatalf("busy connection lost: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest { // no fork_info: invalid, but answered
			t.Errorf("busy connection answered %d, want 400", resp.StatusCode)
		}
	}
	// The busy clients give up: signing resumes.
	for _, b := range busy {
		b.Close()
	}
	waitMetric(t, v, "vigil_http_body_buffered_bytes", func(f float64) bool { return f == 0 }, "closed busy connections release their bytes")
	waitMetric(t, v, "vigil_http_open_connections", func(f float64) bool { return f == 1 }, "closed busy connections free their places")
	wantSignature(t, 0, root, signature(t, send(t, http.MethodPost, url, "", "application/json", body)))
}

// At the cap, a connection whose request has arrived but that the server has not read yet (its
// goroutine lags behind Accept on a loaded machine) keeps its place: the newcomer gets the 503.
// A connection that has sent nothing makes room. The limiter alone, with no server reading:
// the state a burst of accepts leaves behind.
func TestConnLimiterKeepsArrivedRequests(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var stats connStats
	l := newConnLimiter(inner, 1, &stats, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dialRaw := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a bound for the test
		return c
	}
	// readable waits until bytes (or the FIN) are in the server side's socket (the poller wakes
	// it: an event, and nothing is consumed).
	readable := func(c net.Conn) {
		rc, err := c.(*limitedConn).Conn.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		err = rc.Read(func(fd uintptr) bool {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			return err != syscall.EAGAIN
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wantRefused := func(c net.Conn, what string) {
		t.Helper()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: no 503: %v", what, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s: %d, want 503", what, resp.StatusCode)
		}
	}
	request := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", signPath(interopPub(t, 0)))

	// A has sent its whole request; nobody has read it yet.
	a := dialRaw()
	fmt.Fprint(a, request)
	srvA := <-accepted
	readable(srvA)
	wantRefused(dialRaw(), "a newcomer while the request in the socket is unread")
	// The server has read the request and is parsing it: still in place.
	if n, err := srvA.Read(make([]byte, 4096)); err != nil || n != len(request) {
		t.Fatalf("server side read %d bytes (%v), want %d", n, err, len(request))
	}
	wantRefused(dialRaw(), "a newcomer while the request is parsed")
	if e, r := stats.evicted.Load(), stats.refused.Load(); e != 0 || r != 2 {
		t.Fatalf("evicted %d, refused %d; want 0 and 2", e, r)
	}
	srvA.Close()

	// B has sent nothing: C takes its place.
	b := dialRaw()
	<-accepted
	dialRaw()
	srvC := <-accepted // admitted, so B was evicted
	defer srvC.Close()
	if n, err := b.Read(make([]byte, 1)); err == nil {
		t.Fatalf("silent connection not closed for the newcomer: read %d bytes", n)
	}
	if e := stats.evicted.Load(); e != 1 {
		t.Fatalf("evicted %d, want 1", e)
	}
}

// signClosed sends a sign request with "Connection: close" on a new connection and reads until
// the server closes it: when it returns, the server has let go of the connection's place (the
// limiter frees it as the server closes), which a client that stops at the end of the response
// does not know. A connection refused at the cap (503 "too many connections") is tried again at
// once, as many times as it takes within 15s: each refusal is the server's answer, not a guess.
func signClosed(t *testing.T, v *vigil, path, body string) reply {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c := dial(t, v)
		_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a bound for the test, not the server
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
			path, len(body), body)
		raw, err := io.ReadAll(c) // to the server's FIN
		c.Close()
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
		if err != nil {
			t.Fatalf("POST %s: %v: %q", path, err, truncateBody(raw))
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("POST %s: read body: %v", path, err)
		}
		r := reply{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: b}
		if r.status != http.StatusServiceUnavailable || !bytes.Contains(b, []byte("too many connections")) || time.Now().After(deadline) {
			return r
		}
		t.Logf("POST %s: refused at the connection cap, trying again", path)
	}
}

// A slow body gets 408 after --http-read-timeout; it cannot hold its place (and bytes) longer.
func TestE2EBodyReadTimeout(t *testing.T) {
	v := start(t, append([]string{"--network", "mainnet", "--http-read-timeout", "1s"}, writeKeystores(t, 0)...)...)
	c := dial(t, v)
	start := time.Now()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", signPath(interopPub(t, 0)))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("slow body: no reply: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	wantError(t, reply{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: got}, 408, "not received in time")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("408 after %v, want about the 1s read timeout", took)
	}
	// Headers that never end are cut off too.
	c = dial(t, v)
	fmt.Fprint(c, "GET /upcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound for the test, not the server
	if n, err := c.Read(make([]byte, 1)); err == nil && n > 0 {
		// net/http may answer 408 before closing; either way the connection ends.
		_, err = io.Copy(io.Discard, c)
		if err != nil {
			t.Errorf("slow headers: connection not closed by the server: %v", err)
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("slow headers: the server kept the connection open for 10s")
	}
	body, root := randaoRequest(t)
	wantSignature(t, 0, root, signature(t, send(t, http.MethodPost, v.URL+signPath(interopPub(t, 0)), "", "application/json", body)))
}

// Many large bodies at once: the buffered bytes stay within --http-max-buffered-bytes (the rest
// get 503 at once, unread), honest requests are signed meanwhile, RSS stays bounded, and the
// memory goes back to the system once the burst is over.
func TestE2EBodyBudgetBoundsMemory(t *testing.T) {
	const budget = 8 << 20
	const conns, bodySize = 200, 1_000_000 // just under the 1 MiB default limit
	const returned = 6 << 20               // RSS above the start that may stay after the burst
	v := start(t, append([]string{"--network", "mainnet", "--http-max-buffered-bytes", strconv.Itoa(budget)}, writeKeystores(t, 0)...)...)
	pub0 := interopPub(t, 0)
	honest, root := randaoRequest(t)
	url := v.URL + signPath(pub0)
	wantSignature(t, 0, root, signature(t, send(t, http.MethodPost, url, "", "application/json", honest)))
	base := vmRSS(t, v.pid())

	fe := signingtest.MainnetFork("ELECTRA")
	large := fmt.Sprintf(`{"type":"RANDAO_REVEAL","fork_info":%s,"randao_reveal":{"epoch":"%d"},"padding":"`, jsonString(t, signingtest.ForkInfoJSON(fe)), fe.Epoch+1)
	large += strings.Repeat("a", bodySize-len(large)-2) + `"}`
	header := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", signPath(pub0), len(large))

	var peak atomic.Int64
	peak.Store(base)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // RSS sampler for the whole burst
		defer close(sampled)
		for {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", v.pid())); err == nil {
				for _, line := range strings.Split(string(b), "\n") {
					if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
						kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
						if kb<<10 > peak.Load() {
							peak.Store(kb << 10)
						}
					}
				}
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	// Phase 1: every connection sends its headers and the first 64 KiB, then waits. The budget
	// holds 8 of them; the rest are answered 503 before a body byte is read.
	holders := make([]net.Conn, conns)
	replies := make(chan int, conns)
	for i := range holders {
		holders[i] = dial(t, v)
		if _, err := io.WriteString(holders[i], header+large[:64<<10]); err != nil {
			t.Fatalf("holder %d: %v", i, err)
		}
		go func(c net.Conn) {
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				replies <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			replies <- resp.StatusCode
		}(holders[i])
	}
	fits := budget / len(large)
	statuses := map[int]int{}
	for range conns - fits {
		statuses[<-replies]++
	}
	if statuses[503] != conns-fits {
		t.Errorf("replies while the budget is full: %v, want %d × 503", statuses, conns-fits)
	}
	if got := metric(t, v, "vigil_http_body_buffered_bytes"); got != float64(fits*len(large)) {
		t.Errorf("buffered bytes %v, want %d (%d bodies)", got, fits*len(large), fits)
	}
	// Honest requests are still signed: they fit in what is left of the budget.
	for range 3 {
		wantSignature(t, 0, root, signature(t, send(t, http.MethodPost, url, "", "application/json", honest)))
	}
	holdRSS := vmRSS(t, v.pid())

	// Phase 2: the holders finish their bodies and get their signatures.
	for _, c := range holders {
		if _, err := io.WriteString(c, large[64<<10:]); err != nil {
			// a holder answered 503 may be closed by the server already
			continue
		}
	}
	for range fits {
		statuses[<-replies]++
	}
	if statuses[200] != fits {
		t.Errorf("held requests: %v, want %d × 200", statuses, fits)
	}

	// Phase 3: a burst of complete large bodies from every connection at once.
	var wg sync.WaitGroup
	var burst sync.Map
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", hostPort(v.URL))
			if err != nil {
				burst.Store("dial error", true)
				return
			}
			defer c.Close()
			go func() { _, _ = io.WriteString(c, header+large) }()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			n, _ := burst.LoadOrStore(resp.StatusCode, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}()
	}
	wg.Wait()
	close(stopSampling)
	<-sampled
	counts := map[any]int64{}
	burst.Range(func(k, v any) bool {
		if n, ok := v.(*atomic.Int64); ok {
			counts[k] = n.Load()
		}
		return true
	})
	if counts[200] == 0 || counts[200]+counts[503] != conns {
		t.Errorf("burst replies %v: want only 200 and 503, at least one 200", counts)
	}
	wantSignature(t, 0, root, signature(t, send(t, http.MethodPost, url, "", "application/json", honest)))

	// Memory goes back once the burst is over (the budget frees it after draining, at most
	// every 5 s). A bounded poll: the process's RSS is only visible in /proc, and vigil reports
	// no event when the budget hands memory back (debug.FreeOSMemory is silent).
	var after int64
	pollUntil(12*time.Second, 50*time.Millisecond, func() bool { after = vmRSS(t, v.pid()); return after <= base+returned })
	t.Logf("RSS: %s at start, %s with %d bodies held (%d connections), %s peak over a %d × %s burst, %s after; burst replies %v",
		mib(base), mib(holdRSS), fits, conns, mib(peak.Load()), conns, mib(int64(len(large))), mib(after), counts)
	// Without the budget a burst like this buffers conns × body (~190 MiB) at once.
	if grow := peak.Load() - base; grow > 8*budget {
		t.Errorf("RSS grew by %s during the burst, more than 8 × the %s budget", mib(grow), mib(budget))
	}
	if after > base+returned {
		t.Errorf("RSS %s 12s after the burst, want within %s of the %s at start", mib(after), mib(returned), mib(base))
	}
}

// maximalAltairBlock is the largest mainnet Altair block the preset allows, in JSON: every list
// at its maximum (16 proposer slashings, 2 attester slashings of 2048 indices each, 128
// attestations of 2048 bits, 16 deposits, 16 exits, a full sync aggregate) and every number at
// its longest decimal form.
func maximalAltairBlock(slot phase0.Slot) *altair.BeaconBlock {
	const big = math.MaxUint64
	hdr := func(seed byte) *phase0.SignedBeaconBlockHeader {
		return &phase0.SignedBeaconBlockHeader{Message: &phase0.BeaconBlockHeader{
			Slot: big, ProposerIndex: big, ParentRoot: signingtest.Root32(seed), StateRoot: signingtest.Root32(seed + 1), BodyRoot: signingtest.Root32(seed + 2),
		}, Signature: signingtest.Sig96(seed)}
	}
	data := func(seed byte) *phase0.AttestationData {
		return &phase0.AttestationData{Slot: big, Index: big, BeaconBlockRoot: signingtest.Root32(seed),
			Source: &phase0.Checkpoint{Epoch: big, Root: signingtest.Root32(seed + 1)}, Target: &phase0.Checkpoint{Epoch: big, Root: signingtest.Root32(seed + 2)}}
	}
	indexed := func(seed byte) *phase0.IndexedAttestation {
		idx := make([]uint64, 2048)
		for i := range idx {
			idx[i] = big - uint64(2047-i) // sorted, 20 digits each
		}
		return &phase0.IndexedAttestation{AttestingIndices: idx, Data: data(seed), Signature: signingtest.Sig96(seed)}
	}
	body := &altair.BeaconBlockBody{
		RANDAOReveal:  signingtest.Sig96(1),
		ETH1Data:      &phase0.ETH1Data{DepositRoot: signingtest.Root32(2), DepositCount: big, BlockHash: signingtest.Pattern(32, 3)},
		Graffiti:      [32]byte(signingtest.Pattern(32, 4)),
		SyncAggregate: &altair.SyncAggregate{SyncCommitteeBits: bytes.Repeat([]byte{0xff}, 64), SyncCommitteeSignature: signingtest.Sig96(5)},
	}
	for i := range 16 {
		body.ProposerSlashings = append(body.ProposerSlashings, &phase0.ProposerSlashing{SignedHeader1: hdr(byte(i)), SignedHeader2: hdr(byte(i + 100))})
	}
	for i := range 2 {
		body.AttesterSlashings = append(body.AttesterSlashings, &phase0.AttesterSlashing{Attestation1: indexed(byte(i)), Attestation2: indexed(byte(i + 50))})
	}
	bits := append(bytes.Repeat([]byte{0xff}, 256), 0x01) // 2048 bits and the length bit
	for i := range 128 {
		body.Attestations = append(body.Attestations, &phase0.Attestation{AggregationBits: bits, Data: data(byte(i)), Signature: signingtest.Sig96(byte(i))})
	}
	for i := range 16 {
		proof := make([][]byte, 33)
		for j := range proof {
			proof[j] = signingtest.Pattern(32, byte(i+j))
		}
		body.Deposits = append(body.Deposits, &phase0.Deposit{Proof: proof, Data: &phase0.DepositData{
			PublicKey: phase0.BLSPubKey(signingtest.Pattern(48, byte(i))), WithdrawalCredentials: signingtest.Pattern(32, byte(i)), Amount: big, Signature: signingtest.Sig96(byte(i)),
		}})
		body.VoluntaryExits = append(body.VoluntaryExits, &phase0.SignedVoluntaryExit{Message: &phase0.VoluntaryExit{Epoch: big, ValidatorIndex: big}, Signature: signingtest.Sig96(byte(i))})
	}
	return &altair.BeaconBlock{Slot: slot, ProposerIndex: big, ParentRoot: signingtest.Root32(6), StateRoot: signingtest.Root32(7), Body: body}
}
