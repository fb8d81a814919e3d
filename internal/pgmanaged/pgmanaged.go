//go:build unix && !aix && !solaris

package pgmanaged

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrAlreadyRunning reports that the data directory is taken: another Vigil
// process (or another Instance in this one) manages it, or a live postgres
// server not started by Vigil serves its cluster. Start never touches a
// cluster in use.
var ErrAlreadyRunning = errors.New("data directory already in use")

const (
	clusterSubdir = "postgres"
	initdbSubdir  = "postgres.initdb"
	socketSubdir  = "pgsocket"
	logName       = "postgres.log"
	lockName      = "postgres.lock"
	// legacyPortFileName is where earlier versions, whose server listened
	// on 127.0.0.1, recorded its port, world-readable. Start deletes it.
	legacyPortFileName = "postgres.port"

	// adminRole is the bootstrap superuser. Start alone connects as it, to
	// set the cluster up; no connection string for it leaves the package.
	adminRole = "postgres"
	// appRole is the unprivileged role Vigil connects as. It owns
	// databaseName and everything in it.
	appRole      = "vigil"
	databaseName = "vigil"

	// defaultPort numbers the socket when Config.Port is 0. The socket
	// directory is private to the cluster, so no other server can clash
	// with it, and 5432 lets psql find the socket from -h alone.
	defaultPort = 5432

	// pollInterval paces the readiness probes.
	pollInterval = 50 * time.Millisecond
	// startCleanupTimeout bounds stopping a server whose start failed.
	startCleanupTimeout = 15 * time.Second
)

// Config says where and how to run the managed cluster.
type Config struct {
	// DataDir is Vigil's data directory; the cluster lives in
	// DataDir/postgres and is created with initdb on first start. Required.
	DataDir string
	// BinDir holds initdb and postgres. Empty means discovered as by
	// [FindBinDir], preferring the version that created an existing cluster.
	BinDir string
	// Port numbers the server's Unix socket (SOCKETDIR/.s.PGSQL.PORT); the
	// server opens no TCP port. 0 means 5432.
	Port int
	// Logger receives start and stop events; nil discards them. The server's
	// own log goes to DataDir/postgres.log, not here.
	Logger *slog.Logger
}

// Instance is a running managed server. Its methods are safe for concurrent
// use.
type Instance struct {
	logger     *slog.Logger
	clusterDir string
	logPath    string
	logOffset  int64 // size of the log before this start; errors quote only newer lines
	socketDir  string
	port       int // numbers the socket in socketDir
	proc       *process
	lock       *os.File // flock on DataDir/postgres.lock, held until Stop ends

	stopping atomic.Bool // set once Stop begins, so Run does not report the exit
	stopOnce sync.Once
	stopErr  error
}

// Start prepares the cluster in cfg.DataDir (running initdb on first use),
// starts the server on its private Unix socket, waits until it accepts
// connections, and makes the "vigil" role and database what Vigil expects,
// which upgrades a cluster created by an earlier version in place (see the
// package documentation). ctx bounds all of it, including the crash
// recovery Postgres runs after an unclean stop, which can take a while on a
// large cluster, and the first start after an upgrade, which changes the
// owner of every table; pass a deadline. On error nothing is left running;
// an interrupted upgrade is completed by the next Start.
//
// When Vigil runs as root the server runs as the "postgres" account (see the
// package documentation). Errors wrap [ErrNoBinaries] when no server binaries
// are found and [ErrAlreadyRunning] when the data directory is in use; when
// the server fails to start, the error ends with the last lines of
// DataDir/postgres.log.
//
// The caller owns the returned Instance and must call [Instance.Stop].
func Start(ctx context.Context, cfg Config) (*Instance, error) {
	i, err := start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start managed postgres: %w", err)
	}
	return i, nil
}

