package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-obs/vigil/storage"
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
		return nil, fmt.Errorf("open pool: %w", classify(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping database: %w", classify(err))
	}
	return pool, nil
}

// classify wraps errors that mean "the database cannot be reached right
// now" in storage.ErrUnavailable so callers can answer with a retryable
// status, and leaves other errors as they are.
func classify(err error) error {
	if err == nil || errors.Is(err, storage.ErrUnavailable) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errCorruptPayload) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case len(pgErr.Code) >= 2 && pgErr.Code[:2] == "08", // connection exception
			pgErr.Code == "57P01", // admin_shutdown
			pgErr.Code == "57P02", // crash_shutdown
			pgErr.Code == "57P03", // cannot_connect_now
			pgErr.Code == "53300", // too_many_connections
			pgErr.Code == "40001", // serialization_failure
			pgErr.Code == "40P01": // deadlock_detected
			return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
		}
		return err
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	}
	// Errors on a connection that broke mid-statement ("conn closed",
	// "unexpected EOF") carry no PgError: treat them as unavailability too.
	return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
}
