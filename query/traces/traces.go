package traces

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/storage"
)

// Defaults and bounds of trace queries. web/api refuses a 'limit' above
// MaxLimit with a 400 rather than cutting it.
const (
	// DefaultLimit is the number of traces a search returns when it asks
	// for none: the Jaeger UI's default.
	DefaultLimit = 20
	// MaxLimit is the most traces one search returns: the largest limit
	// the Jaeger UI's search form offers.
	MaxLimit = 1500
	// DefaultLookback is how far before its end a search looks when it
	// gives neither a start nor a lookback: the Jaeger query service's
	// default.
	DefaultLookback = 48 * time.Hour
	// DefaultTimeout bounds each query when Config.Timeout is zero.
	DefaultTimeout = 30 * time.Second
)

// Reader is what the trace queries need from storage. Implementations must
// be safe for concurrent use; returned traces are owned by the caller.
type Reader interface {
	// Services returns the names of the services that reported spans.
	Services(ctx context.Context) ([]string, error)
	// Operations returns the span names of q.Service, of q.SpanKind when
	// it is set.
	Operations(ctx context.Context, q storage.OperationQuery) ([]storage.Operation, error)
	// Trace returns every span of one trace, or an error wrapping
	// storage.ErrNotFound.
	Trace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error)
	// FindTraces returns the traces with a span matching q, one
	// ptrace.Traces per trace, at most q.Limit of them, newest first, and
	// whether the search stopped at the store's bound before it examined
	// the whole window (see storage.FoundTraces). The Service only ever
	// passes a window (StartMin, StartMax) and a limit that are set.
	FindTraces(ctx context.Context, q storage.TraceQuery) (storage.FoundTraces, error)
}

// Config bounds trace queries. Its zero value takes the defaults.
type Config struct {
	// Timeout bounds each query (default DefaultTimeout).
	Timeout time.Duration
	// MaxLookback is how far before now a search may look, usually the
	// span retention, since nothing older is stored; zero means no bound.
	MaxLookback time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Query is a trace search as the APIs ask it: a storage.TraceQuery whose
// zero fields take the defaults (see Service.FindTraces), and the
// Jaeger UI's lookback.
type Query struct {
	storage.TraceQuery
	// Lookback, when StartMin is zero, places it Lookback before
	// StartMax; zero means DefaultLookback.
	Lookback time.Duration
}

// Service runs trace queries against a Reader. Safe for concurrent use.
type Service struct {
	r   Reader
	cfg Config
}

// New returns a Service over r, which must not be nil.
func New(r Reader, cfg Config) *Service {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{r: r, cfg: cfg}
}

func (s *Service) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// Services lists the services that reported spans.
func (s *Service) Services(ctx context.Context) ([]string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	out, err := s.r.Services(ctx)
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	return out, nil
}

// Operations lists the operations of a service. q.Service must be set.
func (s *Service) Operations(ctx context.Context, q storage.OperationQuery) ([]storage.Operation, error) {
	if q.Service == "" {
		return nil, errors.New("operations: service is required")
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	out, err := s.r.Operations(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("operations of %q: %w", q.Service, err)
	}
	return out, nil
}

// Trace returns one whole trace or an error wrapping storage.ErrNotFound.
func (s *Service) Trace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	td, err := s.r.Trace(ctx, id)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("trace %s: %w", id, err)
	}
	return td, nil
}

// FindTraces returns the traces matching q, one ptrace.Traces per trace,
// at most Limit of them, newest first, and whether the store stopped
// before it examined the whole window (storage.FoundTraces.Truncated,
// which callers must pass on to the user: older matches may exist). It
// settles what q leaves open before the reader sees it:
//
//   - StartMax zero is now;
//   - StartMin zero is StartMax minus q.Lookback, or minus
//     DefaultLookback when q.Lookback is zero;
//   - StartMin earlier than now minus Config.MaxLookback is moved up to it;
//   - Limit zero or negative is DefaultLimit, and above MaxLimit is
//     MaxLimit.
//
// A window that then ends before it starts (a start in the future without
// an end, or an end older than MaxLookback) matches no trace and is not
// sent to the reader.
func (s *Service) FindTraces(ctx context.Context, q Query) (storage.FoundTraces, error) {
	tq := s.plan(q)
	if tq.StartMin.After(tq.StartMax) {
		return storage.FoundTraces{}, nil
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	out, err := s.r.FindTraces(ctx, tq)
	if err != nil {
		return storage.FoundTraces{}, fmt.Errorf("find traces: %w", err)
	}
	if len(out.Traces) > tq.Limit {
		out.Traces = out.Traces[:tq.Limit]
	}
	return out, nil
}

// plan returns the storage query FindTraces sends for q.
func (s *Service) plan(q Query) storage.TraceQuery {
	tq := q.TraceQuery
	now := s.cfg.Now()
	if tq.StartMax.IsZero() {
		tq.StartMax = now
	}
	if tq.StartMin.IsZero() {
		lookback := q.Lookback
		if lookback <= 0 {
			lookback = DefaultLookback
		}
		tq.StartMin = tq.StartMax.Add(-lookback)
	}
	if s.cfg.MaxLookback > 0 {
		if oldest := now.Add(-s.cfg.MaxLookback); tq.StartMin.Before(oldest) {
			tq.StartMin = oldest
		}
	}
	switch {
	case tq.Limit <= 0:
		tq.Limit = DefaultLimit
	case tq.Limit > MaxLimit:
		tq.Limit = MaxLimit
	}
	return tq
}