func start(ctx context.Context, cfg Config) (*Instance, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("data dir is required")
	}
	port := cfg.Port
	if port == 0 {
		port = defaultPort
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("port %d out of range", cfg.Port)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "pgmanaged")
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("resolve data dir: %w", err)
	}

	c := cluster{dataDir: dataDir, dir: filepath.Join(dataDir, clusterSubdir), logger: logger}

	// Binaries first: without them nothing else matters, and the error
	// says how to install them.
	major, err := c.initializedMajor()
	if err != nil {
		return nil, err
	}
	bin, err := resolveBinDir(ctx, cfg.BinDir, major)
	if err != nil {
		return nil, err
	}
	if major != 0 && bin.major != major {
		return nil, fmt.Errorf("cluster %s was created by PostgreSQL %d but %s holds PostgreSQL %d; "+
			"use the PostgreSQL %d binaries or upgrade the cluster with pg_upgrade", c.dir, major, bin.path, bin.major, major)
	}
	c.bin = bin.path

	owner, err := lookupOwner()
	if err != nil {
		return nil, err
	}
	c.owner = owner
	if err := prepareDataDir(dataDir, owner); err != nil {
		return nil, err
	}

	// One Vigil process at a time manages a data directory. The kernel
	// drops the lock when its holder dies, however it dies.
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			lock.Close()
		}
	}()

	if err := removeLegacyPortFile(dataDir); err != nil {
		return nil, err
	}
	logFile, logOffset, err := openLog(filepath.Join(dataDir, logName))
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the children hold their own descriptors
	c.log = logFile

	if major == 0 {
		if err := c.initdb(ctx); err != nil {
			return nil, withLogTail(err, logFile.Name(), logOffset)
		}
	} else if err := c.fixOwnership(); err != nil {
		return nil, err
	}
	if err := c.clearStaleLock(); err != nil {
		return nil, err
	}
	if err := c.writeHBA(ctx); err != nil {
		return nil, err
	}
	socketDir, err := c.socketDir(ctx, port)
	if err != nil {
		return nil, err
	}
	if err := c.clearStaleSockets(socketDir); err != nil {
		return nil, err
	}

	i := &Instance{
		logger:     logger,
		clusterDir: c.dir,
		logPath:    logFile.Name(),
		logOffset:  logOffset,
		socketDir:  socketDir,
		port:       port,
		lock:       lock,
	}
	begin := time.Now()
	if err := i.launch(&c); err != nil {
		return nil, err
	}
	if err := i.waitReady(ctx); err != nil {
		i.abort(ctx)
		return nil, i.withLog(err, readLogTail(i.logPath, i.logOffset))
	}
	if err := i.setup(ctx); err != nil {
		i.abort(ctx)
		return nil, i.withLog(err, readLogTail(i.logPath, i.logOffset))
	}
	started = true
	logger.InfoContext(ctx, "managed postgres ready", "data_dir", c.dir, "bin_dir", c.bin,
		"socket_dir", socketDir, "port", port, "user", owner.String(), "took", time.Since(begin).Round(time.Millisecond))
	return i, nil
}

// URL returns the connection string of the "vigil" database for the
// unprivileged "vigil" role over the server's Unix socket, in the URL form
// that pgx and libpq share, with the socket directory as host:
// postgres:///vigil?host=%2Fdata%2Fpgsocket&port=5432&user=vigil. It holds
// no password: reaching the socket is the credential, and only the
// server's OS user and root can. It stays valid until Stop and is the same
// at every start of the same data directory with the same port.
func (i *Instance) URL() string {
	return i.connString(appRole, databaseName)
}

// connString returns the connection string of db for role over the socket.
func (i *Instance) connString(role, db string) string {
	q := url.Values{"host": {i.socketDir}, "port": {strconv.Itoa(i.port)}, "user": {role}}
	return (&url.URL{Scheme: "postgres", Path: "/" + db, RawQuery: q.Encode()}).String()
}

// Run supervises the server. It returns nil when ctx is done or once Stop has
// begun, and an error ending with the server log's last lines when the server
// exits on its own (crash, or stopped by someone else), so that an errgroup
// can shut Vigil down.
//
// Run does not stop the server when ctx is done: the components using the
// database must stop first, so stopping is left to [Instance.Stop]. Run may
// be called any number of times, concurrently.
func (i *Instance) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-i.proc.done:
	}
	if i.stopping.Load() {
		return nil
	}
	err := fmt.Errorf("managed postgres exited unexpectedly: %s", exitDescription(i.proc.err))
	return i.withLog(err, readLogTail(i.logPath, i.logOffset))
}

// Stop shuts the server down and waits until it has exited. It requests a
// fast shutdown (SIGINT to the postmaster: sessions are terminated, open
// transactions rolled back, a shutdown checkpoint written). If ctx expires
// first it escalates to an immediate shutdown (SIGQUIT), then after a few
// more seconds to SIGKILL of the server's process group, and returns an
// error wrapping ctx.Err(); committed data is still safe, and the next Start
// runs crash recovery. A ctx that has already expired goes straight to the
// immediate shutdown.
//
// Stop is idempotent: later and concurrent calls wait for the first one and
// return its result. It returns an error, too, when the server had already
// exited with a failure before Stop was called. Once Stop returns, the data
// directory is free for another Start.
func (i *Instance) Stop(ctx context.Context) error {
	i.stopOnce.Do(func() {
		i.stopErr = i.stop(ctx)
	})
	return i.stopErr
}

