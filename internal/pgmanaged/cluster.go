//go:build unix && !aix && !solaris

package pgmanaged

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

const (
	// maxLogSize is the size past which Start rotates postgres.log to
	// postgres.log.1, keeping one old generation.
	maxLogSize = 16 << 20
	// maxSocketPath is the longest Unix socket path every supported system
	// accepts (sun_path is 104 bytes on macOS and the BSDs, 108 on Linux,
	// including the terminating NUL).
	maxSocketPath = 103
	// tailLines and tailBytes bound the server log quoted in errors.
	tailLines = 20
	tailBytes = 8 << 10
)

// pgHBA admits the two roles Vigil uses over the Unix socket, without a
// password, and nothing else: the server opens no TCP port, so there is no
// host line. Trust is safe here only because of where the socket is: in a
// directory of mode 0700 owned by the server's OS user (see
// cluster.socketDir), itself mode 0700, so the kernel lets no one but that
// user and root connect, and both can read and write the cluster's files
// anyway. Start rewrites the file whenever it differs.
const pgHBA = `# Written by Vigil (internal/pgmanaged), and rewritten at every start.
# The server opens no TCP port. Its only Unix socket is in a directory of
# mode 0700 owned by the server's OS user, so no one but that user and root
# can connect, and they can read the cluster's files anyway: trust grants
# them nothing more. postgres is the superuser Vigil sets the cluster up
# with; vigil is the unprivileged role Vigil runs as.
# TYPE  DATABASE  USER      METHOD
local   all       postgres  trust
local   all       vigil     trust
`

// unusualPathChars are the characters a socket directory may not hold:
// unix_socket_directories would need them quoted, and pgx reads a comma in
// host as a list of hosts.
const unusualPathChars = ",\"'\\ \t\n"

// tempSocketPrefix starts the name of the socket directory made in the
// system's temporary directory when the data directory's path is too long.
const tempSocketPrefix = "vigil-pg-"

// confDefaults is appended to postgresql.conf when the cluster is created.
// Later lines win, so these override initdb's values; operators may edit
// them. What Vigil relies on is set on the command line instead (see
// Instance.launch).
const confDefaults = `
# --- Added by Vigil (internal/pgmanaged) when this cluster was created. ---
# Modest sizes for an observability store embedded on a shared host; edit to
# taste. listen_addresses, port, unix_socket_directories, fsync,
# full_page_writes, synchronous_commit and logging are set on Vigil's command
# line and cannot be changed here.
max_connections = 100
shared_buffers = 128MB
work_mem = 8MB
maintenance_work_mem = 128MB
wal_compression = on
checkpoint_timeout = 10min
jit = off
timezone = 'UTC'
log_timezone = 'UTC'
`

// owner is the unprivileged account the cluster runs as when Vigil is root.
// A nil *owner means the current user.
type owner struct {
	name     string
	uid, gid uint32
	groups   []uint32
}

// lookupOwner returns the "postgres" account when the process is root, and
// nil otherwise.
func lookupOwner() (*owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	const name = "postgres"
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, errors.New(`running as root, and initdb and postgres refuse to run as root, but there is no "postgres" user to run them as: ` +
				"create one (useradd --system --home-dir /var/lib/postgresql postgres), run vigil as a non-root user, " +
				"or point Vigil at an existing server with --db or VIGIL_DB")
		}
		return nil, fmt.Errorf("look up user %s: %w", name, err)
	}
	o := &owner{name: name}
	if o.uid, err = parseID(u.Uid); err != nil {
		return nil, fmt.Errorf("user %s: uid: %w", name, err)
	}
	if o.gid, err = parseID(u.Gid); err != nil {
		return nil, fmt.Errorf("user %s: gid: %w", name, err)
	}
	if o.uid == 0 {
		return nil, fmt.Errorf("user %s has uid 0; postgres refuses to run as root", name)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("user %s: groups: %w", name, err)
	}
	for _, g := range gids {
		id, err := parseID(g)
		if err != nil {
			return nil, fmt.Errorf("user %s: group: %w", name, err)
		}
		o.groups = append(o.groups, id)
	}
	return o, nil
}

func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

func (o *owner) String() string {
	if o == nil {
		return "current user"
	}
	return o.name
}

func (o *owner) credential() *syscall.Credential {
	if o == nil {
		return nil
	}
	return &syscall.Credential{Uid: o.uid, Gid: o.gid, Groups: o.groups}
}

