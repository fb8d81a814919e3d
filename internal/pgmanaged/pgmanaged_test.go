//go:build unix && !aix && !solaris

package pgmanaged

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
)

// helperEnv makes the test binary act as a Vigil process that starts a
// managed server and then waits to be killed.
const helperEnv = "VIGIL_PGMANAGED_TEST_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(runHelper(dir))
	}
	goleak.VerifyTestMain(m)
}

// runHelper starts a server in dataDir, commits a row, prints
// "ready <postmaster pid>" and sleeps until killed.
func runHelper(dataDir string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	inst, err := Start(ctx, Config{DataDir: dataDir, Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	conn, err := pgx.Connect(ctx, inst.URL())
	if err == nil {
		_, err = conn.Exec(ctx, "CREATE TABLE acked (v int); INSERT INTO acked VALUES (42)")
		conn.Close(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ready %d\n", inst.proc.cmd.Process.Pid)
	time.Sleep(2 * time.Minute)
	return 1
}

type fixture struct {
	dataDir string
	logger  *slog.Logger
}

func setup(t *testing.T) fixture {
	t.Helper()
	requireBinaries(t)
	base := t.TempDir()
	// t.TempDir's parent is mode 0700; when the tests run as root the
	// cluster's "postgres" user must get through it.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return fixture{
		dataDir: filepath.Join(base, "data"),
		logger:  slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

// requireBinaries skips the test when no server binaries are installed,
// unless CI is set, where missing binaries are a broken environment.
func requireBinaries(t *testing.T) {
	t.Helper()
	if _, err := FindBinDir(t.Context()); err != nil {
		if errors.Is(err, ErrNoBinaries) && os.Getenv("CI") == "" {
			t.Skipf("no postgres binaries: %v", err)
		}
		t.Fatal(err)
	}
}

// start starts a server in the fixture's data dir and stops it at cleanup.
func (f fixture) start(t *testing.T) *Instance {
	t.Helper()
	return startWith(t, Config{DataDir: f.dataDir, Logger: f.logger})
}

// startWith starts a server with cfg and stops it at cleanup, removing its
// socket directory when that is outside the data dir.
func startWith(t *testing.T, cfg Config) *Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	inst, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = inst.Stop(ctx) // tests that stop or kill the server check the result themselves
		if filepath.Dir(inst.socketDir) != filepath.Dir(inst.clusterDir) {
			_ = os.RemoveAll(inst.socketDir)
		}
	})
	return inst
}

func stop(t *testing.T, inst *Instance) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := inst.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

func queryInt(t *testing.T, dbURL, sql string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func execSQL(t *testing.T, dbURL, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// alive reports whether pid is a live, non-zombie process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	if runtime.GOOS != "linux" {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// waitGone waits until no postgres process serves clusterDir and pid has
// exited.
func waitGone(t *testing.T, clusterDir string, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pids, _ := serverPIDs(clusterDir)
		if len(pids) == 0 && !alive(pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres still running on %s: postmaster %d alive=%v, processes %v", clusterDir, pid, alive(pid), pids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStartStopRestart(t *testing.T) {
	f := setup(t)
	inst := f.start(t)

	cfg, err := pgconn.ParseConfig(inst.URL())
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(f.dataDir, socketSubdir)
	if cfg.Host != sock || cfg.Port != defaultPort || cfg.User != appRole || cfg.Database != databaseName {
		t.Fatalf("URL() = %s: host %q, port %d, user %q, database %q; want the socket in %s, port %d, user and database vigil",
			inst.URL(), cfg.Host, cfg.Port, cfg.User, cfg.Database, sock, defaultPort)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Some of these settings are visible to superusers only.
	conn, err := pgx.Connect(ctx, inst.connString(adminRole, databaseName))
	if err != nil {
		t.Fatal(err)
	}
	var db, fsync, syncCommit, listen, encoding, sockets, sockPerm string
	err = conn.QueryRow(ctx, `SELECT current_database(), current_setting('fsync'), current_setting('synchronous_commit'),
		current_setting('listen_addresses'), current_setting('server_encoding'), current_setting('unix_socket_directories'),
		current_setting('unix_socket_permissions')`).
		Scan(&db, &fsync, &syncCommit, &listen, &encoding, &sockets, &sockPerm)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := [...]string{"vigil", "on", "on", "", "UTF8", sock, "0700"}
	if got := [...]string{db, fsync, syncCommit, listen, encoding, sockets, sockPerm}; got != want {
		t.Fatalf("settings = %q, want %q", got, want)
	}
	execSQL(t, inst.URL(), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (1)")
	// Its own process group keeps a terminal's Ctrl-C away from the server.
	if pgid, err := syscall.Getpgid(inst.proc.cmd.Process.Pid); err != nil || pgid != inst.proc.cmd.Process.Pid {
		t.Errorf("postmaster process group = %d, %v; want its own", pgid, err)
	}

	t.Run("second start on a running cluster", func(t *testing.T) {
		_, err := Start(t.Context(), Config{DataDir: f.dataDir, Logger: f.logger})
		if !errors.Is(err, ErrAlreadyRunning) || !strings.Contains(err.Error(), "another Vigil process") {
			t.Fatalf("err = %v, want ErrAlreadyRunning naming another Vigil process", err)
		}
		if runtime.GOOS != "linux" {
			return
		}
		// A server left without its Vigil (started by hand, or orphaned
		// where there is no parent-death signal) is found by its processes.
		if err := inst.lock.Close(); err != nil {
			t.Fatal(err)
		}
		_, err = Start(t.Context(), Config{DataDir: f.dataDir, Logger: f.logger})
		if !errors.Is(err, ErrAlreadyRunning) || !strings.Contains(err.Error(), "kill -INT") {
			t.Fatalf("err = %v, want ErrAlreadyRunning saying how to stop the server", err)
		}
	})

	pid := inst.proc.cmd.Process.Pid
	runErr := make(chan error, 1)
	go func() { runErr <- inst.Run(t.Context()) }()
	stop(t, inst)
	stop(t, inst) // idempotent
	if err := <-runErr; err != nil {
		t.Errorf("Run after Stop = %v, want nil", err)
	}
	if _, err := os.Stat(filepath.Join(inst.clusterDir, "postmaster.pid")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("postmaster.pid after stop: %v, want gone", err)
	}
	if alive(pid) {
		t.Errorf("postmaster %d still alive after Stop", pid)
	}
	if pids, _ := serverPIDs(inst.clusterDir); len(pids) > 0 {
		t.Errorf("postgres processes %v still serve %s after Stop", pids, inst.clusterDir)
	}

	t.Run("restart reuses cluster and URL", func(t *testing.T) {
		again := f.start(t)
		if again.URL() != inst.URL() {
			t.Errorf("URL() = %s after restart, want %s", again.URL(), inst.URL())
		}
		if n := queryInt(t, again.URL(), "SELECT count(*) FROM kept"); n != 1 {
			t.Errorf("rows = %d, want 1", n)
		}
		stop(t, again)
	})

	t.Run("failed start quotes the log and leaves nothing running", func(t *testing.T) {
		conf := filepath.Join(inst.clusterDir, "postgresql.conf")
		orig, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		// Rewriting the file keeps its owner and mode.
		if err := os.WriteFile(conf, append(orig, "max_connections = 'many'\n"...), 0o600); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := os.WriteFile(conf, orig, 0o600); err != nil {
				t.Fatal(err)
			}
		}()
		_, err = Start(t.Context(), Config{DataDir: f.dataDir, Logger: f.logger})
		if err == nil || !strings.Contains(err.Error(), "max_connections") || !strings.Contains(err.Error(), logName) {
			t.Fatalf("Start with a broken postgresql.conf = %v, want the log's complaint", err)
		}
		if pids, _ := serverPIDs(inst.clusterDir); len(pids) > 0 {
			t.Errorf("postgres processes %v left after a failed start", pids)
		}
	})

	t.Run("expired context forces immediate shutdown", func(t *testing.T) {
		forced := f.start(t)
		pid := forced.proc.cmd.Process.Pid
		expired, cancel := context.WithCancel(t.Context())
		cancel()
		err := forced.Stop(expired)
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "crash recovery") {
			t.Fatalf("Stop(expired ctx) = %v, want context.Canceled and a crash-recovery note", err)
		}
		waitGone(t, forced.clusterDir, pid)
		again := f.start(t)
		if n := queryInt(t, again.URL(), "SELECT count(*) FROM kept"); n != 1 {
			t.Errorf("rows after immediate shutdown = %d, want 1", n)
		}
		assertRecovered(t, f.dataDir)
		stop(t, again)
	})
}

// assertRecovered checks that the server log shows Postgres's own crash
// recovery.
func assertRecovered(t *testing.T, dataDir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, logName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "automatic recovery in progress") {
		t.Errorf("%s shows no crash recovery", logName)
	}
}

// TestStaleLockFile covers a previous run killed together with its server
// (stale postmaster.pid, crash recovery) and a lock file whose pid now
// belongs to an unrelated live process.
func TestStaleLockFile(t *testing.T) {
	f := setup(t)
	inst := f.start(t)
	execSQL(t, inst.URL(), "CREATE TABLE acked (v int); INSERT INTO acked VALUES (7)")

	pid := inst.proc.cmd.Process.Pid
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := inst.Run(ctx); err == nil || !strings.Contains(err.Error(), "exited unexpectedly") {
		t.Fatalf("Run after the server was killed = %v, want an unexpected-exit error", err)
	}
	if err := inst.Stop(ctx); err == nil {
		t.Error("Stop after the server was killed = nil, want the exit error")
	}
	waitGone(t, inst.clusterDir, pid)
	lock := filepath.Join(inst.clusterDir, "postmaster.pid")
	if _, err := os.Stat(lock); err != nil {
		t.Fatalf("want a stale postmaster.pid after SIGKILL: %v", err)
	}

	recovered := f.start(t)
	if n := queryInt(t, recovered.URL(), "SELECT sum(v) FROM acked"); n != 7 {
		t.Fatalf("after crash recovery sum = %d, want 7", n)
	}
	stop(t, recovered)

	t.Run("pid reused by another process", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("needs /proc to tell a reused pid from a server")
		}
		// A process of the cluster's own user: postgres itself would take
		// the lock file for a live server and refuse to start.
		owner, err := lookupOwner()
		if err != nil {
			t.Fatal(err)
		}
		sleeper := exec.Command("sleep", "60")
		sleeper.SysProcAttr = &syscall.SysProcAttr{Credential: owner.credential()}
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = sleeper.Process.Kill()
			_ = sleeper.Wait()
		}()
		content := fmt.Sprintf("%d\n%s\n", sleeper.Process.Pid, inst.clusterDir)
		// The socket's lock file too: postgres would take it for a live
		// server's as well.
		sockLock := filepath.Join(inst.socketDir, fmt.Sprintf(".s.PGSQL.%d.lock", inst.port))
		for _, path := range []string{lock, sockLock} {
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := owner.chown(path); err != nil {
				t.Fatal(err)
			}
		}
		again := f.start(t)
		if n := queryInt(t, again.URL(), "SELECT sum(v) FROM acked"); n != 7 {
			t.Errorf("sum = %d, want 7", n)
		}
		stop(t, again)
	})
}

// TestVigilKilled kills a Vigil process (the test binary as a helper)
// with SIGKILL and checks that its server goes away and the next start
// recovers every committed row.
func TestVigilKilled(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the parent-death signal is Linux-only")
	}
	f := setup(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	helper := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+f.dataDir)
	helper.Stderr = t.Output()
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = helper.Process.Kill()
		_ = helper.Wait()
		t.Fatalf("helper did not get ready: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "ready ")))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait() // "signal: killed"
	waitGone(t, filepath.Join(f.dataDir, clusterSubdir), pid)

	inst := f.start(t)
	if n := queryInt(t, inst.URL(), "SELECT sum(v) FROM acked"); n != 42 {
		t.Fatalf("sum = %d after recovery, want 42", n)
	}
	assertRecovered(t, f.dataDir)
	stop(t, inst)
}

func TestMissingBinaries(t *testing.T) {
	dir := t.TempDir()
	_, err := Start(t.Context(), Config{DataDir: filepath.Join(dir, "data"), BinDir: t.TempDir()})
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("err = %v, want ErrNoBinaries", err)
	}
	for _, hint := range []string{"apt-get install postgresql", "brew install postgresql", "--db", "VIGIL_DB"} {
		if !strings.Contains(err.Error(), hint) {
			t.Errorf("error lacks %q: %v", hint, err)
		}
	}
}

