//go:build unix && !aix && !solaris

package pgmanaged

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-obs/vigil/storage/postgres"
)

// TestManagedModePrivacy checks that no OS user but the server's own and
// root can connect to the managed server, by its socket or over TCP, and
// that the role Vigil connects as cannot act as the server's OS user.
func TestManagedModePrivacy(t *testing.T) {
	f := setup(t)
	// A port the old code would have listened on over TCP.
	port := freeTCPPort(t)
	tests := []struct {
		name    string
		dataDir string
		inTemp  bool // the socket is in the temp dir, not the data dir
	}{
		{name: "socket in the data dir", dataDir: f.dataDir},
		{
			name:    "socket in the temp dir when the data dir path is long",
			dataDir: filepath.Join(filepath.Dir(f.dataDir), strings.Repeat("long", 25), "data"),
			inTemp:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := startWith(t, Config{DataDir: tt.dataDir, Port: port, Logger: f.logger})

			cfg, err := pgconn.ParseConfig(inst.URL())
			if err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(tt.dataDir, socketSubdir)
			if tt.inTemp {
				want = filepath.Join(os.TempDir(), tempSocketPrefix)
			}
			if !strings.HasPrefix(cfg.Host, want) || cfg.Port != uint16(port) {
				t.Fatalf("URL() = %s: socket %s port %d, want %s… port %d", inst.URL(), cfg.Host, cfg.Port, want, port)
			}
			if n := queryInt(t, inst.URL(), "SELECT 1"); n != 1 {
				t.Fatalf("SELECT 1 = %d", n)
			}
			assertPrivate(t, inst, tt.dataDir)
			assertOthersRefused(t, inst.socketDir, port, port)
		})
	}

	t.Run("vigil role cannot act as the server's OS user", func(t *testing.T) {
		inst := f.start(t)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, inst.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.WithoutCancel(ctx))

		var role string
		var super, createRole, createDB, replication, bypassRLS, serverProgram bool
		err = conn.QueryRow(ctx, `SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,
			pg_has_role('pg_execute_server_program', 'USAGE')
			FROM pg_roles WHERE rolname = current_user`).
			Scan(&role, &super, &createRole, &createDB, &replication, &bypassRLS, &serverProgram)
		if err != nil {
			t.Fatal(err)
		}
		if role != appRole || super || createRole || createDB || replication || bypassRLS || serverProgram {
			t.Errorf("role %s: superuser %v, createrole %v, createdb %v, replication %v, bypassrls %v, pg_execute_server_program %v; want vigil and none",
				role, super, createRole, createDB, replication, bypassRLS, serverProgram)
		}
		var dbOwner, schemaOwner string
		err = conn.QueryRow(ctx, `SELECT pg_get_userbyid(d.datdba), pg_get_userbyid(n.nspowner)
			FROM pg_database d, pg_namespace n WHERE d.datname = current_database() AND n.nspname = 'public'`).
			Scan(&dbOwner, &schemaOwner)
		if err != nil {
			t.Fatal(err)
		}
		if dbOwner != appRole || schemaOwner != appRole {
			t.Errorf("database owner %s, schema public owner %s; want vigil for both", dbOwner, schemaOwner)
		}

		denied := []struct {
			name, sql string
		}{
			{"run a program", "CREATE TEMP TABLE program_output (line text); COPY program_output FROM PROGRAM 'id'"},
			{"write a server file", "COPY (SELECT 1) TO '/tmp/vigil-pgmanaged-test'"},
			{"read a server file", "SELECT pg_read_file('postgresql.conf')"},
			{"change server settings", "ALTER SYSTEM SET work_mem = '1MB'"},
			{"create a role", "CREATE ROLE intruder"},
			{"create a database", "CREATE DATABASE intruder"},
			{"create a C function", "CREATE FUNCTION intruder() RETURNS int LANGUAGE c AS 'libc', 'getpid'"},
		}
		for _, tt := range denied {
			t.Run(tt.name, func(t *testing.T) {
				_, err := conn.Exec(ctx, tt.sql)
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "permission denied") &&
					!strings.Contains(pgErr.Message, "must be superuser") {
					t.Errorf("%s: err = %v, want permission denied (42501)", tt.sql, err)
				}
			})
		}
	})
}

// TestMigrationsRunAsVigil applies Vigil's real migrations and partition
// maintenance over URL, as cmd/vigil does: none of it may need more than
// the vigil role has.
func TestMigrationsRunAsVigil(t *testing.T) {
	f := setup(t)
	inst := f.start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	pool, err := postgres.Open(ctx, inst.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	applied, err := postgres.Migrate(ctx, pool, f.logger)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) == 0 {
		t.Fatal("no migration applied to a new database")
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 48 * time.Hour, Logger: f.logger})
	if err := parts.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	// The function of 0004 detaches, creates and drops partitions.
	if _, err := pool.Exec(ctx, "SELECT vigil_split_daily_partitions('metric_samples')"); err != nil {
		t.Fatal(err)
	}
}

