//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package postgres

import "net"

// socketIdle cannot peek portably here: assume the connection is usable
// (a dead one fails its next request, and the pool then drops it).
func socketIdle(net.Conn) bool { return true }
