package pgmanaged

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr runs a child in its own process group, so a terminal's Ctrl-C
// reaches Vigil only, with the cluster owner's credentials, and with SIGQUIT
// (an immediate shutdown, for a postmaster) as its parent-death signal, so
// the server does not outlive a Vigil that was killed. Go sets the signal
// after switching credentials, which would otherwise clear it.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: cred,
		Pdeathsig:  syscall.SIGQUIT,
	}
}

// serverPIDs returns the pids of live postgres processes (postmaster or
// backends; all keep the cluster as their working directory) serving the
// cluster in dir. ok is false when /proc cannot be read.
func serverPIDs(dir string) (pids []int, ok bool) {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		proc := "/proc/" + e.Name()
		// Zombies and processes of other users (when not root) have no
		// readable cwd; neither can be serving this cluster for us.
		cwd, err := os.Readlink(proc + "/cwd")
		if err != nil || cwd != dir {
			continue
		}
		exe, err := os.Readlink(proc + "/exe")
		if err != nil {
			continue
		}
		switch filepath.Base(strings.TrimSuffix(exe, " (deleted)")) {
		case "postgres", "postmaster":
			pids = append(pids, pid)
		}
	}
	return pids, true
}
