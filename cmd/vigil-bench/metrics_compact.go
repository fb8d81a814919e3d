package main

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
)

// compactResult is what one compaction pass reported, and its wall time.
type compactResult struct {
	metricstore.CompactStats
	wall time.Duration
}

// compactMetrics compacts every two-hour window of store that ends at or
// before before into chunks, in one pass.
func compactMetrics(ctx context.Context, store *metricstore.Store, before time.Time) (compactResult, error) {
	start := time.Now()
	st, err := store.Compact(ctx, before)
	res := compactResult{CompactStats: st, wall: time.Since(start)}
	if err != nil {
		return res, fmt.Errorf("compact metrics: %w", err)
	}
	if st.Skipped {
		return res, fmt.Errorf("compact metrics: another compactor holds the lock")
	}
	return res, nil
}