func (i *Instance) stop(ctx context.Context) error {
	i.stopping.Store(true)
	defer i.lock.Close() // closing releases the flock
	select {
	case <-i.proc.done:
		if i.proc.err != nil {
			return fmt.Errorf("stop managed postgres: server had already exited: %w", i.proc.err)
		}
		return nil
	default:
	}
	begin := time.Now()
	if err := shutdown(ctx, i.proc); err != nil {
		return fmt.Errorf("stop managed postgres: %w", err)
	}
	i.logger.InfoContext(ctx, "managed postgres stopped", "data_dir", i.clusterDir,
		"took", time.Since(begin).Round(time.Millisecond))
	return nil
}

// launch starts the postmaster.
func (i *Instance) launch(c *cluster) error {
	args := []string{
		"-D", c.dir,
		// Settings Vigil depends on; the command line overrides
		// postgresql.conf and postgresql.auto.conf. Without TCP and with
		// a socket only the server's OS user can open, nobody else can
		// connect (see pgHBA).
		"-c", "listen_addresses=",
		"-c", "port=" + strconv.Itoa(i.port),
		"-c", "unix_socket_directories=" + i.socketDir,
		"-c", "unix_socket_permissions=0700",
		"-c", "fsync=on",
		"-c", "full_page_writes=on",
		"-c", "synchronous_commit=on",
		"-c", "cluster_name=vigil",
		"-c", "logging_collector=off",
		"-c", "log_destination=stderr",
	}
	cmd := c.command(filepath.Join(c.bin, "postgres"), args...)
	p, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("run postgres: %w", err)
	}
	i.proc = p
	return nil
}

