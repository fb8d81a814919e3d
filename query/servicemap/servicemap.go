package servicemap

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	prom "github.com/prometheus/prometheus/promql"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/storage"
)

// Defaults and bounds of service-map questions.
const (
	// DefaultWindow is the map window when a query gives no start.
	DefaultWindow = 15 * time.Minute
	// DefaultTraceLimit is the number of example traces of an edge
	// returned when a query asks for none.
	DefaultTraceLimit = 20
	// MaxTraceLimit is the most example traces of an edge one query
	// returns.
	MaxTraceLimit = 1000
	// DefaultTimeout bounds each query when Config.Timeout is zero.
	DefaultTimeout = 30 * time.Second
	// DefaultKeyLookback is Config.KeyLookback when zero: the deriver's
	// default series_idle_timeout (10 m) plus two minutes.
	DefaultKeyLookback = 12 * time.Minute
	// counterLookback is how far before a window's start the marks look
	// for the sample a counter is measured from and how old a gauge's
	// last sample may be: the PromQL lookback, longer than any export
	// interval of the reference client.
	counterLookback = 5 * time.Minute
)

// EdgeTraceReader is what the edge traces need from storage
// (storage/postgres/mapstore.Store). Implementations must be safe for
// concurrent use; the returned slice is owned by the caller.
type EdgeTraceReader interface {
	// EdgeTraces returns the example traces of q's edge in q's window,
	// newest first, at most q.Limit of them (always set).
	EdgeTraces(ctx context.Context, q storage.EdgeTraceQuery) ([]storage.EdgeTrace, error)
}

// RollupReader is what the map and the dependency links need from
// storage (storage/postgres/mapstore.Store): the per-minute rollups the
// deriver writes. Implementations must be safe for concurrent use; the
// returned slice is owned by the caller.
type RollupReader interface {
	// MapTotals returns, for every edge and node with calls in q's
	// window (whole minutes), the increase of its counts over the
	// window summed over replicas and incarnations, narrowed by q's
	// environment and namespace.
	MapTotals(ctx context.Context, q storage.MapWindowQuery) ([]storage.MapTotal, error)
}

// RangeQuerier runs PromQL range queries with Vigil's limits
// (query/promql.Engine). The caller closes the returned query.
type RangeQuerier interface {
	RangeQuery(ctx context.Context, qs string, start, end time.Time, step time.Duration, opts promql.QueryOptions) (prom.Query, error)
}