func TestDataDirNotTraversable(t *testing.T) {
	base := t.TempDir()
	locked := filepath.Join(base, "locked")
	dataDir := filepath.Join(locked, "data")
	if err := os.MkdirAll(dataDir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	stranger := &owner{name: "stranger", uid: uint32(os.Getuid()) + 12345, gid: 54321}
	err := checkTraversable(dataDir, stranger)
	if err == nil {
		t.Fatal("checkTraversable through a 0700 directory = nil")
	}
	if !strings.Contains(err.Error(), "chmod o+x "+locked) {
		t.Errorf("error does not name %s and the fix: %v", locked, err)
	}
	for _, d := range []string{filepath.Dir(base), base, locked, dataDir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkTraversable(dataDir, stranger); err != nil {
		t.Errorf("checkTraversable after chmod 0711: %v", err)
	}

	t.Run("Start as root", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("only root hands the cluster to another user")
		}
		requireBinaries(t)
		if _, err := lookupOwner(); err != nil {
			t.Skip(err)
		}
		hidden := filepath.Join(t.TempDir(), "hidden") // t.TempDir's parent is 0700
		_, err := Start(t.Context(), Config{DataDir: filepath.Join(hidden, "data")})
		if err == nil || !strings.Contains(err.Error(), "chmod o+x") {
			t.Fatalf("Start under a 0700 directory = %v, want the traversal error", err)
		}
	})
}

