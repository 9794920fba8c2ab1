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
	"time"
)

// maxRejecting bounds the goroutines (and file descriptors) busy answering 503 to connections
// over the cap; beyond it an excess connection is closed without a reply.
const maxRejecting = 64

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
// so in-flight work is never dropped. Only when every connection is active does the new one get
// a raw "503 Service Unavailable" with a JSON body and is closed. Accept never stalls: slow
// connections cannot lock honest clients out, and the process stays below its file-descriptor
// limit.
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
			if front := l.evictable.Front(); front != nil {
				victim = front.Value.(*limitedConn)
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

// refuse answers 503 on a connection over the cap and closes it, without blocking Accept.
func (l *connLimiter) refuse(c net.Conn) {
	l.stats.refused.Add(1)
	l.mu.Lock()
	if now := time.Now(); now.Sub(l.lastLog) > time.Second {
		l.lastLog = now
		l.mu.Unlock()
		l.log.Warn("connection refused with 503: every connection is busy (--http-max-connections)",
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