// chown gives path to o; a no-op for the current user.
func (o *owner) chown(path string) error {
	if o == nil {
		return nil
	}
	if err := os.Lchown(path, int(o.uid), int(o.gid)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, o.name, err)
	}
	return nil
}

// prepareDataDir creates the data directory if needed and checks that the
// cluster's OS user can reach it.
func prepareDataDir(dataDir string, o *owner) error {
	// A data dir created here lets the server's user traverse it but not
	// list it. An existing one keeps the mode its operator chose, and the
	// check below explains what to change.
	mode := os.FileMode(0o700)
	if o != nil {
		mode = 0o711
	}
	if err := os.MkdirAll(dataDir, mode); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if o == nil {
		return nil
	}
	return checkTraversable(dataDir, o)
}

// checkTraversable verifies that o may search every directory from dir up
// to the root, judged by mode bits (ACLs are not consulted).
func checkTraversable(dir string, o *owner) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check data dir access: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("check data dir access: no ownership information for %s", p)
		}
		if !canSearch(fi.Mode().Perm(), uint32(st.Uid), uint32(st.Gid), o) {
			return fmt.Errorf("data dir %s is not reachable by user %s (uid %d), which runs the managed postgres: "+
				"%s (mode %04o, owner uid %d) does not let it through; "+
				"put the data dir somewhere it can reach (e.g. /var/lib/vigil) or run: chmod o+x %s",
				dir, o.name, o.uid, p, fi.Mode().Perm(), st.Uid, p)
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}

func canSearch(perm fs.FileMode, uid, gid uint32, o *owner) bool {
	switch {
	case uid == o.uid:
		return perm&0o100 != 0
	case gid == o.gid || slices.Contains(o.groups, gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// cluster prepares the cluster directory and runs its programs.
type cluster struct {
	dataDir string
	dir     string // DataDir/postgres
	bin     string
	owner   *owner
	log     *os.File
	logger  *slog.Logger
}

// initializedMajor returns the major version recorded in the cluster's
// PG_VERSION, or 0 when there is no cluster yet.
func (c *cluster) initializedMajor() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "PG_VERSION"))
	if err == nil {
		major, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return 0, fmt.Errorf("read %s: bad PG_VERSION %q", c.dir, bytes.TrimSpace(b))
		}
		return major, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("read cluster version: %w", err)
	}
	// initdb works in a scratch directory renamed into place, so a
	// directory without PG_VERSION was not made by Vigil: leave it alone
	// unless it is empty.
	entries, err := os.ReadDir(c.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read cluster dir: %w", err)
	case len(entries) > 0:
		return 0, fmt.Errorf("%s is not empty but holds no PG_VERSION, so it is not a cluster Vigil created; move it away", c.dir)
	}
	if err := os.Remove(c.dir); err != nil {
		return 0, fmt.Errorf("remove empty cluster dir: %w", err)
	}
	return 0, nil
}

// initdb creates the cluster in a scratch directory and renames it into
// place, so an interrupted initdb never leaves a half-made cluster behind.
func (c *cluster) initdb(ctx context.Context) error {
	tmp := filepath.Join(c.dataDir, initdbSubdir)
	if err := os.RemoveAll(tmp); err != nil { // left by an interrupted initdb; never held data
		return fmt.Errorf("remove scratch dir: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("create scratch dir: %w", err)
	}
	if err := c.owner.chown(tmp); err != nil {
		return err
	}
	c.logger.InfoContext(ctx, "creating postgres cluster", "data_dir", c.dir, "bin_dir", c.bin, "user", c.owner.String())
	cmd := c.command(filepath.Join(c.bin, "initdb"),
		"-D", tmp,
		"-U", adminRole,
		"--encoding=UTF8",
		"--locale=C",
		// Replaced by pgHBA before the first start.
		"--auth-local=trust",
		"--auth-host=reject",
		"--no-instructions",
	)
	err := c.runInitdb(ctx, cmd, tmp)
	if err != nil {
		return errors.Join(err, os.RemoveAll(tmp))
	}
	if err := os.Rename(tmp, c.dir); err != nil {
		return fmt.Errorf("move new cluster into place: %w", err)
	}
	if err := syncDir(c.dataDir); err != nil {
		return err
	}
	return nil
}

func (c *cluster) runInitdb(ctx context.Context, cmd *exec.Cmd, tmp string) error {
	p, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("run initdb: %w", err)
	}
	if err := p.wait(ctx); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	// Appending keeps the file's owner and mode.
	return writeFileSync(filepath.Join(tmp, "postgresql.conf"), confDefaults, os.O_APPEND)
}

