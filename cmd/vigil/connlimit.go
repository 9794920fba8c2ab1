package main

import (
	"container/list"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxRejecting bounds the goroutines (and file descriptors) busy answering 503 to connections
// over the cap; beyond it an excess connection is closed without a reply.
const maxRejecting = 64

// maxEvictScan bounds the evictable connections Accept examines for one victim (each costs a
// non-blocking peek at its socket, under the limiter's lock); past it the new connection is
// refused as if none were evictable.
const maxEvictScan = 64

// connStats are counters shared by the listeners (exported as metrics by apply).
type connStats struct {
	open    atomic.Int64
	evicted atomic.Uint64
	refused atomic.Uint64
}

// connLimiter is a listener that holds at most max connections. At the cap, a new connection
// takes the place of the oldest evictable one: a connection that has not yet sent a complete
// request (http.StateNew) or sits idle between requests (http.StateIdle), oldest by when it
// became so. A connection whose request is being handled (http.StateActive) is never closed,
// so in-flight work is never dropped. Only when no connection is evictable does the new one get
// a raw "503 Service Unavailable" with a JSON body and is closed. Accept never stalls: slow
// connections cannot lock honest clients out, and the process stays below its file-descriptor
// limit.
//
// StateNew and StateIdle say what the server has seen, not what the client has sent: a
// connection stays in StateNew from Accept until its server goroutine has read and parsed the
// request headers. On a loaded machine Accept runs ahead of those goroutines (it takes a burst
// of queued connections before any of them is read), so an honest client whose whole request is
// already in the socket would look "not yet requesting" and be evicted by the next arrivals (as
// would an idle keep-alive connection whose next request has just arrived). That lag is the
// server's, not the client's. So a connection is evicted only when it owes the server bytes:
// nothing it sent is unread in the socket, and the server has looked at everything it read
// (waitingOnClient). A connection that has sent nothing, or whose partial headers the server has
// read, makes room; one with bytes the server has not caught up with keeps its place. When no
// connection makes room (all busy, or not yet read), the new one gets the 503 with Retry-After:
// refusing a connection that has sent nothing yet is a clean "try again", dropping one whose
// request has arrived is not. The protection lasts only while the server lags behind the bytes
// already received, so a slow client cannot keep it. (An age threshold would not do: it would
// keep a young silent connection and drop an old unread request.)
//
// Connection state arrives through connStateHook (http.Server.ConnState), which the
// connections carry back here.
type connLimiter struct {
	net.Listener
	max       int
	stats     *connStats
	log       *slog.Logger
	rejecting chan struct{} // semaphore of 503 writers
	reply503  []byte

	mu        sync.Mutex
	count     int        // tracked connections
	evictable *list.List // of *limitedConn in StateNew or StateIdle, oldest first
	lastLog   time.Time
}

func newConnLimiter(ln net.Listener, max int, stats *connStats, log *slog.Logger) *connLimiter {
	body := `{"code":503,"message":"too many connections (--http-max-connections ` + strconv.Itoa(max) + ` reached, all busy): try again"}` + "\n"
	return &connLimiter{
		Listener: ln, max: max, stats: stats, log: log,
		rejecting: make(chan struct{}, maxRejecting),
		evictable: list.New(),
		reply503: []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + body),
	}
}

// limitedConn is one accepted connection. Its fields are guarded by the limiter's mu.
type limitedConn struct {
	net.Conn
	l       *connLimiter
	tracked bool
	elem    *list.Element // in l.evictable when evictable
	// unparsed: the last Read returned bytes and the server has not asked for more since, so it
	// may hold a complete request it is still parsing (not guarded by mu).
	unparsed atomic.Bool
}

// Read tracks whether the server has looked at everything it read (see waitingOnClient).
func (c *limitedConn) Read(p []byte) (int, error) {
	c.unparsed.Store(false) // the server wants more: what it read before is not a whole request
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.unparsed.Store(true)
	}
	return n, err
}

