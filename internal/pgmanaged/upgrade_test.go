//go:build unix && !aix && !solaris

package pgmanaged

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
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

// legacyHBA is the pg_hba.conf earlier versions wrote.
const legacyHBA = `# Written by Vigil (internal/pgmanaged). The server listens on 127.0.0.1 only
# and its Unix socket directory is private to the server's OS user.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
`

// legacyURL is the connection string earlier versions handed out: the
// superuser vigil over TCP.
func legacyURL(port int, db string) string {
	return fmt.Sprintf("postgres://vigil@127.0.0.1:%d/%s?sslmode=disable", port, db)
}

// TestUpgradeFromTrustedLoopback starts a cluster laid out by an earlier
// version (superuser vigil, trust on 127.0.0.1, a world-readable port file)
// and checks that Start makes it private, and that Vigil's data and its
// maintenance carry on under the unprivileged vigil role.
func TestUpgradeFromTrustedLoopback(t *testing.T) {
	tests := []struct {
		name string
		// interrupt runs as the old superuser after the legacy cluster
		// is populated, to leave it as a crash during an upgrade would.
		interrupt string
	}{
		// Short names: the socket path under t.TempDir must stay short
		// enough for the data dir.
		{name: "legacy"},
		{
			name: "interrupted",
			interrupt: `BEGIN;
				CREATE ROLE renamer SUPERUSER NOLOGIN;
				SET LOCAL SESSION AUTHORIZATION renamer;
				ALTER ROLE vigil RENAME TO postgres;
				RESET SESSION AUTHORIZATION;
				DROP ROLE renamer;
				COMMIT;
				CREATE ROLE vigil LOGIN CREATEDB;
				ALTER TABLE services OWNER TO vigil;`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			past := time.Now().UTC().AddDate(0, 0, -10)
			var legacyParts []string
			tcpPort := legacyCluster(t, f.dataDir, func(ctx context.Context, dbURL string) error {
				pool, err := postgres.Open(ctx, dbURL)
				if err != nil {
					return err
				}
				defer pool.Close()
				if _, err := postgres.Migrate(ctx, pool, f.logger); err != nil {
					return err
				}
				parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 72 * time.Hour, Now: func() time.Time { return past }})
				if err := parts.Maintain(ctx); err != nil {
					return err
				}
				if _, err := pool.Exec(ctx, "INSERT INTO services (name) VALUES ('legacy')"); err != nil {
					return err
				}
				rows, err := pool.Query(ctx, "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'spans'::regclass")
				if err != nil {
					return err
				}
				if legacyParts, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
					return err
				}
				if tt.interrupt != "" {
					_, err = pool.Exec(ctx, tt.interrupt)
				}
				return err
			})
			if len(legacyParts) == 0 {
				t.Fatal("the legacy cluster has no spans partitions")
			}

			inst := f.start(t)
			assertUpgraded(t, f, inst, tcpPort)

			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			pool, err := postgres.Open(ctx, inst.URL())
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			if applied, err := postgres.Migrate(ctx, pool, f.logger); err != nil || len(applied) > 0 {
				t.Errorf("Migrate as vigil after the upgrade = %v, %v; want nothing to apply", applied, err)
			}
			// Retention drops the partitions the old superuser created and
			// creates new ones under the tables it created.
			parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 72 * time.Hour, Logger: f.logger})
			if err := parts.Maintain(ctx); err != nil {
				t.Fatalf("partition maintenance as vigil: %v", err)
			}
			var left int
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM unnest($1::text[]) p WHERE to_regclass(p) IS NOT NULL", legacyParts).Scan(&left); err != nil {
				t.Fatal(err)
			}
			if left > 0 {
				t.Errorf("%d of the old partitions %v survived retention", left, legacyParts)
			}
			if n := queryInt(t, inst.URL(), "SELECT count(*) FROM services WHERE name = 'legacy'"); n != 1 {
				t.Errorf("legacy services rows = %d, want 1", n)
			}
			pool.Close()

			// Upgraded once: the next start has nothing left to change.
			stop(t, inst)
			again := f.start(t)
			if again.URL() != inst.URL() {
				t.Errorf("URL() = %s after restart, want %s", again.URL(), inst.URL())
			}
			assertUpgraded(t, f, again, tcpPort)
			stop(t, again)
		})
	}
}

