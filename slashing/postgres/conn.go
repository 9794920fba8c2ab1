package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// countingConn is the network connection under every pgx connection of a
// store. Each Write is one request the client sends to the server: pgx
// buffers a whole request (e.g. Bind/Execute/Sync) and flushes it with one
// Write, then waits for the answer, so Writes count network round trips.
// Stats.RoundTrips is the sum over the store's connections, which is how
// the one-round-trip-per-signature claim is measured rather than assumed.
type countingConn struct {
	net.Conn
	writes *atomic.Uint64
	broken atomic.Bool // a read or write failed: the connection is not reusable
	// notReplicated: the server warned, during the last statement, that a commit's wait for
	// synchronous replication was cancelled (the commit is local only). Set by onNotice,
	// taken by Store.writeRow.
	notReplicated atomic.Bool
}

// counting returns the countingConn under a pgx connection (nil if there is none).
func counting(conn *pgx.Conn) *countingConn { return countingOf(conn.PgConn().Conn()) }

func countingOf(nc net.Conn) *countingConn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	cc, _ := nc.(*countingConn)
	return cc
}

// onNotice watches the server's notices for the one that says a commit was not replicated:
// PostgreSQL reports a synchronous-replication wait cancelled by a query cancel
// (pg_cancel_backend, a client's cancel request) as a WARNING and then completes the COMMIT as
// if it had succeeded, although no synchronous standby acknowledged it. The messages are
// matched in English (lc_messages C or en, the server default).
func onNotice(c *pgconn.PgConn, n *pgconn.Notice) {
	if !strings.Contains(n.Message, "synchronous replication") && !strings.Contains(n.Detail, "committed locally") {
		return
	}
	if cc := countingOf(c.Conn()); cc != nil {
		cc.notReplicated.Store(true)
	}
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	n, err := c.Conn.Write(b)
	if err != nil && !isTimeout(err) {
		c.broken.Store(true)
	}
	return n, err
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && !isTimeout(err) {
		c.broken.Store(true)
	}
	return n, err
}

// isTimeout: pgx uses read deadlines to interrupt reads (context
// cancellation, its background reader); such a timeout does not break the
// connection by itself.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dialer returns a pgconn DialFunc that counts writes into n.
func dialer(n *atomic.Uint64, keepAlive time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{KeepAlive: keepAlive}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, writes: n}, nil
	}
}

// idleConnUsable reports whether an idle pooled connection may be handed out,
// without a network round trip: an idle PostgreSQL connection receives
// nothing, so readable bytes (a FATAL message from a server shutting down or
// terminating the backend) or end of file mean it is dead, and so does a
// read or write error already seen by pgx's background reader. It replaces
// pgxpool's ping-before-use, which would double the round trips of a
// signature on a lightly loaded signer. A connection broken without a FIN
// (network partition) is not detected here; its next request fails at the
// caller's deadline and the pool then drops it.
func idleConnUsable(conn *pgx.Conn) bool {
	cc := counting(conn)
	if cc == nil {
		return true
	}
	return !cc.broken.Load() && socketIdle(cc.Conn)
}
