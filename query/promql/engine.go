package promql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	prom "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/logging"

	"github.com/vigil-obs/vigil/storage"
)

// Config holds the limits of PromQL evaluation. Every query is checked
// against them before the engine allocates anything for it; the store
// enforces the read limits while it reads.
//
// Memory: a query holds at most MaxSamplesRead samples read from
// PostgreSQL (about 40 bytes each) plus MaxSamples samples in the engine
// (about 16 bytes each), and at most MaxConcurrent queries run at once;
// the defaults bound all queries together to about 4 × 560 MB in the
// worst case and far less in practice.
type Config struct {
	// Timeout bounds one query's evaluation, waiting for a slot included
	// (default 2m, as Prometheus).
	Timeout time.Duration `yaml:"timeout"`
	// MaxSamples is the most samples one query may hold in the engine at
	// once (default 10,000,000; Prometheus's 50,000,000 assumes the
	// TSDB's memory-mapped chunks).
	MaxSamples int `yaml:"max_samples"`
	// MaxSamplesRead is the most samples one query may read from storage,
	// over all its selectors (default 10,000,000).
	MaxSamplesRead int64 `yaml:"max_samples_read"`
	// MaxSeries is the most series one query may select, over all its
	// selectors (default 1,000,000).
	MaxSeries int `yaml:"max_series"`
	// MaxConcurrent is the most queries evaluated at once; others wait
	// for a slot within their timeout (default 4).
	MaxConcurrent int `yaml:"max_concurrent"`
	// LookbackDelta is how far back an instant selector looks for a
	// sample, so a series that stops reporting disappears from instant
	// queries after it (default 5m, as Prometheus).
	LookbackDelta time.Duration `yaml:"lookback_delta"`
	// MaxPointsPerSeries bounds a range query's steps, (end-start)/step+1
	// (default 11,000, as Prometheus).
	MaxPointsPerSeries int `yaml:"max_points_per_series"`
	// MaxSubquerySteps bounds the steps at which all of a query's
	// subqueries are evaluated together; a nested subquery runs over its
	// parent's whole range (default 1,000,000).
	MaxSubquerySteps int64 `yaml:"max_subquery_steps"`
	// MaxQueryBytes bounds the length of an expression (default 128 KiB).
	MaxQueryBytes int `yaml:"max_query_bytes"`
	// MaxQueryDepth bounds the nesting of parentheses, brackets and
	// braces in an expression (default 256).
	MaxQueryDepth int `yaml:"max_query_depth"`
	// MaxQueryOperators bounds the operators in an expression (default
	// 4,096); parsing takes time in the square of an operator chain.
	MaxQueryOperators int `yaml:"max_query_operators"`
	// MaxRegexCost bounds the memory a regular expression may need to
	// match: capture slots × instructions of its compiled program, each
	// slot 8 bytes per NFA thread (default 4,000,000, at most 32 MB per
	// match in progress).
	MaxRegexCost int64 `yaml:"max_regex_cost"`
	// LogFile, when set, receives one JSON line per query, as
	// Prometheus's query log (--query.log-file).
	LogFile string `yaml:"log_file"`
}

// Defaults of Config.
const (
	DefaultTimeout            = 2 * time.Minute
	DefaultMaxSamples         = 10_000_000
	DefaultMaxSamplesRead     = 10_000_000
	DefaultMaxSeries          = 1_000_000
	DefaultMaxConcurrent      = 4
	DefaultLookbackDelta      = 5 * time.Minute
	DefaultMaxPointsPerSeries = 11_000
	DefaultMaxSubquerySteps   = 1_000_000
	DefaultMaxQueryBytes      = 128 << 10
	DefaultMaxQueryDepth      = 256
	DefaultMaxQueryOperators  = 4096
	DefaultMaxRegexCost       = 4_000_000
)

