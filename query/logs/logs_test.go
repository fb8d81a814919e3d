package logs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/query/logs"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/logstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is the real log store, recording what the query layer asks of
// FindLogs and LogHistogram.
type recorder struct {
	logs.Reader
	mu         sync.Mutex
	asked      []storage.LogQuery
	step       time.Duration
	traceLimit int // the limit of the last TraceLogs
}

func (r *recorder) TraceLogs(ctx context.Context, id pcommon.TraceID, limit int) ([]storage.LogRecord, error) {
	r.mu.Lock()
	r.traceLimit = limit
	r.mu.Unlock()
	return r.Reader.TraceLogs(ctx, id, limit)
}

func (r *recorder) FindLogs(ctx context.Context, q storage.LogQuery) (storage.LogPage, error) {
	r.record(q, 0)
	return r.Reader.FindLogs(ctx, q)
}

func (r *recorder) LogHistogram(ctx context.Context, q storage.LogQuery, step time.Duration) ([]storage.LogBucket, bool, error) {
	r.record(q, step)
	return r.Reader.LogHistogram(ctx, q, step)
}

func (r *recorder) record(q storage.LogQuery, step time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, q)
	r.step = step
}

// last returns the last query the store received, and the histogram step,
// and whether there was one since the previous call.
func (r *recorder) last() (storage.LogQuery, time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.asked) == 0 {
		return storage.LogQuery{}, 0, false
	}
	q := r.asked[len(r.asked)-1]
	r.asked = nil
	return q, r.step, true
}

// bundle is a log store on a fresh database holding the fixture: records
// of "checkout" 10 minutes, 3 hours and 3 days before now (the last of
// trace traceOld), and bulkRecords records of "bulk", one a second, the
// newest a second before now.
type bundle struct {
	store *recorder
	now   time.Time
}

const bulkRecords = 130

var traceOld = pcommon.TraceID{0xb1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

func setup(t *testing.T) bundle {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		t.Fatalf("partitions: %v", err)
	}
	store := logstore.New(pool, parts)
	now := time.Now().Truncate(time.Second)
	ld := plog.NewLogs()
	add := func(service string, at time.Time, body string, trace pcommon.TraceID) {
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", service)
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(at))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(at))
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.Body().SetStr(body)
		lr.SetTraceID(trace)
	}
	add("checkout", now.Add(-10*time.Minute), "recent", pcommon.TraceID{})
	add("checkout", now.Add(-3*time.Hour), "hours", pcommon.TraceID{})
	add("checkout", now.Add(-72*time.Hour), "days", traceOld)
	for i := range bulkRecords {
		add("bulk", now.Add(-time.Duration(i+1)*time.Second), fmt.Sprintf("bulk %03d", i), pcommon.TraceID{})
	}
	if err := store.WriteLogs(ctx, []plog.Logs{ld}); err != nil {
		t.Fatalf("write logs: %v", err)
	}
	return bundle{store: &recorder{Reader: store}, now: now}
}

// service returns a Service over the fixture with cfg and the fixture's
// clock.
func (b bundle) service(cfg logs.Config) *logs.Service {
	cfg.Now = func() time.Time { return b.now }
	return logs.New(b.store, cfg)
}

func bodies(page storage.LogPage) []string {
	var out []string
	for _, r := range page.Records {
		out = append(out, r.Record.Body().Str())
	}
	return out
}

