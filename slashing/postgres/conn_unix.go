//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package postgres

import (
	"errors"
	"net"
	"syscall"
)

// socketIdle peeks at the socket without blocking: true when nothing is
// waiting to be read (the healthy state of an idle connection). It uses
// RawConn.Control, not Read: pgx may have a background reader parked in a
// Read on the connection (started when a write was slow), which holds the
// read lock until the next answer arrives; a peek does not consume data and
// does not disturb it.
func socketIdle(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	idle := true
	var buf [1]byte
	err = rc.Control(func(fd uintptr) {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK) || errors.Is(rerr, syscall.EINTR):
			idle = true
		case rerr != nil, n >= 0:
			// Data (n > 0), end of file (n == 0), or a socket error.
			idle = false
		}
	})
	return err == nil && idle
}
