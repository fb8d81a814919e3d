package logs

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/internal/tail"
	"github.com/vigil-obs/vigil/storage"
)

// Reader is what log queries need from storage.
type Reader interface {
	FindLogs(ctx context.Context, q storage.LogQuery) (storage.LogPage, error)
	LogHistogram(ctx context.Context, q storage.LogQuery, step time.Duration) ([]storage.LogBucket, bool, error)
	TraceLogs(ctx context.Context, id pcommon.TraceID) ([]storage.LogRecord, error)
}

// Config bounds log queries.
type Config struct {
	// Timeout bounds each query (default 30s).
	Timeout time.Duration
	// DefaultLookback is the search window when a query gives no start
	// (default 1h); a search by trace id without a start looks back
	// MaxLookback instead, since the trace id index makes that cheap.
	DefaultLookback time.Duration
	// MaxLookback caps the search window, usually the log retention; zero
	// means no cap (and 7 days for a trace id search without start).
	MaxLookback time.Duration
	// MaxLimit caps the records of one page (default 1000).
	MaxLimit int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service runs log queries against a Reader. Safe for concurrent use.
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
		cfg.MaxLimit = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{r: r, cfg: cfg}
}

// FindLogs returns one page of the records matching q, newest first. It
// fills the window (End defaults to now, Start to End minus the default
// lookback, or minus MaxLookback for a trace id search) and caps it and
// the limit.
func (s *Service) FindLogs(ctx context.Context, q storage.LogQuery) (storage.LogPage, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	q = s.window(q)
	if q.Limit <= 0 || q.Limit > s.cfg.MaxLimit {
		q.Limit = min(max(q.Limit, 100), s.cfg.MaxLimit)
	}
	page, err := s.r.FindLogs(ctx, q)
	if err != nil {
		return storage.LogPage{}, fmt.Errorf("find logs: %w", err)
	}
	return page, nil
}

// LogHistogram counts the records matching q over its window (filled and
// capped as by FindLogs) in `buckets` equal buckets, oldest first. It
// returns the buckets, their width, and whether the counts are
// approximate (attribute filters are counted by their Bloom test).
func (s *Service) LogHistogram(ctx context.Context, q storage.LogQuery, buckets int) ([]storage.LogBucket, time.Duration, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	q = s.window(q)
	if buckets <= 0 {
		buckets = 60
	}
	step := max(q.End.Sub(q.Start)/time.Duration(buckets), time.Millisecond)
	// Whole milliseconds keep bucket edges readable.
	step = step.Round(time.Millisecond)
	out, approx, err := s.r.LogHistogram(ctx, q, step)
	if err != nil {
		return nil, 0, false, fmt.Errorf("log histogram: %w", err)
	}
	return out, step, approx, nil
}

// window fills and caps the time window of q.
func (s *Service) window(q storage.LogQuery) storage.LogQuery {
	if q.End.IsZero() {
		q.End = s.cfg.Now()
	}
	if q.Start.IsZero() {
		lookback := s.cfg.DefaultLookback
		if !q.TraceID.IsEmpty() {
			lookback = s.cfg.MaxLookback
			if lookback <= 0 {
				lookback = 7 * 24 * time.Hour
			}
		}
		q.Start = q.End.Add(-lookback)
	}
	if s.cfg.MaxLookback > 0 && q.End.Sub(q.Start) > s.cfg.MaxLookback {
		q.Start = q.End.Add(-s.cfg.MaxLookback)
	}
	return q
}

// TraceLogs returns the records of one trace, oldest first.
func (s *Service) TraceLogs(ctx context.Context, id pcommon.TraceID) ([]storage.LogRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	recs, err := s.r.TraceLogs(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("logs of trace %s: %w", id, err)
	}
	return recs, nil
}

// Publisher returns the function the log pipeline calls after each
// commit (pipeline.LogOptions.Committed): it flattens the committed logs
// into records and publishes them on hub, in commit order. When nobody
// subscribes it returns at once; otherwise it copies what it publishes, so
// subscribers never share memory with ingest.
func Publisher(hub *tail.Hub[storage.LogRecord]) func([]plog.Logs) {
	return func(batch []plog.Logs) {
		if hub.Subscribers() == 0 {
			return
		}
		hub.Publish(Records(batch))
	}
}

// Records flattens logs into records (copies, with Service taken from
// service.name), in order.
func Records(batch []plog.Logs) []storage.LogRecord {
	var out []storage.LogRecord
	for _, ld := range batch {
		rls := ld.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			rl := rls.At(i)
			res := pcommon.NewResource()
			rl.Resource().CopyTo(res)
			service := "unknown_service"
			if v, ok := res.Attributes().Get("service.name"); ok && v.Str() != "" {
				service = v.Str()
			}
			sls := rl.ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				scope := pcommon.NewInstrumentationScope()
				sls.At(j).Scope().CopyTo(scope)
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					lr := plog.NewLogRecord()
					lrs.At(k).CopyTo(lr)
					out = append(out, storage.LogRecord{Service: service, Resource: res, Scope: scope, Record: lr})
				}
			}
		}
	}
	return out
}