// writeHBA replaces the cluster's pg_hba.conf with pgHBA unless it already
// says exactly that. It runs before every start, which is how clusters of
// earlier versions, which trusted 127.0.0.1, lose their host line.
func (c *cluster) writeHBA(ctx context.Context) error {
	path := filepath.Join(c.dir, "pg_hba.conf")
	old, err := os.ReadFile(path)
	if err == nil && string(old) == pgHBA {
		return nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read pg_hba.conf: %w", err)
	}
	// Truncating keeps an existing file's owner and mode.
	if err := writeFileSync(path, pgHBA, os.O_CREATE|os.O_TRUNC); err != nil {
		return err
	}
	if err := c.owner.chown(path); err != nil {
		return err
	}
	c.logger.InfoContext(ctx, "wrote pg_hba.conf: unix socket only, roles postgres and vigil", "data_dir", c.dir)
	return nil
}

// writeFileSync writes s to path, a new file getting mode 0600, and syncs
// it.
func writeFileSync(path, s string, flag int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|flag, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	_, err = io.WriteString(f, s)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// fixOwnership makes sure the cluster belongs to the user about to run it.
// As root it re-owns a cluster whose owner differs, which happens when a
// container image is rebuilt and the postgres account gets another uid.
func (c *cluster) fixOwnership() error {
	fi, err := os.Stat(c.dir)
	if err != nil {
		return fmt.Errorf("stat cluster dir: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("stat cluster dir: no ownership information for %s", c.dir)
	}
	if c.owner == nil {
		if euid := os.Geteuid(); int(st.Uid) != euid {
			return fmt.Errorf("cluster %s belongs to uid %d but vigil runs as uid %d; run vigil as that user or chown -R the directory", c.dir, st.Uid, euid)
		}
		return nil
	}
	if uint32(st.Uid) == c.owner.uid {
		return nil
	}
	c.logger.Warn("re-owning postgres cluster", "data_dir", c.dir, "from_uid", st.Uid, "user", c.owner.name)
	return filepath.WalkDir(c.dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("re-own cluster: %w", err)
		}
		return c.owner.chown(path)
	})
}

// socketDir picks, creates and checks the directory of the server's Unix
// socket for port, the only way into the server: it is mode 0700 and owned
// by the server's OS user, so no other user but root can connect (see
// pgHBA).
//
// It is DataDir/pgsocket unless the socket's path (DIR/.s.PGSQL.PORT)
// would not fit in a socket address (maxSocketPath) or the directory's
// path holds one of unusualPathChars. Then it is vigil-pg-<hash of the
// cluster's path> in the system's temporary directory, or in /tmp when
// that does not fit either or, as root, the server's OS user cannot
// reach it. The name does not change between starts, so neither does URL;
// and since another user could have created a directory of that name
// first, one that the server's OS user does not own is refused.
func (c *cluster) socketDir(ctx context.Context, port int) (string, error) {
	inData := filepath.Join(c.dataDir, socketSubdir)
	if socketPathOK(inData, port) {
		return inData, c.privateDir(inData, true)
	}
	sum := sha256.Sum256([]byte(c.dir))
	name := tempSocketPrefix + hex.EncodeToString(sum[:8])
	for _, base := range []string{os.TempDir(), "/tmp"} {
		dir := filepath.Join(base, name)
		if !socketPathOK(dir, port) || c.owner != nil && checkTraversable(base, c.owner) != nil {
			continue
		}
		c.logger.InfoContext(ctx, "unix socket outside the data dir: the path there is too long or unusual", "dir", dir, "data_dir", c.dataDir)
		return dir, c.privateDir(dir, false)
	}
	return "", fmt.Errorf("no directory for the server's unix socket: %s is too long for a socket path (at most %d bytes with /.s.PGSQL.%d) "+
		"or holds one of %q, and so is %s; use a shorter data dir", inData, maxSocketPath, port, unusualPathChars, os.TempDir())
}

// socketPathOK reports whether dir can hold the socket for port.
func socketPathOK(dir string, port int) bool {
	return filepath.IsAbs(dir) && !strings.ContainsAny(dir, unusualPathChars) &&
		len(dir)+len("/.s.PGSQL.")+len(strconv.Itoa(port)) <= maxSocketPath
}

