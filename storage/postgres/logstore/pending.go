package logstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// cleanRawPendingSQL merges the pending lists of the GIN indexes of every
// raw log partition (the body tokens) into the indexes, partition after
// partition, and returns the pending-list pages it emptied.
const cleanRawPendingSQL = `SELECT coalesce(sum(gin_clean_pending_list(i.indexrelid)), 0)::bigint
	FROM pg_inherits h JOIN pg_index i ON i.indrelid = h.inhrelid
	JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
	WHERE h.inhparent = 'logs'::regclass AND am.amname = 'gin'`

// DefaultPendingInterval is the default time between two merges of the
// raw partitions' pending index entries (Store.CleanPending).
const DefaultPendingInterval = 2 * time.Second

// CleanPending merges the entries waiting in the pending lists of the raw
// partitions' GIN indexes (a row's tokens go there first) into the
// indexes, and returns how many pending-list pages it emptied.
//
// PostgreSQL merges a pending list when it outgrows gin_pending_list_limit,
// in the backend whose insert made it outgrow it: one COPY of the log
// pipeline then stalls for the whole merge, and every record waiting
// behind it in the queue (the live tail's too) with it; otherwise
// autovacuum merges it, if it runs. Merged from here every few seconds, a
// list stays far below the limit, so writers do not merge at all (an
// insert that finds a merge under way leaves the list to it), and a
// search does not scan long lists linearly.
func (s *Store) CleanPending(ctx context.Context) (int64, error) {
	var pages int64
	if err := s.pool.QueryRow(ctx, cleanRawPendingSQL).Scan(&pages); err != nil {
		return 0, fmt.Errorf("merge pending log index entries: %w", pgcore.Classify(err))
	}
	return pages, nil
}

// RunPendingCleaner calls CleanPending every interval until ctx is
// cancelled, then returns nil. Each merge that emptied pages is logged at
// debug level, and so is a failed merge (a partition dropped under it,
// the database away), which the next tick tries again.
func (s *Store) RunPendingCleaner(ctx context.Context, interval time.Duration, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pages, err := s.CleanPending(ctx)
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			logger.Debug("merge pending log index entries", "err", err)
		case pages > 0:
			logger.Debug("merged pending log index entries", "pages", pages)
		}
	}
}