// TestFindLogsWindow: the window a search leaves open is settled by the
// query layer, and the store always receives an explicit one.
func TestFindLogsWindow(t *testing.T) {
	b := setup(t)
	now := b.now
	tests := []struct {
		name       string
		cfg        logs.Config
		q          storage.LogQuery
		wantStart  time.Time
		wantEnd    time.Time
		wantBodies []string
		noStore    bool
	}{
		{
			name:      "open window is DefaultLookback before now",
			q:         storage.LogQuery{Service: "checkout"},
			wantStart: now.Add(-logs.DefaultLookback), wantEnd: now,
			wantBodies: []string{"recent"},
		},
		{
			name:      "open start is DefaultLookback before the end",
			q:         storage.LogQuery{Service: "checkout", End: now.Add(-150 * time.Minute)},
			wantStart: now.Add(-150*time.Minute - logs.DefaultLookback), wantEnd: now.Add(-150 * time.Minute),
			wantBodies: []string{"hours"},
		},
		{
			name:      "explicit window",
			q:         storage.LogQuery{Service: "checkout", Start: now.Add(-4 * 24 * time.Hour), End: now},
			wantStart: now.Add(-4 * 24 * time.Hour), wantEnd: now,
			wantBodies: []string{"recent", "hours", "days"},
		},
		{
			name:      "window cut to MaxLookback keeps its end",
			cfg:       logs.Config{MaxLookback: 24 * time.Hour},
			q:         storage.LogQuery{Service: "checkout", Start: now.Add(-4 * 24 * time.Hour), End: now.Add(-time.Hour)},
			wantStart: now.Add(-25 * time.Hour), wantEnd: now.Add(-time.Hour),
			wantBodies: []string{"hours"},
		},
		{
			name:      "trace id without start looks back DefaultTraceLookback",
			q:         storage.LogQuery{TraceID: traceOld},
			wantStart: now.Add(-logs.DefaultTraceLookback), wantEnd: now,
			wantBodies: []string{"days"},
		},
		{
			name:      "trace id without start looks back MaxLookback",
			cfg:       logs.Config{MaxLookback: 48 * time.Hour},
			q:         storage.LogQuery{TraceID: traceOld},
			wantStart: now.Add(-48 * time.Hour), wantEnd: now,
		},
		{
			name:    "start in the future without end",
			q:       storage.LogQuery{Service: "checkout", Start: now.Add(time.Hour)},
			noStore: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := b.service(tt.cfg).FindLogs(context.Background(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			got, _, asked := b.store.last()
			if tt.noStore {
				if asked || len(page.Records) != 0 || page.Next != nil {
					t.Fatalf("store asked %v (%+v), page %+v; want neither", asked, got, page)
				}
				return
			}
			if !asked {
				t.Fatal("store not asked")
			}
			if !got.Start.Equal(tt.wantStart) || !got.End.Equal(tt.wantEnd) {
				t.Errorf("store window = %s .. %s, want %s .. %s", got.Start, got.End, tt.wantStart, tt.wantEnd)
			}
			if got.Limit != logs.DefaultLimit {
				t.Errorf("store limit = %d, want %d", got.Limit, logs.DefaultLimit)
			}
			if g := bodies(page); fmt.Sprint(g) != fmt.Sprint(tt.wantBodies) {
				t.Errorf("records = %q, want %q", g, tt.wantBodies)
			}
		})
	}
}

// TestFindLogsLimit: the store always receives a limit from 1 to
// MaxLimit, and a full page carries a cursor.
func TestFindLogsLimit(t *testing.T) {
	b := setup(t)
	s := b.service(logs.Config{})
	tests := []struct {
		limit, wantStore, wantRecords int
		wantNext                      bool
	}{
		{limit: 0, wantStore: logs.DefaultLimit, wantRecords: logs.DefaultLimit, wantNext: true},
		{limit: -3, wantStore: logs.DefaultLimit, wantRecords: logs.DefaultLimit, wantNext: true},
		{limit: 7, wantStore: 7, wantRecords: 7, wantNext: true},
		{limit: logs.MaxLimit, wantStore: logs.MaxLimit, wantRecords: bulkRecords},
		{limit: logs.MaxLimit + 1, wantStore: logs.MaxLimit, wantRecords: bulkRecords},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.limit), func(t *testing.T) {
			page, err := s.FindLogs(context.Background(), storage.LogQuery{Service: "bulk", Limit: tt.limit})
			if err != nil {
				t.Fatal(err)
			}
			got, _, _ := b.store.last()
			if got.Limit != tt.wantStore || len(page.Records) != tt.wantRecords || (page.Next != nil) != tt.wantNext {
				t.Errorf("store limit %d, %d records, next %v; want %d, %d, %v",
					got.Limit, len(page.Records), page.Next != nil, tt.wantStore, tt.wantRecords, tt.wantNext)
			}
		})
	}
}

// TestFindLogsCursor pages through every "bulk" record: each once, newest
// first, the cursor handed to the store unchanged, and no cursor after
// the last page.
func TestFindLogsCursor(t *testing.T) {
	for _, window := range []string{"open", "explicit"} {
		t.Run(window, func(t *testing.T) {
			b := setup(t)
			s := b.service(logs.Config{})
			q := storage.LogQuery{Service: "bulk", Limit: 50}
			if window == "explicit" {
				q.Start, q.End = b.now.Add(-time.Hour), b.now
			}
			var got []string
			for page := 0; ; page++ {
				if page > 5 {
					t.Fatal("too many pages")
				}
				res, err := s.FindLogs(context.Background(), q)
				if err != nil {
					t.Fatal(err)
				}
				asked, _, _ := b.store.last()
				if (asked.After == nil) != (q.After == nil) || q.After != nil && *asked.After != *q.After {
					t.Fatalf("page %d: store cursor %v, want %v", page, asked.After, q.After)
				}
				got = append(got, bodies(res)...)
				if res.Next == nil {
					break
				}
				q.After = res.Next
			}
			if len(got) != bulkRecords {
				t.Fatalf("%d records, want %d", len(got), bulkRecords)
			}
			for i, body := range got {
				if want := fmt.Sprintf("bulk %03d", i); body != want {
					t.Fatalf("record %d = %q, want %q", i, body, want)
				}
			}
		})
	}
}