// assertUpgraded checks that the cluster serving inst has the layout of
// this version: only the socket, pg_hba.conf with local lines, postgres
// the only superuser, and everything in the vigil database owned by vigil.
func assertUpgraded(t *testing.T, f fixture, inst *Instance, tcpPort int) {
	t.Helper()
	hba, err := os.ReadFile(filepath.Join(inst.clusterDir, "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if string(hba) != pgHBA {
		t.Errorf("pg_hba.conf =\n%s\nwant\n%s", hba, pgHBA)
	}
	for line := range strings.Lines(string(hba)) {
		if fields := strings.Fields(line); len(fields) > 0 && !strings.HasPrefix(fields[0], "#") && fields[0] != "local" {
			t.Errorf("pg_hba.conf line %q: want local lines only", line)
		}
	}
	assertPrivate(t, inst, f.dataDir)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if conn, err := pgconn.Connect(ctx, legacyURL(tcpPort, databaseName)); err == nil {
		conn.Close(ctx)
		t.Errorf("connected over TCP on the old port %d", tcpPort)
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("connect over TCP on the old port %d: %v, want connection refused", tcpPort, err)
	}

	conn, err := pgx.Connect(ctx, inst.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var role, bootstrap, supers string
	var super bool
	err = conn.QueryRow(ctx, `SELECT current_user, rolsuper,
		(SELECT rolname FROM pg_roles WHERE oid = 10), (SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolsuper)
		FROM pg_roles WHERE rolname = current_user`).Scan(&role, &super, &bootstrap, &supers)
	if err != nil {
		t.Fatal(err)
	}
	if role != appRole || super || bootstrap != adminRole || supers != adminRole {
		t.Errorf("connected as %s (superuser %v), bootstrap superuser %s, superusers %s; want vigil, false, postgres, postgres",
			role, super, bootstrap, supers)
	}
	var createDB bool
	if err := conn.QueryRow(ctx, "SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user").Scan(&createDB); err != nil || createDB {
		t.Errorf("vigil CREATEDB = %v, %v; want false", createDB, err)
	}
	// Everything in public, the schema and the database: indexes, row
	// types and the sequences of identity columns follow their tables.
	rows, err := conn.Query(ctx, `
		SELECT kind || ' ' || name || ' owned by ' || pg_get_userbyid(owner) FROM (
			SELECT 'relation' AS kind, oid::regclass::text AS name, relowner AS owner FROM pg_class WHERE relnamespace = 'public'::regnamespace
			UNION ALL SELECT 'routine', oid::regprocedure::text, proowner FROM pg_proc WHERE pronamespace = 'public'::regnamespace
			UNION ALL SELECT 'type', oid::regtype::text, typowner FROM pg_type WHERE typnamespace = 'public'::regnamespace
			UNION ALL SELECT 'schema', nspname, nspowner FROM pg_namespace WHERE nspname = 'public'
			UNION ALL SELECT 'database', datname, datdba FROM pg_database WHERE datname = current_database()
		) o WHERE owner <> current_user::regrole ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(foreign) > 0 {
		t.Errorf("not owned by vigil:\n%s", strings.Join(foreign, "\n"))
	}
	assertOthersRefused(t, inst.socketDir, inst.port, tcpPort)
}

// legacyCluster lays dataDir out as earlier versions did: initdb's
// superuser named vigil, pg_hba.conf trusting the socket and 127.0.0.1,
// the server listening on 127.0.0.1, its port in a world-readable
// postgres.port, and a group-readable log. While that server runs,
// populate gets the URL of the vigil database earlier versions handed out.
// legacyCluster stops the server and returns its TCP port.
func legacyCluster(t *testing.T, dataDir string, populate func(ctx context.Context, dbURL string) error) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	bin, err := FindBinDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o, err := lookupOwner()
	if err != nil {
		t.Fatal(err)
	}
	if err := prepareDataDir(dataDir, o); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dataDir, logName)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	c := cluster{dataDir: dataDir, dir: filepath.Join(dataDir, clusterSubdir), bin: bin, owner: o, log: logFile,
		logger: slog.New(slog.DiscardHandler)}
	sock := filepath.Join(dataDir, socketSubdir)
	for _, dir := range []string{c.dir, sock} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := o.chown(dir); err != nil {
			t.Fatal(err)
		}
	}
	initdb, err := startProcess(c.command(filepath.Join(bin, "initdb"), "-D", c.dir, "-U", "vigil",
		"--encoding=UTF8", "--locale=C", "--auth-local=trust", "--auth-host=trust", "--no-instructions"))
	if err != nil {
		t.Fatal(err)
	}
	if err := initdb.wait(ctx); err != nil {
		t.Fatalf("initdb: %v\n%s", err, readLogTail(logPath, 0))
	}
	if err := writeFileSync(filepath.Join(c.dir, "pg_hba.conf"), legacyHBA, os.O_TRUNC); err != nil {
		t.Fatal(err)
	}

	port := freeTCPPort(t)
	srv, err := startProcess(c.command(filepath.Join(bin, "postgres"), "-D", c.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(port), "-c", "unix_socket_directories="+sock))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = shutdown(context.WithoutCancel(ctx), srv)
		}
	}()
	for {
		conn, err := pgx.Connect(ctx, legacyURL(port, "postgres"))
		if err == nil {
			_, err = conn.Exec(ctx, "CREATE DATABASE vigil")
			conn.Close(ctx)
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		select {
		case <-srv.done:
			t.Fatalf("legacy server exited: %v\n%s", srv.err, readLogTail(logPath, 0))
		case <-ctx.Done():
			t.Fatalf("legacy server not ready: %v", err)
		case <-time.After(pollInterval):
		}
	}
	if err := populate(ctx, legacyURL(port, databaseName)); err != nil {
		t.Fatalf("populate the legacy cluster: %v", err)
	}
	stopped = true
	if err := shutdown(ctx, srv); err != nil {
		t.Fatalf("stop the legacy server: %v", err)
	}

	portFile := filepath.Join(dataDir, legacyPortFileName)
	if err := os.WriteFile(portFile, []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{portFile: 0o644, logPath: 0o640} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	return port
}
