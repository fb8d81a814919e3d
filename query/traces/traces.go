// Package traces answers trace questions for the HTTP APIs: services,
// operations, a trace by id and trace search. It sits between web/api and
// the span store, and applies what every trace query needs regardless of
// storage: a deadline per query, a default and a cap on the search window,
// and the result limit.
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

// Reader is what the trace queries need from storage.
type Reader interface {
	Services(ctx context.Context) ([]string, error)
	Operations(ctx context.Context, q storage.OperationQuery) ([]storage.Operation, error)
	Trace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error)
	FindTraces(ctx context.Context, q storage.TraceQuery) ([]ptrace.Traces, error)
}

// Config bounds trace queries.
type Config struct {
	// Timeout bounds each query (default 30s).
	Timeout time.Duration
	// DefaultLookback is the search window when a query gives no start
	// (default 1h, as the Jaeger UI's default).
	DefaultLookback time.Duration
	// MaxLookback caps the search window, usually the retention period;
	// zero means no cap.
	MaxLookback time.Duration
	// MaxLimit caps the number of traces one search returns (default 1500).
	MaxLimit int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service runs trace queries against a Reader. Safe for concurrent use.
type Service struct {
	r   Reader
	cfg Config
}

// New returns a Service over r.
func New(r Reader, cfg Config) *Service {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.DefaultLookback <= 0 {
		cfg.DefaultLookback = time.Hour
	}
	if cfg.MaxLimit <= 0 {
		cfg.MaxLimit = 1500
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

// Operations lists the operations of a service.
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

// FindTraces searches traces. A missing start means DefaultLookback before
// the end (or now); the window is cut to MaxLookback.
func (s *Service) FindTraces(ctx context.Context, q storage.TraceQuery) ([]ptrace.Traces, error) {
	now := s.cfg.Now()
	if q.StartMax.IsZero() {
		q.StartMax = now
	}
	if q.StartMin.IsZero() {
		q.StartMin = q.StartMax.Add(-s.cfg.DefaultLookback)
	}
	if s.cfg.MaxLookback > 0 && q.StartMin.Before(now.Add(-s.cfg.MaxLookback)) {
		q.StartMin = now.Add(-s.cfg.MaxLookback)
	}
	if q.Limit <= 0 || q.Limit > s.cfg.MaxLimit {
		q.Limit = min(max(q.Limit, 20), s.cfg.MaxLimit)
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	out, err := s.r.FindTraces(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("find traces: %w", err)
	}
	return out, nil
}
