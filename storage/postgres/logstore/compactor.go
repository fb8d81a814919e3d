package logstore

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/internal/compactloop"
)

// CompactorConfig configures a Compactor.
type CompactorConfig struct {
	// Interval between passes (default 1 min).
	Interval time.Duration
	// Delay is how long after a window ends it is compacted (default 1 h):
	// records arriving later than that land in a new raw partition of the
	// window, searched with its blocks, that the next pass compacts into
	// blocks of their own.
	Delay time.Duration
}

// CompactorOptions are the dependencies of a Compactor.
type CompactorOptions struct {
	// Registerer receives the compactor's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives each pass's outcome; nil discards.
	Logger *slog.Logger
	// Now is the clock windows become due by; nil is time.Now.
	Now func() time.Time
}

// Compactor runs the log store's compaction (Store.Compact) in a loop.
// Any number of replicas may run one: a pass skips when another holds
// the lock.
type Compactor struct {
	loop *compactloop.Loop
}

// NewCompactor returns a compactor of store and registers its metrics:
// vigil_log_compaction_lag_seconds (how far past its due time the oldest
// uncompacted window is; 0 when none is due), runs, records and block
// bytes totals, and the duration of the last pass. It fails only when
// they cannot be registered.
func NewCompactor(store *Store, cfg CompactorConfig, opts CompactorOptions) (*Compactor, error) {
	loop, err := compactloop.New(compactloop.Spec{
		Signal:   "log",
		Window:   postgres.LogWindow,
		Moved:    compactloop.Counter{Name: "records", Help: "Log records moved into blocks by compaction."},
		Bytes:    compactloop.Counter{Name: "block_bytes", Help: "Compressed bytes of the log blocks written by compaction."},
		LagHelp:  "Seconds since the oldest uncompacted raw log window became due for compaction (0 when none is due).",
		RunsHelp: "Log compaction passes by result (ok, error, skipped: another replica held the lock).",
		Done:     "compacted log records",
		Compact: func(ctx context.Context, before time.Time) (compactloop.Pass, error) {
			stats, err := store.Compact(ctx, before)
			return compactloop.Pass{Windows: stats.Windows, Moved: stats.Records, Bytes: stats.Bytes, Duration: stats.Duration,
				Skipped: stats.Skipped, Attrs: []any{"blocks", stats.Blocks, "records", stats.Records, "block_bytes", stats.Bytes}}, err
		},
		Oldest: func(ctx context.Context) (time.Time, bool, error) {
			parts, err := store.partitions.List(ctx, store.pool, "logs")
			if err != nil || len(parts) == 0 {
				return time.Time{}, false, err
			}
			return parts[0].Start, true, nil
		},
	}, compactloop.Config{Interval: cfg.Interval, Delay: cfg.Delay},
		compactloop.Options{Registerer: opts.Registerer, Logger: opts.Logger, Now: opts.Now})
	if err != nil {
		return nil, err
	}
	return &Compactor{loop: loop}, nil
}

// Run compacts at once and then every Interval, each pass taking the
// windows that ended at least Delay ago, until ctx is cancelled; it
// returns nil then, once the pass under way has ended. Errors are logged
// and retried at the next pass.
func (c *Compactor) Run(ctx context.Context) error { return c.loop.Run(ctx) }