// freeTCPPort returns a loopback port nothing listens on right now.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serverUID returns the uid the managed server runs as.
func serverUID(t *testing.T) uint32 {
	t.Helper()
	o, err := lookupOwner()
	if err != nil {
		t.Fatal(err)
	}
	if o == nil {
		return uint32(os.Geteuid())
	}
	return o.uid
}

// assertPrivate checks the owner and mode of everything another OS user
// could look for: the socket, its directory, the cluster, and Vigil's files
// in the data dir.
func assertPrivate(t *testing.T, inst *Instance, dataDir string) {
	t.Helper()
	server := serverUID(t)
	const anyone = ^uint32(0)
	files := []struct {
		path  string
		mode  fs.FileMode
		owner uint32
	}{
		{inst.socketDir, fs.ModeDir | 0o700, server},
		{filepath.Join(inst.socketDir, ".s.PGSQL."+strconv.Itoa(inst.port)), fs.ModeSocket | 0o700, server},
		{inst.clusterDir, fs.ModeDir | 0o700, server},
		{filepath.Join(dataDir, logName), 0o600, anyone},
		{filepath.Join(dataDir, lockName), 0o600, anyone},
	}
	for _, f := range files {
		fi, err := os.Lstat(f.path)
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode(), f.mode)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; f.owner != anyone && uint32(uid) != f.owner {
			t.Errorf("%s: owner uid %d, want %d", f.path, uid, f.owner)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, legacyPortFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: %v, want no such file", legacyPortFileName, err)
	}
}

// assertOthersRefused checks that the nobody account cannot connect as
// either role, by the socket (sockDir, sockPort) or over TCP on tcpPort,
// while the same psql command run by the test's own user (root) gets in by
// the socket: the refusals come from the server's privacy, not from a
// broken command.
//
// It runs as a subtest, which is skipped (or fails under CI) when the
// tools to act as nobody are missing, without stopping its caller.
func assertOthersRefused(t *testing.T, sockDir string, sockPort, tcpPort int) {
	t.Helper()
	t.Run("another OS user", func(t *testing.T) {
		psql, runuser := otherUserTools(t)
		out, err := runPsql(t, psql, "-h", sockDir, "-p", strconv.Itoa(sockPort), "-U", appRole)
		if err != nil || strings.TrimSpace(out) != appRole {
			t.Fatalf("psql as root by the socket: %v\n%s", err, out)
		}
		tests := []struct {
			name, host string
			port       int
			role, want string
		}{
			{"socket as vigil", sockDir, sockPort, appRole, "Permission denied"},
			{"socket as postgres", sockDir, sockPort, adminRole, "Permission denied"},
			{"tcp as vigil", "127.0.0.1", tcpPort, appRole, "Connection refused"},
			{"tcp as postgres", "127.0.0.1", tcpPort, adminRole, "Connection refused"},
		}
		for _, tt := range tests {
			t.Run("nobody by "+tt.name, func(t *testing.T) {
				out, err := runPsql(t, runuser, "-u", "nobody", "--", psql, "-h", tt.host, "-p", strconv.Itoa(tt.port), "-U", tt.role)
				if err == nil {
					t.Fatalf("nobody connected to %s:%d as %s:\n%s", tt.host, tt.port, tt.role, out)
				}
				if !strings.Contains(out, tt.want) {
					t.Errorf("psql as nobody to %s:%d as %s: %v\n%s\nwant %q", tt.host, tt.port, tt.role, err, out, tt.want)
				}
			})
		}
	})
}

// runPsql runs "SELECT current_user" in the vigil database with psql, or
// with a command that ends by running psql, given as name and args, and
// returns the combined output.
func runPsql(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	args = append(args, "-X", "-w", "-A", "-t", "-d", databaseName, "-c", "SELECT current_user")
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "PGCONNECT_TIMEOUT=5", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// otherUserTools returns the paths of psql and runuser, with which the
// tests act as the nobody account. Without them, or without root to switch
// users, the test fails when CI is set and is skipped otherwise.
func otherUserTools(t *testing.T) (psql, runuser string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (to run psql as nobody)")
	}
	psql = lookTool("psql", "/usr/bin/psql")
	if psql == "" {
		missing = append(missing, "psql")
	}
	runuser = lookTool("runuser", "/usr/sbin/runuser", "/sbin/runuser")
	if runuser == "" {
		missing = append(missing, "runuser")
	}
	if _, err := user.Lookup("nobody"); err != nil {
		missing = append(missing, "the nobody account")
	}
	if len(missing) > 0 {
		msg := "cannot check access by another OS user without " + strings.Join(missing, ", ")
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (required when CI is set)")
		}
		t.Skip(msg)
	}
	return psql, runuser
}

// lookTool finds name on PATH, else at the first of paths that exists.
func lookTool(name string, paths ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