// waitingOnClient reports whether c waits on its client, not on the server: the server has
// looked at every byte it read, and none is left unread in the socket. False while the server
// parses what it read, or has not yet read bytes that arrived (its goroutine not started yet, or
// not yet woken): evicting then could drop a request that is already here.
func (c *limitedConn) waitingOnClient() bool {
	if c.unparsed.Load() {
		return false
	}
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true // closed: nothing to protect
	}
	pending := false
	var b [1]byte
	_ = rc.Control(func(fd uintptr) {
		// A peek that never blocks: n > 0 is unread data; 0 is the client's FIN (closed: evictable);
		// EAGAIN is an empty socket.
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		pending = err == nil && n > 0
	})
	return !pending
}

// Accept returns the next connection, making room for it (or refusing it) at the cap.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l}
		var victim *limitedConn
		l.mu.Lock()
		if l.count >= l.max {
			if victim = l.victimLocked(); victim != nil {
				l.untrackLocked(victim)
			}
		}
		admitted := l.count < l.max
		if admitted {
			l.count++
			lc.tracked = true
			lc.elem = l.evictable.PushBack(lc) // StateNew until its first request is read
			l.stats.open.Add(1)
		}
		l.mu.Unlock()
		if victim != nil {
			l.stats.evicted.Add(1)
			_ = victim.Conn.Close() // its server goroutine sees the error and ends
		}
		if admitted {
			return lc, nil
		}
		l.refuse(c)
	}
}

// victimLocked is the oldest evictable connection that waits on its client, or nil (the new
// connection is refused).
func (l *connLimiter) victimLocked() *limitedConn {
	n := 0
	for e := l.evictable.Front(); e != nil && n < maxEvictScan; e, n = e.Next(), n+1 {
		if c := e.Value.(*limitedConn); c.waitingOnClient() {
			return c
		}
	}
	return nil
}

// refuse answers 503 on a connection over the cap and closes it, without blocking Accept.
func (l *connLimiter) refuse(c net.Conn) {
	l.stats.refused.Add(1)
	l.mu.Lock()
	if now := time.Now(); now.Sub(l.lastLog) > time.Second {
		l.lastLog = now
		l.mu.Unlock()
		l.log.Warn("connection refused with 503: every connection is busy or has a request not yet read (--http-max-connections)",
			"max", l.max, "remote", c.RemoteAddr().String(), "refused_total", l.stats.refused.Load())
	} else {
		l.mu.Unlock()
	}
	select {
	case l.rejecting <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-l.rejecting }()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		_, _ = c.Write(l.reply503)
		// Read what the client sent before closing: closing with unread data makes the kernel
		// send a reset, and the client would see "connection reset" instead of the 503.
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
		_ = c.Close()
	}()
}

// untrackLocked forgets a connection (closed, hijacked or evicted).
func (l *connLimiter) untrackLocked(c *limitedConn) {
	if !c.tracked {
		return
	}
	c.tracked = false
	if c.elem != nil {
		l.evictable.Remove(c.elem)
		c.elem = nil
	}
	l.count--
	l.stats.open.Add(-1)
}

func (l *connLimiter) setState(c *limitedConn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !c.tracked {
		return
	}
	switch s {
	case http.StateActive:
		if c.elem != nil {
			l.evictable.Remove(c.elem)
			c.elem = nil
		}
	case http.StateIdle:
		if c.elem != nil {
			l.evictable.Remove(c.elem)
		}
		c.elem = l.evictable.PushBack(c)
	case http.StateHijacked, http.StateClosed:
		l.untrackLocked(c)
	}
}

// Close closes the connection and frees its place.
func (c *limitedConn) Close() error {
	c.l.mu.Lock()
	c.l.untrackLocked(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// connStateHook is the http.Server ConnState of listeners made by connLimiter (also behind a TLS
// listener wrapped around it: the state must reach the limiter, or busy connections would look
// evictable).
func connStateHook(c net.Conn, s http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*limitedConn); ok {
		lc.l.setState(lc, s)
	}
}