// DefaultConfig returns the default limits.
func DefaultConfig() Config {
	return Config{
		Timeout: DefaultTimeout, MaxSamples: DefaultMaxSamples, MaxSamplesRead: DefaultMaxSamplesRead,
		MaxSeries: DefaultMaxSeries, MaxConcurrent: DefaultMaxConcurrent, LookbackDelta: DefaultLookbackDelta,
		MaxPointsPerSeries: DefaultMaxPointsPerSeries, MaxSubquerySteps: DefaultMaxSubquerySteps,
		MaxQueryBytes: DefaultMaxQueryBytes, MaxQueryDepth: DefaultMaxQueryDepth, MaxQueryOperators: DefaultMaxQueryOperators,
		MaxRegexCost: DefaultMaxRegexCost,
	}
}

// withDefaults fills zero fields with the defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setDefault(&c.Timeout, d.Timeout)
	setDefault(&c.MaxSamples, d.MaxSamples)
	setDefault(&c.MaxSamplesRead, d.MaxSamplesRead)
	setDefault(&c.MaxSeries, d.MaxSeries)
	setDefault(&c.MaxConcurrent, d.MaxConcurrent)
	setDefault(&c.LookbackDelta, d.LookbackDelta)
	setDefault(&c.MaxPointsPerSeries, d.MaxPointsPerSeries)
	setDefault(&c.MaxSubquerySteps, d.MaxSubquerySteps)
	setDefault(&c.MaxQueryBytes, d.MaxQueryBytes)
	setDefault(&c.MaxQueryDepth, d.MaxQueryDepth)
	setDefault(&c.MaxQueryOperators, d.MaxQueryOperators)
	setDefault(&c.MaxRegexCost, d.MaxRegexCost)
	return c
}

func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Validate reports a setting that cannot work, naming its key. Zero means
// the default everywhere.
func (c Config) Validate() error {
	for _, f := range []struct {
		key      string
		negative bool
	}{
		{"timeout", c.Timeout < 0},
		{"max_samples", c.MaxSamples < 0},
		{"max_samples_read", c.MaxSamplesRead < 0},
		{"max_series", c.MaxSeries < 0},
		{"max_concurrent", c.MaxConcurrent < 0},
		{"lookback_delta", c.LookbackDelta < 0},
		{"max_points_per_series", c.MaxPointsPerSeries < 0},
		{"max_subquery_steps", c.MaxSubquerySteps < 0},
		{"max_query_bytes", c.MaxQueryBytes < 0},
		{"max_query_depth", c.MaxQueryDepth < 0},
		{"max_query_operators", c.MaxQueryOperators < 0},
		{"max_regex_cost", c.MaxRegexCost < 0},
	} {
		if f.negative {
			return fmt.Errorf("query.%s: must not be negative", f.key)
		}
	}
	return nil
}

// ReadLimiter is implemented by a Queryable that can bound what one
// query reads (storage/postgres/metricstore.Store). The engine uses it
// when the Queryable has it; otherwise only the engine's own limits apply.
type ReadLimiter interface {
	LimitedQuerier(mint, maxt int64, limits storage.ReadLimits) (promstorage.Querier, error)
}

// limitedQueryable hands the engine one querier per query whose reads
// count against the query's limits.
type limitedQueryable struct {
	q      ReadLimiter
	limits storage.ReadLimits
}

func (l limitedQueryable) Querier(mint, maxt int64) (promstorage.Querier, error) {
	return l.q.LimitedQuerier(mint, maxt, l.limits)
}

// Engine evaluates PromQL over one Queryable. Safe for concurrent use.
type Engine struct {
	engine    *prom.Engine
	queryable promstorage.Queryable // what queries read: limited when the store can be
	raw       promstorage.Queryable // the store as given
	parser    parser.Parser
	cfg       Config
	queryLog  io.Closer // nil without a query log
}

