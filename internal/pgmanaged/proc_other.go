//go:build unix && !linux && !aix && !solaris

package pgmanaged

import "syscall"

// sysProcAttr runs a child in its own process group, so a terminal's Ctrl-C
// reaches Vigil only, with the cluster owner's credentials. There is no
// parent-death signal outside Linux: a server orphaned by a killed Vigil
// keeps running, and the next Start reports ErrAlreadyRunning.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: cred,
	}
}

// serverPIDs cannot inspect other processes' working directories here; ok
// is always false and postgres's own lock-file check decides.
func serverPIDs(string) (pids []int, ok bool) {
	return nil, false
}
