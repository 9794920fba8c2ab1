//go:build !linux

package pgelect

import (
	"syscall"
	"time"
)

// userTimeout: TCP_USER_TIMEOUT is Linux's; elsewhere keepalives alone bound a half-open link.
func userTimeout(time.Duration) func(network, address string, c syscall.RawConn) error { return nil }