func TestFindBinDir(t *testing.T) {
	requireBinaries(t)
	dir, err := FindBinDir(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, err := inspectBinDir(t.Context(), dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if b.major < minMajor {
		t.Errorf("major = %d", b.major)
	}
	// pg_config names the real installation; discovery must agree with it.
	if out, err := exec.CommandContext(t.Context(), "pg_config", "--bindir").Output(); err == nil {
		want, err := filepath.EvalSymlinks(strings.TrimSpace(string(out)))
		if err == nil {
			if _, err := inspectBinDir(t.Context(), want, true); err == nil && dir != want {
				t.Errorf("FindBinDir = %s, pg_config --bindir = %s", dir, want)
			}
		}
	}
}

func TestInspectBinDir(t *testing.T) {
	fake := func(version string) string { return "#!/bin/sh\necho 'x (PostgreSQL) " + version + "'\n" }
	tests := []struct {
		name            string
		initdb, server  string
		strict          bool
		wantMajor       int
		wantErrContains string
	}{
		{name: "wrapper scripts rejected in discovery", initdb: fake("15.2"), server: fake("15.2"), strict: true, wantErrContains: "is a script"},
		{name: "explicit dir may hold wrappers", initdb: fake("15.2"), server: fake("15.2"), wantMajor: 15},
		{name: "mixed versions", initdb: fake("15.2"), server: fake("16.1"), wantErrContains: "initdb is version 15 but postgres is version 16"},
		{name: "too old", initdb: fake("13.9"), server: fake("13.9"), wantErrContains: "older than the supported 14"},
		{name: "beta", initdb: fake("18beta1"), server: fake("18beta1"), wantMajor: 18},
		{name: "missing postgres", initdb: fake("15.2"), wantErrContains: "no postgres"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range map[string]string{"initdb": tt.initdb, "postgres": tt.server} {
				if body == "" {
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			b, err := inspectBinDir(t.Context(), dir, tt.strict)
			if tt.wantErrContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrContains) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErrContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.major != tt.wantMajor {
				t.Errorf("major = %d, want %d", b.major, tt.wantMajor)
			}
		})
	}
}

func TestReadLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "postgres.log")
	var sb strings.Builder
	sb.WriteString("previous run\n")
	offset := int64(sb.Len())
	for i := range 30 {
		fmt.Fprintf(&sb, "line %d\n", i)
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	tail := readLogTail(path, offset)
	lines := strings.Split(tail, "\n")
	if len(lines) != tailLines || lines[0] != "line 10" || lines[len(lines)-1] != "line 29" {
		t.Errorf("tail = %q", tail)
	}
	if got := readLogTail(path, int64(sb.Len())); got != "" {
		t.Errorf("tail with nothing new = %q, want empty", got)
	}
}