// privateDir creates dir with mode 0700 for the server's OS user, or makes
// sure an existing one is a directory, not a symlink, owned by that user
// and of mode 0700. As root it takes over a directory that root owns (left
// by an interrupted start) and, when trusted (inside the data directory,
// whose owner decides what is in it), one of any owner, as fixOwnership
// does for the cluster.
func (c *cluster) privateDir(dir string, trusted bool) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create socket dir: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("stat socket dir: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok {
		return fmt.Errorf("socket dir %s is not a directory", dir)
	}
	want := uint32(os.Geteuid())
	if c.owner != nil {
		want = c.owner.uid
	}
	if uint32(st.Uid) != want {
		if c.owner == nil || !trusted && st.Uid != 0 {
			return fmt.Errorf("socket dir %s belongs to uid %d, not to uid %d, which runs the managed postgres; remove it", dir, st.Uid, want)
		}
		if err := c.owner.chown(dir); err != nil {
			return err
		}
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make socket dir private: %w", err)
		}
	}
	return nil
}

// clearStaleSockets removes the socket and socket lock files that a server
// killed together with its Vigil left in dir. postgres removes a stale
// socket lock file itself, unless its pid now belongs to another process,
// which is common after a container restart. The directory serves this
// cluster alone, so where the cluster's processes can be listed and there
// are none, whatever socket it holds is stale.
func (c *cluster) clearStaleSockets(dir string) error {
	if pids, ok := serverPIDs(c.dir); !ok || len(pids) > 0 {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read socket dir: %w", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".s.PGSQL.") {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale socket: %w", err)
		}
	}
	return nil
}

// clearStaleLock removes a postmaster.pid that no live server holds, and
// reports ErrAlreadyRunning when one does. Postgres would remove a lock file
// whose pid is gone by itself, but not one whose pid was reused by another
// process, which is common in containers. Where processes cannot be
// inspected the file is left to postgres.
func (c *cluster) clearStaleLock() error {
	lock := filepath.Join(c.dir, "postmaster.pid")
	b, err := os.ReadFile(lock)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read lock file: %w", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])) // 0 for an empty or torn file
	users, ok := serverPIDs(c.dir)
	if !ok {
		return nil
	}
	if len(users) > 0 {
		p := users[0]
		if slices.Contains(users, pid) {
			p = pid
		}
		return fmt.Errorf("%w: postgres (pid %d) is using %s; stop the Vigil process that started it, or the server itself with: kill -INT %d",
			ErrAlreadyRunning, p, c.dir, p)
	}
	if err := os.Remove(lock); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale lock file: %w", err)
	}
	c.logger.Info("removed stale postmaster.pid", "pid", pid, "data_dir", c.dir)
	return nil
}

// command builds an exec.Cmd for a server program running as the cluster's
// user in its own process group, with output to the log file.
func (c *cluster) command(path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	// The working directory must be reachable by the server's user, which
	// the caller's (say /root) may not be.
	cmd.Dir = c.dataDir
	cmd.Env = childEnv()
	cmd.Stdout = c.log
	cmd.Stderr = c.log
	cmd.SysProcAttr = sysProcAttr(c.owner.credential())
	return cmd
}

// childEnv is Vigil's environment without PG* variables, which would
// otherwise change how the server and initdb behave (PGDATA, PGPORT, ...).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// openLog opens the server log for appending, rotating it first when it has
// grown past maxLogSize, and returns its size before this start. The log
// and its previous generation are made mode 0600 (earlier versions made
// them 0640): server errors quote statements and row values.
func openLog(path string) (*os.File, int64, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxLogSize {
		if err := os.Rename(path, path+".1"); err != nil {
			return nil, 0, fmt.Errorf("rotate postgres log: %w", err)
		}
	}
	if err := os.Chmod(path+".1", 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("make old postgres log private: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("open postgres log: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Mode().Perm() != 0o600 {
		err = f.Chmod(0o600)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("open postgres log: %w", err)
	}
	return f, fi.Size(), nil
}

// readLogTail returns the last lines written to the log at or after offset
// from, or "" when there are none or the log cannot be read.
func readLogTail(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() <= from {
		return ""
	}
	start := max(from, fi.Size()-tailBytes)
	b := make([]byte, fi.Size()-start)
	if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if start > from && len(lines) > 1 {
		lines = lines[1:] // cut mid-line
	}
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return strings.Join(lines, "\n")
}
