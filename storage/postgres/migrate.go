package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-obs/vigil/migrations"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// migrationLockID is the advisory lock key that serialises migrations
// between Vigil replicas starting at the same time ("vigilmig" in ASCII).
const migrationLockID int64 = 0x76696769_6c6d6967

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.Glob(migrations.FS, "*.up.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var out []migration
	for _, name := range entries {
		prefix, rest, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %q: name must start with a number and '_'", name)
		}
		body, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", name, err)
		}
		out = append(out, migration{version: v, name: strings.TrimSuffix(rest, ".up.sql"), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("duplicate migration version %d", out[i].version)
		}
	}
	return out, nil
}

// Migrate applies every pending migration, each in its own transaction,
// while holding a session advisory lock so that replicas starting together
// apply each migration exactly once. It returns the versions it applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) ([]int, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	all, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: acquire connection: %w", pgcore.Classify(err))
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, lockMigrationsSQL, migrationLockID); err != nil {
		return nil, fmt.Errorf("migrate: take lock: %w", pgcore.Classify(err))
	}
	defer func() {
		// Unlock on a fresh context: ctx may be cancelled, and the lock must
		// not outlive this call on a pooled connection.
		_, _ = conn.Exec(context.WithoutCancel(ctx), unlockMigrationsSQL, migrationLockID)
	}()

	if _, err := conn.Exec(ctx, createMigrationsTableSQL); err != nil {
		return nil, fmt.Errorf("migrate: create schema_migrations: %w", pgcore.Classify(err))
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, appliedVersionsSQL)
	if err != nil {
		return nil, fmt.Errorf("migrate: read applied versions: %w", pgcore.Classify(err))
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("migrate: read applied versions: %w", pgcore.Classify(err))
	}
	for _, v := range versions {
		applied[int(v)] = true
	}

	var done []int
	for _, m := range all {
		if applied[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, recordMigrationSQL, m.version, m.name)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("migrate: apply %04d_%s: %w", m.version, m.name, pgcore.Classify(err))
		}
		logger.InfoContext(ctx, "applied migration", "version", m.version, "name", m.name)
		done = append(done, m.version)
	}
	return done, nil
}

// SchemaVersion returns the highest applied migration version and the
// highest version this binary knows; ready means the former is at least the
// latter.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (applied, known int, err error) {
	all, err := loadMigrations()
	if err != nil {
		return 0, 0, err
	}
	if len(all) > 0 {
		known = all[len(all)-1].version
	}
	var v *int32
	err = pool.QueryRow(ctx, schemaVersionSQL).Scan(&v)
	if err != nil {
		return 0, known, fmt.Errorf("read schema version: %w", pgcore.Classify(err))
	}
	if v != nil {
		applied = int(*v)
	}
	return applied, known, nil
}