// waitReady polls until the server accepts connections, exits, or ctx
// ends. It first waits for the postmaster to record itself as ready in its
// lock file, then connects as the superuser and checks that the answering
// server serves this cluster, which no other server can unless someone
// pointed it at our socket directory.
func (i *Instance) waitReady(ctx context.Context) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	lastErr := errors.New("server not ready yet")
	for {
		if postmasterReady(i.clusterDir, i.proc.cmd.Process.Pid) {
			err := i.ping(ctx)
			if err == nil {
				return nil
			}
			var pgErr *pgconn.PgError
			if errors.Is(err, errForeignServer) || errors.Is(err, errNoAdmin) ||
				errors.As(err, &pgErr) && pgErr.Code != "57P03" { // 57P03: starting up
				return err
			}
			lastErr = err
		}
		select {
		case <-i.proc.done:
			return fmt.Errorf("postgres exited during start-up: %s", exitDescription(i.proc.err))
		case <-ctx.Done():
			return fmt.Errorf("wait for postgres to accept connections: %w (last: %v)", ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

// errForeignServer reports a server on our socket that does not serve our
// cluster.
var errForeignServer = errors.New("another postgres server answers on this socket")

// postmasterReady reports whether the cluster's lock file names pid and
// says "ready" (PM_STATUS_READY, line 8, written once the postmaster
// accepts connections).
func postmasterReady(clusterDir string, pid int) bool {
	b, err := os.ReadFile(filepath.Join(clusterDir, "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	return len(lines) >= 8 && strings.TrimSpace(lines[0]) == strconv.Itoa(pid) && strings.TrimSpace(lines[7]) == "ready"
}

// ping connects to the "postgres" database as the superuser and checks the
// server's data directory.
func (i *Instance) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := i.connectAdmin(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var dir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dir); err != nil {
		return fmt.Errorf("check data directory: %w", err)
	}
	if dir != i.clusterDir {
		return fmt.Errorf("%w: %s serves data directory %q, not %s", errForeignServer, i.socketDir, dir, i.clusterDir)
	}
	return nil
}

// abort stops a server whose start failed, with its own bound since ctx may
// be the reason for the failure.
func (i *Instance) abort(ctx context.Context) {
	select {
	case <-i.proc.done: // exited by itself; the caller reports why
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startCleanupTimeout)
	defer cancel()
	if err := shutdown(ctx, i.proc); err != nil {
		i.logger.WarnContext(ctx, "stop failed server", "err", err)
	}
}

// lockDataDir takes an exclusive flock on DataDir/postgres.lock without
// waiting. The descriptor is close-on-exec, so the server never holds it.
func lockDataDir(dataDir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dataDir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: another Vigil process manages %s", ErrAlreadyRunning, dataDir)
		}
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	return f, nil
}

// withLog appends the server log's tail to err and marks a lock-file clash
// (postmaster.pid, or the socket's lock file) as ErrAlreadyRunning.
func (i *Instance) withLog(err error, tail string) error {
	if strings.Contains(tail, `lock file "postmaster.pid" already exists`) || strings.Contains(tail, `lock file ".s.PGSQL.`) {
		err = fmt.Errorf("%w: %w", ErrAlreadyRunning, err)
	}
	if tail == "" {
		return err
	}
	return fmt.Errorf("%w\nlast lines of %s:\n%s", err, i.logPath, tail)
}

// withLogTail is withLog for failures before an Instance exists.
func withLogTail(err error, path string, offset int64) error {
	tail := readLogTail(path, offset)
	if tail == "" {
		return err
	}
	return fmt.Errorf("%w\nlast lines of %s:\n%s", err, path, tail)
}

// killedBy reports whether err is the exit of a process killed by sig.
func killedBy(err error, sig syscall.Signal) bool {
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return false
	}
	ws, ok := exitErr.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

func exitDescription(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// resolveBinDir validates an explicit bin dir or discovers one.
func resolveBinDir(ctx context.Context, dir string, wantMajor int) (binDir, error) {
	if dir == "" {
		return findBinDir(ctx, wantMajor)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return binDir{}, fmt.Errorf("resolve bin dir: %w", err)
	}
	b, err := inspectBinDir(ctx, abs, false)
	if err != nil {
		return binDir{}, fmt.Errorf("bin dir %v: %w", err, ErrNoBinaries)
	}
	return b, nil
}

// removeLegacyPortFile deletes the port file of earlier versions: it was
// world-readable and names a TCP port the server no longer listens on.
func removeLegacyPortFile(dataDir string) error {
	err := os.Remove(filepath.Join(dataDir, legacyPortFileName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", legacyPortFileName, err)
	}
	return nil
}

// shutdown stops p: fast shutdown, then immediate shutdown when ctx ends,
// then SIGKILL of the process group.
// An already expired ctx skips the fast shutdown.
func shutdown(ctx context.Context, p *process) error {
	if ctx.Err() == nil {
		if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("request fast shutdown: %w", err)
		}
		select {
		case <-p.done:
			if p.err != nil && !killedBy(p.err, syscall.SIGINT) { // a postmaster too young to handle SIGINT dies of it, harmlessly
				return fmt.Errorf("fast shutdown: %w", p.err)
			}
			return nil
		case <-ctx.Done():
		}
	}
	if err := p.terminate(); err != nil {
		return errors.Join(fmt.Errorf("fast shutdown: %w", ctx.Err()), err)
	}
	return fmt.Errorf("fast shutdown: %w; forced an immediate shutdown, the next start runs crash recovery", ctx.Err())
}

// process is a child started on a locked OS thread.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the child has exited and been reaped
	err  error         // cmd.Wait's result; read only after done is closed
}

const (
	// quitGrace is how long an immediate shutdown (SIGQUIT) may take before
	// SIGKILL; the postmaster itself SIGKILLs its children after 5 s.
	quitGrace = 10 * time.Second
	// killGrace bounds the wait after SIGKILL, which only a process stuck
	// in uninterruptible I/O survives.
	killGrace = 5 * time.Second
)

// startProcess starts cmd. The goroutine that forks the child stays locked
// to its OS thread until the child is reaped: Linux delivers the
// parent-death signal when the forking thread exits, not the process, and a
// locked thread cannot be retired while its goroutine lives.
func startProcess(cmd *exec.Cmd) (*process, error) {
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// terminate forces p down: SIGQUIT (immediate shutdown for a postmaster,
// clean-up-and-exit for initdb), then SIGKILL to its process group.
func (p *process) terminate() error {
	_ = p.cmd.Process.Signal(syscall.SIGQUIT) // ErrProcessDone is fine: done is closed or about to be
	if waitDone(p, quitGrace) {
		return nil
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // the group outlives its reaped leader only briefly
	if waitDone(p, killGrace) {
		return nil
	}
	return fmt.Errorf("pid %d did not exit after SIGKILL", p.cmd.Process.Pid)
}

// wait waits for p to exit, or terminates it when ctx ends first.
func (p *process) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	if !waitDone(p, quitGrace) {
		if err := p.terminate(); err != nil {
			return errors.Join(ctx.Err(), err)
		}
	}
	return ctx.Err()
}

func waitDone(p *process, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}
