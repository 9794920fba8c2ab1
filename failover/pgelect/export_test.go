package pgelect

import "net"

// RawLockConn is the socket under the lock connection (tests cut it as a killed process's
// kernel would).
func (b *Backend) RawLockConn() net.Conn {
	if b.lock == nil {
		return nil
	}
	return b.lock.PgConn().Conn()
}
