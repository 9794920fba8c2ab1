package main

// An in-test TCP proxy for fault injection between a vigil process and Postgres: the process's
// --slashing-protection-db-url points at the proxy, which forwards to the real server.
//
//   - Blackhole stops forwarding in both directions without closing any socket: both ends see a
//     silent network (their writes fill kernel buffers, their reads block), as with a partition
//     that drops packets. New connections are accepted but carry nothing either.
//   - Unblock resumes forwarding; what was held back is delivered (as TCP retransmission would
//     after the partition heals).
//   - Cut closes every connection open now (both sides); new connections are accepted as usual.
//
// Concurrency: every method is safe for concurrent use. Each connection pair has two pumps
// (client→server, server→client) that, after each read, wait on the gate before writing.

import (
	"net"
	"net/url"
	"sync"
	"testing"
)

type tcpProxy struct {
	ln     net.Listener
	target string // host:port of the real server

	mu     sync.Mutex
	gate   chan struct{} // closed while forwarding; open (blocking) while blackholed
	conns  map[*proxyPair]struct{}
	closed bool
	wg     sync.WaitGroup
}

type proxyPair struct {
	client, server net.Conn
	done           chan struct{} // closed by close
	once           sync.Once
}

func (p *proxyPair) close() {
	p.once.Do(func() {
		close(p.done)
		_ = p.client.Close()
		if p.server != nil {
			_ = p.server.Close()
		}
	})
}

// newTCPProxy listens on 127.0.0.1:0 and forwards to target (host:port); it is closed when the
// test ends.
func newTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tcp proxy: listen: %v", err)
	}
	open := make(chan struct{})
	close(open)
	p := &tcpProxy{ln: ln, target: target, gate: open, conns: map[*proxyPair]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's listening address (127.0.0.1:port).
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// RewriteURL returns the postgres:// URL u with its host:port replaced by the proxy's.
func (p *tcpProxy) RewriteURL(t testing.TB, u string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("tcp proxy: parse %q: %v", u, err)
	}
	pu.Host = p.Addr()
	return pu.String()
}

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		pair := &proxyPair{client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		p.conns[pair] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.run(pair)
	}
}

func (p *tcpProxy) run(pair *proxyPair) {
	defer p.wg.Done()
	defer func() {
		pair.close()
		p.mu.Lock()
		delete(p.conns, pair)
		p.mu.Unlock()
	}()
	// A blackholed proxy does not even dial: the client's connection stays silent.
	if !p.waitGate(pair) {
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return // the server is down: the client sees its connection closed
	}
	p.mu.Lock()
	pair.server = s
	p.mu.Unlock()
	select {
	case <-pair.done: // cut while dialing
		_ = s.Close()
		return
	default:
	}
	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); p.pump(pair, s, pair.client) }()
	go func() { defer pumps.Done(); p.pump(pair, pair.client, s) }()
	pumps.Wait()
}

// pump copies src to dst, holding each chunk at the gate; it closes the pair when either side
// ends (a half-close is not needed for Postgres).
func (p *tcpProxy) pump(pair *proxyPair, dst, src net.Conn) {
	defer pair.close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitGate(pair) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a closed socket: either way the pair ends
		}
	}
}

// waitGate blocks while the proxy is blackholed; false when the pair was closed meanwhile.
func (p *tcpProxy) waitGate(pair *proxyPair) bool {
	p.mu.Lock()
	g := p.gate
	p.mu.Unlock()
	select {
	case <-g:
		return true
	case <-pair.done:
		return false
	}
}

// Blackhole stops forwarding in both directions; no socket is closed.
func (p *tcpProxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate: // open: replace with a blocking gate
		p.gate = make(chan struct{})
	default: // already blackholed
	}
}

// Unblock resumes forwarding.
func (p *tcpProxy) Unblock() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// Cut closes every open connection (both sides) and returns how many there were.
func (p *tcpProxy) Cut() int {
	p.mu.Lock()
	pairs := make([]*proxyPair, 0, len(p.conns))
	for c := range p.conns {
		pairs = append(pairs, c)
	}
	p.mu.Unlock()
	for _, c := range pairs {
		c.close()
	}
	return len(pairs)
}

// Conns is the number of connections open through the proxy.
func (p *tcpProxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops listening, closes every connection and waits for the goroutines; safe twice.
func (p *tcpProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.Unblock() // let parked pumps see their closed pairs promptly
	p.Cut()
	p.wg.Wait()
}
