package postgres

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// copyIn sends data, a binary COPY stream, with copySQL on one pooled
// connection; COPY is one statement, so it commits whole or not at all.
// When PostgreSQL reports a row for a time without a partition (a clock
// jump, a long-running process), copyIn creates the partitions of the periods
// of times and sends the stream once more. Errors are not classified.
func copyIn(ctx context.Context, pool *pgxpool.Pool, parts *Partitions, copySQL string, data []byte, times iter.Seq[time.Time]) error {
	send := func() error {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		_, err = conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), copySQL)
		return err
	}
	err := send()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" || parts == nil {
		return err
	}
	// Distinct hours are enough: every partition period is a whole number
	// of hours.
	hours := map[time.Time]struct{}{}
	for t := range times {
		hours[t.UTC().Truncate(time.Hour)] = struct{}{}
	}
	list := make([]time.Time, 0, len(hours))
	for h := range hours {
		list = append(list, h)
	}
	if err := parts.Ensure(ctx, list); err != nil {
		return err
	}
	return send()
}
