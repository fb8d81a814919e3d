package logstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-obs/vigil/storage/postgres"
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
	store    *Store
	interval time.Duration
	delay    time.Duration
	now      func() time.Time
	logger   *slog.Logger

	lag, last           prometheus.Gauge
	runs                *prometheus.CounterVec
	records, blockBytes prometheus.Counter
}

// NewCompactor returns a compactor of store and registers its metrics:
// vigil_log_compaction_lag_seconds (how far past its due time the oldest
// uncompacted window is; 0 when none is due), runs, records and block
// bytes totals, and the duration of the last pass. It fails only
// when they cannot be registered.
func NewCompactor(store *Store, cfg CompactorConfig, opts CompactorOptions) (*Compactor, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Delay <= 0 {
		cfg.Delay = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Compactor{
		store: store, interval: cfg.Interval, delay: cfg.Delay, now: opts.Now,
		logger: opts.Logger.With("component", "log_compactor"),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_log_compaction_lag_seconds",
			Help: "Seconds since the oldest uncompacted raw log window became due for compaction (0 when none is due)."}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_log_compaction_runs_total",
			Help: "Log compaction passes by result (ok, error, skipped: another replica held the lock)."}, []string{"result"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_log_compaction_records_total",
			Help: "Log records moved into blocks by compaction."}),
		blockBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_log_compaction_block_bytes_total",
			Help: "Compressed bytes of the log blocks written by compaction."}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_log_compaction_last_duration_seconds",
			Help: "Wall time of the last log compaction pass."}),
	}
	if opts.Registerer != nil {
		for _, m := range []prometheus.Collector{c.lag, c.runs, c.records, c.blockBytes, c.last} {
			if err := opts.Registerer.Register(m); err != nil {
				return nil, fmt.Errorf("register compactor metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Run compacts at once and then every Interval, each pass taking the
// windows that ended at least Delay ago, until ctx is cancelled; it
// returns nil then, once the pass under way has ended. Errors are logged
// and retried at the next pass.
func (c *Compactor) Run(ctx context.Context) error {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		c.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// pass runs one compaction and updates the metrics.
func (c *Compactor) pass(ctx context.Context) {
	now := c.now()
	stats, err := c.store.Compact(ctx, now.Add(-c.delay))
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		c.runs.WithLabelValues("error").Inc()
		c.logger.WarnContext(ctx, "log compaction", "err", err)
	case stats.Skipped:
		c.runs.WithLabelValues("skipped").Inc()
	default:
		c.runs.WithLabelValues("ok").Inc()
		if stats.Windows > 0 {
			c.logger.InfoContext(ctx, "compacted log records", "windows", stats.Windows, "blocks", stats.Blocks,
				"records", stats.Records, "block_bytes", stats.Bytes, "duration", stats.Duration)
		}
	}
	c.records.Add(float64(stats.Records))
	c.blockBytes.Add(float64(stats.Bytes))
	c.last.Set(stats.Duration.Seconds())
	parts, err := c.store.partitions.List(ctx, c.store.pool, "logs")
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			c.logger.WarnContext(ctx, "log compaction lag", "err", err)
		}
		return
	}
	due := 0.0
	if len(parts) > 0 {
		if d := now.Sub(parts[0].Start.Add(postgres.LogWindow + c.delay)); d > 0 {
			due = d.Seconds()
		}
	}
	c.lag.Set(due)
}
