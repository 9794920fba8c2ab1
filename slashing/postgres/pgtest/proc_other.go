//go:build !linux

package pgtest

import "syscall"

// serverProcAttr runs the server as cred. Without a parent-death signal the
// server outlives a test binary that is killed; Main stops it otherwise.
func serverProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
