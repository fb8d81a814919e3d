// Package compactloop runs a store's compaction pass in a loop, with the
// metrics and logs every compactor shares: how far past its due time the
// oldest uncompacted window is, passes by result, what was moved and
// written, and the duration of the last pass. The metric and log stores'
// Compactors are this loop over their own Compact.
package compactloop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Pass is what one compaction pass did.
type Pass struct {
	Windows  int64         // raw windows compacted
	Moved    int64         // samples or records read into the compacted form
	Bytes    int64         // bytes of the compacted form written
	Duration time.Duration // time of the pass
	Skipped  bool          // another replica held the compaction lock
	// Attrs are logged, with the windows and the duration, after a pass
	// that compacted something.
	Attrs []any
}

// Spec describes one store's compaction.
type Spec struct {
	// Signal names the metrics (vigil_<Signal>_compaction_…), the
	// logger's component (<Signal>_compactor) and the log messages.
	Signal string
	// Window is the width of a raw window.
	Window time.Duration
	// Moved and Bytes name and describe the two counters:
	// vigil_<Signal>_compaction_<Moved.Name>_total and
	// vigil_<Signal>_compaction_<Bytes.Name>_total.
	Moved, Bytes Counter
	// LagHelp and RunsHelp describe the lag gauge and the runs counter.
	LagHelp, RunsHelp string
	// Done is the message logged after a pass that compacted something.
	Done string
	// Compact compacts the windows that ended at or before 'before'.
	Compact func(ctx context.Context, before time.Time) (Pass, error)
	// Oldest returns the start of the oldest raw window; false when
	// there is none.
	Oldest func(ctx context.Context) (time.Time, bool, error)
}

// Counter names and describes one of a Spec's counters.
type Counter struct{ Name, Help string }

// Config configures a Loop.
type Config struct {
	// Interval between passes (default 1 min).
	Interval time.Duration
	// Delay is how long after a window ends it is compacted (default 1 h).
	Delay time.Duration
}

// Options are the dependencies of a Loop.
type Options struct {
	// Registerer receives the loop's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives each pass's outcome; nil discards.
	Logger *slog.Logger
	// Now is the clock windows become due by; nil is time.Now.
	Now func() time.Time
}

// Loop runs a Spec's Compact every Interval.
type Loop struct {
	spec     Spec
	interval time.Duration
	delay    time.Duration
	now      func() time.Time
	logger   *slog.Logger

	lag, last    prometheus.Gauge
	runs         *prometheus.CounterVec
	moved, bytes prometheus.Counter
}

// New returns a loop of spec and registers its metrics; it fails only
// when they cannot be registered.
func New(spec Spec, cfg Config, opts Options) (*Loop, error) {
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
	prefix := "vigil_" + spec.Signal + "_compaction_"
	l := &Loop{
		spec: spec, interval: cfg.Interval, delay: cfg.Delay, now: opts.Now,
		logger: opts.Logger.With("component", spec.Signal+"_compactor"),
		lag:    prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + "lag_seconds", Help: spec.LagHelp}),
		runs:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: prefix + "runs_total", Help: spec.RunsHelp}, []string{"result"}),
		moved:  prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + spec.Moved.Name + "_total", Help: spec.Moved.Help}),
		bytes:  prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + spec.Bytes.Name + "_total", Help: spec.Bytes.Help}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + "last_duration_seconds",
			Help: "Wall time of the last " + spec.Signal + " compaction pass."}),
	}
	if opts.Registerer != nil {
		for _, m := range []prometheus.Collector{l.lag, l.runs, l.moved, l.bytes, l.last} {
			if err := opts.Registerer.Register(m); err != nil {
				return nil, fmt.Errorf("register %s compactor metrics: %w", spec.Signal, err)
			}
		}
	}
	return l, nil
}

// Run compacts at once and then every Interval, each pass taking the
// windows that ended at least Delay ago, until ctx is cancelled; it
// returns nil then, once the pass under way has ended. Errors are logged
// and retried at the next pass.
func (l *Loop) Run(ctx context.Context) error {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		l.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// pass runs one compaction and updates the metrics.
func (l *Loop) pass(ctx context.Context) {
	now := l.now()
	p, err := l.spec.Compact(ctx, now.Add(-l.delay))
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		l.runs.WithLabelValues("error").Inc()
		l.logger.WarnContext(ctx, l.spec.Signal+" compaction", "err", err)
	case p.Skipped:
		l.runs.WithLabelValues("skipped").Inc()
	default:
		l.runs.WithLabelValues("ok").Inc()
		if p.Windows > 0 {
			l.logger.InfoContext(ctx, l.spec.Done, append([]any{"windows", p.Windows, "duration", p.Duration}, p.Attrs...)...)
		}
	}
	l.moved.Add(float64(p.Moved))
	l.bytes.Add(float64(p.Bytes))
	l.last.Set(p.Duration.Seconds())
	oldest, ok, err := l.spec.Oldest(ctx)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			l.logger.WarnContext(ctx, l.spec.Signal+" compaction lag", "err", err)
		}
		return
	}
	due := 0.0
	if ok {
		if d := now.Sub(oldest.Add(l.spec.Window + l.delay)); d > 0 {
			due = d.Seconds()
		}
	}
	l.lag.Set(due)
}