// New returns an engine over q with cfg's limits (zero fields take the
// defaults). A nil logger discards logs; a nil registerer registers no
// metrics (the engine's are prometheus_engine_*).
func New(q promstorage.Queryable, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := parser.NewParser(parser.Options{})
	eng := prom.NewEngine(prom.EngineOpts{
		Logger:               logger.With("component", "promql"),
		Reg:                  reg,
		MaxSamples:           cfg.MaxSamples,
		Timeout:              cfg.Timeout,
		ActiveQueryTracker:   newSlots(cfg.MaxConcurrent),
		LookbackDelta:        cfg.LookbackDelta,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		// Per-step statistics are computed only for a caller that asks
		// (stats=all), as in Prometheus.
		EnablePerStepStats: true,
		UseStartTimestamps: true,
		Parser:             p,
		NoStepSubqueryIntervalFn: func(rangeMillis int64) int64 {
			return defaultSubqueryStep(time.Duration(rangeMillis) * time.Millisecond).Milliseconds()
		},
	})
	e := &Engine{engine: eng, queryable: q, raw: q, parser: p, cfg: cfg}
	if rl, ok := q.(ReadLimiter); ok {
		e.queryable = limitedQueryable{q: rl, limits: storage.ReadLimits{MaxSeries: cfg.MaxSeries, MaxSamples: cfg.MaxSamplesRead}}
	}
	if cfg.LogFile != "" {
		ql, err := logging.NewJSONFileLogger(cfg.LogFile)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("query.log_file: %w", err), eng.Close())
		}
		eng.SetQueryLogger(ql)
		e.queryLog = ql
	}
	return e, nil
}

// Config returns the effective limits, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Prometheus returns the underlying engine, for Prometheus components that
// take one (rules.EngineQueryFunc).
func (e *Engine) Prometheus() *prom.Engine { return e.engine }

// Queryable returns the storage the engine reads, without the per-query
// read limits (rules and APIs that select series directly apply their
// own).
func (e *Engine) Queryable() promstorage.Queryable { return e.raw }

// Parser returns the PromQL parser the engine uses, for parsing series
// selectors (match[]) the same way.
func (e *Engine) Parser() parser.Parser { return e.parser }

// QueryOptions are per-query options.
type QueryOptions struct {
	// PerStepStats asks for per-step statistics (stats=all in
	// Prometheus's API).
	PerStepStats bool
}

func (o QueryOptions) prom() prom.QueryOpts {
	return prom.NewPrometheusQueryOpts(o.PerStepStats, 0, nil)
}

// admit checks qs against the limits before the engine sees it: its shape
// before parsing, then the steps its evaluation would take. Errors are
// *LimitError or the parser's own.
func (e *Engine) admit(qs string, span, step time.Duration) error {
	if err := checkShape(qs, e.cfg); err != nil {
		return err
	}
	expr, err := e.parser.ParseExpr(qs)
	if err != nil {
		return err
	}
	return checkCost(expr, span, step, e.cfg)
}

// InstantQuery prepares qs for evaluation at ts. The caller must Close the
// query once done with its result. A query over the limits gets a
// *LimitError and is not evaluated.
func (e *Engine) InstantQuery(ctx context.Context, qs string, ts time.Time, opts QueryOptions) (prom.Query, error) {
	if err := e.admit(qs, 0, 0); err != nil {
		return nil, fmt.Errorf("instant query: %w", err)
	}
	q, err := e.engine.NewInstantQuery(ctx, e.queryable, opts.prom(), qs, ts)
	if err != nil {
		return nil, fmt.Errorf("instant query: %w", err)
	}
	return q, nil
}

// RangeQuery prepares qs for evaluation from start to end every step. The
// caller must Close the query once done with its result. A query over the
// limits gets a *LimitError and is not evaluated.
func (e *Engine) RangeQuery(ctx context.Context, qs string, start, end time.Time, step time.Duration, opts QueryOptions) (prom.Query, error) {
	if step <= 0 {
		return nil, fmt.Errorf("range query: step %s is not positive", step)
	}
	if err := e.admit(qs, end.Sub(start), step); err != nil {
		return nil, fmt.Errorf("range query: %w", err)
	}
	q, err := e.engine.NewRangeQuery(ctx, e.queryable, opts.prom(), qs, start, end, step)
	if err != nil {
		return nil, fmt.Errorf("range query: %w", err)
	}
	return q, nil
}

// Close stops the engine's query tracking and closes the query log.
func (e *Engine) Close() error {
	err := e.engine.Close()
	if e.queryLog != nil {
		err = errors.Join(err, e.queryLog.Close())
	}
	return err
}
