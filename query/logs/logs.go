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

// Defaults and bounds of log queries. web/api refuses a 'limit' above
// MaxLimit and a 'buckets' above MaxHistogramBuckets with a 400 rather than
// cutting them.
const (
	// DefaultLimit is the page size when a search asks for none.
	DefaultLimit = 100
	// MaxLimit is the largest page one search returns.
	MaxLimit = 1000
	// DefaultLookback is how far before its end a search looks when it
	// gives no start.
	DefaultLookback = time.Hour
	// DefaultTraceLookback is how far a search by trace id without a
	// start looks back when Config.MaxLookback is zero; the trace id
	// index makes a long window cheap.
	DefaultTraceLookback = 7 * 24 * time.Hour
	// DefaultHistogramBuckets is the number of histogram buckets when a
	// request asks for none.
	DefaultHistogramBuckets = 60
	// MaxHistogramBuckets is the most buckets one histogram has.
	MaxHistogramBuckets = 1000
	// MaxTraceLogs is the most records the logs of one trace return: the
	// oldest MaxTraceLogs, the later ones left out.
	MaxTraceLogs = 10_000
	// DefaultTimeout bounds each query when Config.Timeout is zero.
	DefaultTimeout = 30 * time.Second
)

// Reader is what log queries need from storage. Implementations must be
// safe for concurrent use; returned records are owned by the caller.
type Reader interface {
	// FindLogs returns one page of the records matching q, newest first,
	// at most q.Limit of them, with a cursor when more may follow. The
	// Service only ever passes a window (Start, End) and a limit that are
	// set.
	FindLogs(ctx context.Context, q storage.LogQuery) (storage.LogPage, error)
	// LogHistogram counts the records matching q (cursor and limit
	// ignored) in buckets of width step from q.Start to q.End, oldest
	// first, and reports whether the counts are approximate. The Service
	// only ever passes a window that is set and does not end before it
	// starts.
	LogHistogram(ctx context.Context, q storage.LogQuery, step time.Duration) ([]storage.LogBucket, bool, error)
	// TraceLogs returns the records of one trace, oldest first, at most
	// limit of them (the oldest). The Service always passes a limit of at
	// least one.
	TraceLogs(ctx context.Context, id pcommon.TraceID, limit int) ([]storage.LogRecord, error)
}

// Config bounds log queries. Its zero value takes the defaults.
type Config struct {
	// Timeout bounds each query (default DefaultTimeout).
	Timeout time.Duration
	// MaxLookback caps the width of the search window, usually the log
	// retention; zero means no cap. A search by trace id without a start
	// looks back this far (DefaultTraceLookback when zero).
	MaxLookback time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service runs log queries against a Reader. Safe for concurrent use.
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

// FindLogs returns one page of the records matching q, newest first, and
// the cursor of the next page when more may follow; pass it back as
// q.After, with the same filter, to read on. Before the reader sees q, it
// settles what q leaves open:
//
//   - End zero is now;
//   - Start zero is End minus DefaultLookback or, for a search by trace
//     id, minus Config.MaxLookback (DefaultTraceLookback when that is
//     zero);
//   - a window wider than Config.MaxLookback keeps its end and loses its
//     oldest part;
//   - Limit zero or negative is DefaultLimit, and above MaxLimit is
//     MaxLimit.
//
// An open window is settled again for every page, from the clock; give
// Start and End for pages that must cover exactly the same window. A
// window that ends before it starts matches no record and is not sent to
// the reader.
func (s *Service) FindLogs(ctx context.Context, q storage.LogQuery) (storage.LogPage, error) {
	q = s.window(q)
	switch {
	case q.Limit <= 0:
		q.Limit = DefaultLimit
	case q.Limit > MaxLimit:
		q.Limit = MaxLimit
	}
	if q.Start.After(q.End) {
		return storage.LogPage{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	page, err := s.r.FindLogs(ctx, q)
	if err != nil {
		return storage.LogPage{}, fmt.Errorf("find logs: %w", err)
	}
	return page, nil
}

// LogHistogram counts the records matching q over its window (settled as
// by FindLogs) in equal buckets, oldest first. The bucket width is the
// window divided by buckets (DefaultHistogramBuckets when zero or
// negative, at most MaxHistogramBuckets), rounded to whole milliseconds
// and at least one; the buckets run from the window's start past its end,
// so there may be one more than asked, or fewer for a window narrower than
// buckets milliseconds. It returns the buckets, their width, and whether
// the counts are approximate (attribute filters are counted by their Bloom
// test). A window that ends before it starts has no bucket.
func (s *Service) LogHistogram(ctx context.Context, q storage.LogQuery, buckets int) ([]storage.LogBucket, time.Duration, bool, error) {
	q = s.window(q)
	switch {
	case buckets <= 0:
		buckets = DefaultHistogramBuckets
	case buckets > MaxHistogramBuckets:
		buckets = MaxHistogramBuckets
	}
	step := max(q.End.Sub(q.Start)/time.Duration(buckets), time.Millisecond)
	// Whole milliseconds keep bucket edges readable.
	step = step.Round(time.Millisecond)
	if q.Start.After(q.End) {
		return []storage.LogBucket{}, step, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	out, approx, err := s.r.LogHistogram(ctx, q, step)
	if err != nil {
		return nil, 0, false, fmt.Errorf("log histogram: %w", err)
	}
	return out, step, approx, nil
}

// window fills and caps the time window of q, as FindLogs describes.
func (s *Service) window(q storage.LogQuery) storage.LogQuery {
	if q.End.IsZero() {
		q.End = s.cfg.Now()
	}
	if q.Start.IsZero() {
		lookback := DefaultLookback
		if !q.TraceID.IsEmpty() {
			lookback = s.cfg.MaxLookback
			if lookback <= 0 {
				lookback = DefaultTraceLookback
			}
		}
		q.Start = q.End.Add(-lookback)
	}
	if s.cfg.MaxLookback > 0 && q.End.Sub(q.Start) > s.cfg.MaxLookback {
		q.Start = q.End.Add(-s.cfg.MaxLookback)
	}
	return q
}

// TraceLogs returns the records of one trace, oldest first: at most
// MaxTraceLogs of them, the oldest, with the later ones left out (a trace
// that logs more is read by searching with its trace id, which pages).
func (s *Service) TraceLogs(ctx context.Context, id pcommon.TraceID) ([]storage.LogRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	recs, err := s.r.TraceLogs(ctx, id, MaxTraceLogs)
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
