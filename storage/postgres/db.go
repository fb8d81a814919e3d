package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// Open connects a pool to the database at url and checks that it answers.
// An unreachable server yields an error wrapping storage.ErrUnavailable.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "vigil"
	// Vigil's read queries are built per request and their best plan
	// depends on the values (a trace id, a rare word, a time window): a
	// generic plan cached after five executions can be orders of magnitude
	// slower (a text search walking the time index), so always plan with
	// the real values.
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	// JIT compilation is triggered by estimated cost, and queries over many
	// partitions with hidden bounds (a trace id's logs) are estimated high:
	// compiling took ~70 ms of a lookup that executes in 0.1 ms. Vigil's
	// queries are index lookups and bounded scans; none gains from it.
	cfg.ConnConfig.RuntimeParams["jit"] = "off"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", pgcore.Classify(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping database: %w", pgcore.Classify(err))
	}
	return pool, nil
}
