package pgtest

import "syscall"

// serverProcAttr runs the server as cred, killed (SIGQUIT: immediate
// shutdown) when the test binary dies.
func serverProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}
