package promql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	prom "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
)

// Config holds the limits of PromQL evaluation.
type Config struct {
	// Timeout bounds one query's evaluation (default 2m, as Prometheus).
	Timeout time.Duration `yaml:"timeout"`
	// MaxSamples is the most samples one query may hold in memory at once
	// (default 50,000,000, as Prometheus).
	MaxSamples int `yaml:"max_samples"`
	// LookbackDelta is how far back an instant selector looks for a
	// sample, so a series that stops reporting disappears from instant
	// queries after it (default 5m, as Prometheus).
	LookbackDelta time.Duration `yaml:"lookback_delta"`
}

// Defaults of Config.
const (
	DefaultTimeout       = 2 * time.Minute
	DefaultMaxSamples    = 50_000_000
	DefaultLookbackDelta = 5 * time.Minute
)

// Validate reports a setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Timeout < 0:
		return errors.New("promql timeout: must not be negative")
	case c.MaxSamples < 0:
		return errors.New("promql max_samples: must not be negative")
	case c.LookbackDelta < 0:
		return errors.New("promql lookback_delta: must not be negative")
	}
	return nil
}

// Engine evaluates PromQL over one Queryable. Safe for concurrent use.
type Engine struct {
	engine    *prom.Engine
	queryable storage.Queryable
	parser    parser.Parser
}

// New returns an engine over q with cfg's limits (zero fields take the
// defaults). A nil logger discards logs; a nil registerer registers no
// metrics (the engine's are prometheus_engine_*).
func New(q storage.Queryable, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxSamples == 0 {
		cfg.MaxSamples = DefaultMaxSamples
	}
	if cfg.LookbackDelta == 0 {
		cfg.LookbackDelta = DefaultLookbackDelta
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := parser.NewParser(parser.Options{})
	eng := prom.NewEngine(prom.EngineOpts{
		Logger:               logger.With("component", "promql"),
		Reg:                  reg,
		MaxSamples:           cfg.MaxSamples,
		Timeout:              cfg.Timeout,
		LookbackDelta:        cfg.LookbackDelta,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		UseStartTimestamps:   true,
		Parser:               p,
		NoStepSubqueryIntervalFn: func(int64) int64 {
			return time.Minute.Milliseconds()
		},
	})
	return &Engine{engine: eng, queryable: q, parser: p}, nil
}

// Prometheus returns the underlying engine, for Prometheus components that
// take one (rules.EngineQueryFunc).
func (e *Engine) Prometheus() *prom.Engine { return e.engine }

// Queryable returns the storage the engine reads.
func (e *Engine) Queryable() storage.Queryable { return e.queryable }

// Parser returns the PromQL parser the engine uses, for parsing series
// selectors (match[]) the same way.
func (e *Engine) Parser() parser.Parser { return e.parser }

// InstantQuery prepares qs for evaluation at ts. The caller must Close the
// query once done with its result.
func (e *Engine) InstantQuery(ctx context.Context, qs string, ts time.Time) (prom.Query, error) {
	q, err := e.engine.NewInstantQuery(ctx, e.queryable, nil, qs, ts)
	if err != nil {
		return nil, fmt.Errorf("instant query: %w", err)
	}
	return q, nil
}

// RangeQuery prepares qs for evaluation from start to end every step. The
// caller must Close the query once done with its result.
func (e *Engine) RangeQuery(ctx context.Context, qs string, start, end time.Time, step time.Duration) (prom.Query, error) {
	q, err := e.engine.NewRangeQuery(ctx, e.queryable, nil, qs, start, end, step)
	if err != nil {
		return nil, fmt.Errorf("range query: %w", err)
	}
	return q, nil
}

// Close stops the engine's query tracking.
func (e *Engine) Close() error { return e.engine.Close() }
