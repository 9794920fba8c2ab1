package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockDataDir takes an exclusive lock on <dir>/vigil.lock for the life of the process, so a
// second `vigil serve` on the same data dir refuses to start instead of sharing the embedded
// database's directory, overwriting vigil.ports and racing on keymanager files. The lock is an
// flock(2) on an open file: the kernel releases it when the process exits in any way (kill -9
// included), so a stale lock file never blocks a restart.
func lockDataDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, "vigil.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if err == syscall.EWOULDBLOCK {
			pid := strings.TrimSpace(string(holder))
			if pid == "" {
				pid = "unknown"
			}
			return nil, fmt.Errorf("data dir %s is in use by another vigil serve (pid %s, lock %s): each instance needs its own --data-dir", dir, pid, path)
		}
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