// TestLogHistogram: the histogram's window is settled as a search's, its
// buckets default and are capped, and the store always receives an
// explicit window and step.
func TestLogHistogram(t *testing.T) {
	b := setup(t)
	now := b.now
	tests := []struct {
		name      string
		q         storage.LogQuery
		buckets   int
		wantStep  time.Duration
		wantStart time.Time
		wantCount int64
		noStore   bool
	}{
		{name: "defaults", q: storage.LogQuery{Service: "bulk"}, wantStep: logs.DefaultLookback / logs.DefaultHistogramBuckets, wantStart: now.Add(-logs.DefaultLookback), wantCount: bulkRecords},
		{name: "buckets", q: storage.LogQuery{Service: "checkout", Start: now.Add(-4 * time.Hour), End: now}, buckets: 4, wantStep: time.Hour, wantStart: now.Add(-4 * time.Hour), wantCount: 2},
		{name: "buckets capped", q: storage.LogQuery{Service: "bulk"}, buckets: logs.MaxHistogramBuckets * 10, wantStep: logs.DefaultLookback / logs.MaxHistogramBuckets, wantStart: now.Add(-logs.DefaultLookback), wantCount: bulkRecords},
		{name: "at least a millisecond", q: storage.LogQuery{Service: "bulk", Start: now.Add(-10 * time.Millisecond), End: now}, buckets: 100, wantStep: time.Millisecond, wantStart: now.Add(-10 * time.Millisecond)},
		{name: "start after end", q: storage.LogQuery{Service: "bulk", Start: now.Add(time.Hour)}, noStore: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs, step, approx, err := b.service(logs.Config{}).LogHistogram(context.Background(), tt.q, tt.buckets)
			if err != nil {
				t.Fatal(err)
			}
			asked, storeStep, ok := b.store.last()
			if tt.noStore {
				if ok || len(bs) != 0 {
					t.Fatalf("store asked %v, %d buckets; want neither", ok, len(bs))
				}
				return
			}
			if !ok || step != tt.wantStep || storeStep != tt.wantStep || !asked.Start.Equal(tt.wantStart) || asked.End.IsZero() {
				t.Fatalf("step %s, store asked %v with %s .. %s step %s; want step %s from %s", step, ok, asked.Start, asked.End, storeStep, tt.wantStep, tt.wantStart)
			}
			if len(bs) == 0 {
				t.Fatal("no buckets")
			}
			var total int64
			for _, bk := range bs {
				total += bk.Count
			}
			if total != tt.wantCount || approx || !bs[0].Start.Equal(tt.wantStart) {
				t.Errorf("%d buckets from %v, %d records (approximate %v); want %d from %s", len(bs), bs[0].Start, total, approx, tt.wantCount, tt.wantStart)
			}
		})
	}
}

func TestTraceLogs(t *testing.T) {
	b := setup(t)
	recs, err := b.service(logs.Config{}).TraceLogs(context.Background(), traceOld)
	if err != nil || len(recs) != 1 || recs[0].Record.Body().Str() != "days" || recs[0].Service != "checkout" {
		t.Fatalf("trace logs = %+v, %v", recs, err)
	}
	b.store.mu.Lock()
	defer b.store.mu.Unlock()
	if b.store.traceLimit != logs.MaxTraceLogs {
		t.Errorf("the store was asked for %d records, want logs.MaxTraceLogs", b.store.traceLimit)
	}
}

// TestTimeout: every query runs under Config.Timeout.
func TestTimeout(t *testing.T) {
	b := setup(t)
	s := b.service(logs.Config{Timeout: time.Nanosecond})
	ctx := context.Background()
	checks := map[string]func() error{
		"find":       func() error { _, err := s.FindLogs(ctx, storage.LogQuery{Service: "bulk"}); return err },
		"histogram":  func() error { _, _, _, err := s.LogHistogram(ctx, storage.LogQuery{Service: "bulk"}, 0); return err },
		"trace logs": func() error { _, err := s.TraceLogs(ctx, traceOld); return err },
	}
	for name, f := range checks {
		t.Run(name, func(t *testing.T) {
			if err := f(); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", err)
			}
		})
	}
}