// Config bounds service-map questions. Its zero value takes the defaults.
type Config struct {
	// MaxLookback is the longest map window, usually the metric
	// retention, since nothing older is stored; zero means no bound. The
	// dependency links' lookback is cut to it.
	MaxLookback time.Duration
	// Timeout bounds each query (default DefaultTimeout).
	Timeout time.Duration
	// KeyLookback is how far before a window's start the rollup store
	// looks for the previous row of a key, the row the key's counts in
	// the window are measured from: it must exceed the deriver's
	// series_idle_timeout (after which a key is forgotten and starts
	// again from zero under a new incarnation) plus a minute or two of
	// flush delay. Zero means DefaultKeyLookback.
	KeyLookback time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Options holds the Service's dependencies. A nil one turns off the
// questions that need it (they fail with storage.ErrUnavailable), except
// Metrics, without which the map only lacks its marks.
type Options struct {
	// Rollups holds the deriver's per-minute rollups of the service
	// graph and of the services' server spans
	// (storage/postgres/mapstore.Store): the map and the dependency
	// links read their counts and latencies from it.
	Rollups RollupReader
	// Metrics is the metric store (storage/postgres/metricstore.Store):
	// the map reads the reference client's decision series from it for
	// the edges' marks. Without it the map has no marks.
	Metrics promstorage.Queryable
	// Engine runs the Monitor's PromQL (query/promql.Engine).
	Engine RangeQuerier
	// EdgeTraces holds the example traces of the edges.
	EdgeTraces EdgeTraceReader
}

// QueryError is a question that cannot be answered as asked: a bad
// window, an unknown filter, a limit out of range, a Monitor query the
// engine refuses. Param names what is wrong as the APIs spell the
// parameter ("start", "limit", "attr.<key>"; "" when no single parameter
// is at fault); the APIs answer it 400 with its text.
type QueryError struct {
	Param string
	Msg   string
	Err   error // optional cause, shown after Msg
}

func (e *QueryError) Error() string {
	s := e.Msg
	if e.Param != "" {
		s = "parameter '" + e.Param + "' " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *QueryError) Unwrap() error { return e.Err }

// Service answers service-map, dependency and Monitor questions. Safe for
// concurrent use.
type Service struct {
	cfg  Config
	opts Options
}

// New returns a Service with cfg's bounds over opts' dependencies.
func New(cfg Config, opts Options) *Service {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.KeyLookback <= 0 {
		cfg.KeyLookback = DefaultKeyLookback
	}
	return &Service{cfg: cfg, opts: opts}
}

func (s *Service) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// window settles a window the way every map question does: end zero is
// now, start zero is end minus def; start after end and a window longer
// than MaxLookback are QueryErrors.
func (s *Service) window(start, end time.Time, def time.Duration) (time.Time, time.Time, error) {
	if end.IsZero() {
		end = s.cfg.Now()
	}
	if start.IsZero() {
		start = end.Add(-def)
	}
	if start.After(end) {
		return start, end, &QueryError{Param: "start", Msg: "must not be after 'end'"}
	}
	if s.cfg.MaxLookback > 0 && end.Sub(start) > s.cfg.MaxLookback {
		return start, end, &QueryError{Param: "start", Msg: fmt.Sprintf("makes a window of %s, longer than the retention of %s", end.Sub(start), s.cfg.MaxLookback)}
	}
	return start, end, nil
}

// EdgeTraces returns example traces of the calls from q.Client to
// q.Server in q's window, newest first. A zero End is now and a zero
// Start End minus DefaultWindow; Limit zero is DefaultTraceLimit, and
// above MaxTraceLimit or negative a QueryError, as is a window longer than
// Config.MaxLookback.
func (s *Service) EdgeTraces(ctx context.Context, q storage.EdgeTraceQuery) ([]storage.EdgeTrace, error) {
	if s.opts.EdgeTraces == nil {
		return nil, fmt.Errorf("edge traces: no store: %w", storage.ErrUnavailable)
	}
	var err error
	if q.Start, q.End, err = s.window(q.Start, q.End, DefaultWindow); err != nil {
		return nil, err
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultTraceLimit
	case q.Limit < 0 || q.Limit > MaxTraceLimit:
		return nil, &QueryError{Param: "limit", Msg: fmt.Sprintf("must be an integer from 1 to %d", MaxTraceLimit)}
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	out, err := s.opts.EdgeTraces.EdgeTraces(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("edge traces %s -> %s: %w", q.Client, q.Server, err)
	}
	return out, nil
}

// Dependency is one link of Jaeger's dependency graph: the calls from
// Parent to Child in the window, every connection type together.
type Dependency struct {
	Parent    string
	Child     string
	CallCount uint64
}

// Dependencies returns the links with at least one call in
// [end−lookback, end], the window widened to whole minutes (start down,
// end up), sorted by parent then child, with the exact counts of the
// deriver's rollups. A zero end is now; lookback is cut to
// Config.MaxLookback; a lookback that is not positive is a QueryError.
func (s *Service) Dependencies(ctx context.Context, end time.Time, lookback time.Duration) ([]Dependency, error) {
	if s.opts.Rollups == nil {
		return nil, fmt.Errorf("dependencies: no rollup store: %w", storage.ErrUnavailable)
	}
	if lookback <= 0 {
		return nil, &QueryError{Param: "lookback", Msg: "must be positive"}
	}
	if end.IsZero() {
		end = s.cfg.Now()
	}
	if s.cfg.MaxLookback > 0 && lookback > s.cfg.MaxLookback {
		lookback = s.cfg.MaxLookback
	}
	start, end := alignWindow(end.Add(-lookback), end)
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	totals, err := s.opts.Rollups.MapTotals(ctx, storage.MapWindowQuery{Start: start, End: end, KeyLookback: s.cfg.KeyLookback})
	if err != nil {
		return nil, fmt.Errorf("dependencies: %w", err)
	}
	counts := map[[2]string]uint64{}
	for _, t := range totals {
		if !t.Node && t.Counts.Calls > 0 {
			counts[[2]string{t.Client, t.Server}] += t.Counts.Calls
		}
	}
	out := make([]Dependency, 0, len(counts))
	for k, v := range counts {
		out = append(out, Dependency{Parent: k[0], Child: k[1], CallCount: v})
	}
	slices.SortFunc(out, func(a, b Dependency) int {
		if c := strings.Compare(a.Parent, b.Parent); c != 0 {
			return c
		}
		return strings.Compare(a.Child, b.Child)
	})
	return out, nil
}

// alignWindow widens [start, end] to whole minutes, the rollups'
// resolution: start down, end up, and at least one minute long.
func alignWindow(start, end time.Time) (time.Time, time.Time) {
	start, end = start.UTC().Truncate(time.Minute), end.UTC()
	if t := end.Truncate(time.Minute); t.Before(end) {
		end = t.Add(time.Minute)
	} else {
		end = t
	}
	if !end.After(start) {
		end = start.Add(time.Minute)
	}
	return start, end
}
