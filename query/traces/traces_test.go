package traces_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/query/traces"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/spanstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is the real span store, recording what the query layer asks of
// FindTraces.
type recorder struct {
	traces.Reader
	mu      sync.Mutex
	queries []storage.TraceQuery
}

func (r *recorder) FindTraces(ctx context.Context, q storage.TraceQuery) (storage.FoundTraces, error) {
	r.mu.Lock()
	r.queries = append(r.queries, q)
	r.mu.Unlock()
	return r.Reader.FindTraces(ctx, q)
}

// last returns the last query FindTraces received and whether there was
// one since the previous call.
func (r *recorder) last() (storage.TraceQuery, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queries) == 0 {
		return storage.TraceQuery{}, false
	}
	q := r.queries[len(r.queries)-1]
	r.queries = nil
	return q, true
}

// bundle is a span store on a fresh database holding the fixture: traces
// of "checkout" 10 minutes, 3 hours and 50 hours before now, and 25 traces
// of "bulk" in the last half hour.
type bundle struct {
	store *recorder
	now   time.Time
}

// Fixture trace ids of "checkout", by age.
var (
	idRecent = traceID(1) // 10 minutes old
	idHours  = traceID(2) // 3 hours old
	idDays   = traceID(3) // 50 hours old: beyond DefaultLookback
)

const bulkTraces = 25

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
	store := spanstore.New(pool, parts)
	now := time.Now().Truncate(time.Second)
	batch := []ptrace.Traces{
		oneSpan("checkout", idRecent, now.Add(-10*time.Minute)),
		oneSpan("checkout", idHours, now.Add(-3*time.Hour)),
		oneSpan("checkout", idDays, now.Add(-50*time.Hour)),
	}
	for i := range bulkTraces {
		batch = append(batch, oneSpan("bulk", traceID(byte(100+i)), now.Add(-time.Duration(i+1)*time.Minute)))
	}
	if err := store.WriteTraces(ctx, batch); err != nil {
		t.Fatalf("write traces: %v", err)
	}
	return bundle{store: &recorder{Reader: store}, now: now}
}

// service returns a Service over the fixture with cfg and the fixture's
// clock.
func (b bundle) service(cfg traces.Config) *traces.Service {
	cfg.Now = func() time.Time { return b.now }
	return traces.New(b.store, cfg)
}

func traceID(b byte) pcommon.TraceID {
	return pcommon.TraceID{0xa1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, b}
}

func oneSpan(service string, id pcommon.TraceID, start time.Time) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(id)
	sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, id[15]})
	sp.SetName("GET /orders")
	sp.SetKind(ptrace.SpanKindServer)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(5 * time.Millisecond)))
	return td
}

// ids returns the trace ids of found, sorted.
func ids(found []ptrace.Traces) []pcommon.TraceID {
	var out []pcommon.TraceID
	for _, td := range found {
		out = append(out, td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID())
	}
	slices.SortFunc(out, func(a, b pcommon.TraceID) int { return slices.Compare(a[:], b[:]) })
	return out
}

func checkout(f func(q *traces.Query)) traces.Query {
	q := traces.Query{TraceQuery: storage.TraceQuery{Service: "checkout"}}
	if f != nil {
		f(&q)
	}
	return q
}

// TestFindTracesWindow: the window a search leaves open is settled by the
// query layer, and the store always receives an explicit one.
func TestFindTracesWindow(t *testing.T) {
	b := setup(t)
	now := b.now
	tests := []struct {
		name        string
		cfg         traces.Config
		q           traces.Query
		wantMin     time.Time // zero: the store must not be asked
		wantMax     time.Time
		wantTraces  []pcommon.TraceID
		wantNoStore bool
	}{
		{
			name: "open window is DefaultLookback before now",
			q:    checkout(nil), wantMin: now.Add(-traces.DefaultLookback), wantMax: now,
			wantTraces: []pcommon.TraceID{idRecent, idHours},
		},
		{
			name: "lookback before now",
			q:    checkout(func(q *traces.Query) { q.Lookback = time.Hour }), wantMin: now.Add(-time.Hour), wantMax: now,
			wantTraces: []pcommon.TraceID{idRecent},
		},
		{
			name: "lookback before the end",
			q: checkout(func(q *traces.Query) {
				q.StartMax = now.Add(-2 * time.Hour)
				q.Lookback = 2 * time.Hour
			}),
			wantMin: now.Add(-4 * time.Hour), wantMax: now.Add(-2 * time.Hour),
			wantTraces: []pcommon.TraceID{idHours},
		},
		{
			name: "default lookback before the end",
			q:    checkout(func(q *traces.Query) { q.StartMax = now.Add(-150 * time.Minute) }), wantMin: now.Add(-150*time.Minute - traces.DefaultLookback), wantMax: now.Add(-150 * time.Minute),
			wantTraces: []pcommon.TraceID{idHours, idDays},
		},
		{
			name: "start wins over lookback",
			q: checkout(func(q *traces.Query) {
				q.StartMin = now.Add(-60 * time.Hour)
				q.Lookback = time.Hour
			}),
			wantMin: now.Add(-60 * time.Hour), wantMax: now,
			wantTraces: []pcommon.TraceID{idRecent, idHours, idDays},
		},
		{
			name: "start cut to MaxLookback",
			cfg:  traces.Config{MaxLookback: 24 * time.Hour},
			q:    checkout(func(q *traces.Query) { q.StartMin = now.Add(-60 * time.Hour) }), wantMin: now.Add(-24 * time.Hour), wantMax: now,
			wantTraces: []pcommon.TraceID{idRecent, idHours},
		},
		{
			name: "MaxLookback cuts the default window too",
			cfg:  traces.Config{MaxLookback: time.Hour},
			q:    checkout(nil), wantMin: now.Add(-time.Hour), wantMax: now,
			wantTraces: []pcommon.TraceID{idRecent},
		},
		{
			name:        "end older than MaxLookback",
			cfg:         traces.Config{MaxLookback: 24 * time.Hour},
			q:           checkout(func(q *traces.Query) { q.StartMax = now.Add(-30 * time.Hour) }),
			wantNoStore: true,
		},
		{
			name:        "start in the future without end",
			q:           checkout(func(q *traces.Query) { q.StartMin = now.Add(time.Hour) }),
			wantNoStore: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := b.service(tt.cfg).FindTraces(context.Background(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			found := res.Traces
			got, asked := b.store.last()
			if tt.wantNoStore {
				if asked || len(found) != 0 {
					t.Fatalf("store asked %v (%+v), %d traces; want neither", asked, got, len(found))
				}
				return
			}
			if !asked {
				t.Fatal("store not asked")
			}
			if !got.StartMin.Equal(tt.wantMin) || !got.StartMax.Equal(tt.wantMax) {
				t.Errorf("store window = %s .. %s, want %s .. %s", got.StartMin, got.StartMax, tt.wantMin, tt.wantMax)
			}
			if got.Limit != traces.DefaultLimit {
				t.Errorf("store limit = %d, want %d", got.Limit, traces.DefaultLimit)
			}
			if g := ids(found); !slices.Equal(g, tt.wantTraces) {
				t.Errorf("traces = %v, want %v", g, tt.wantTraces)
			}
		})
	}
}

// TestFindTracesLimit: the store always receives a limit from 1 to
// MaxLimit.
func TestFindTracesLimit(t *testing.T) {
	b := setup(t)
	s := b.service(traces.Config{})
	tests := []struct {
		limit, wantStore, wantTraces int
	}{
		{limit: 0, wantStore: traces.DefaultLimit, wantTraces: traces.DefaultLimit},
		{limit: -5, wantStore: traces.DefaultLimit, wantTraces: traces.DefaultLimit},
		{limit: 7, wantStore: 7, wantTraces: 7},
		{limit: traces.MaxLimit, wantStore: traces.MaxLimit, wantTraces: bulkTraces},
		{limit: traces.MaxLimit + 1, wantStore: traces.MaxLimit, wantTraces: bulkTraces},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.limit), func(t *testing.T) {
			q := traces.Query{TraceQuery: storage.TraceQuery{Service: "bulk", Limit: tt.limit}}
			res, err := s.FindTraces(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			found := res.Traces
			got, _ := b.store.last()
			if got.Limit != tt.wantStore || len(found) != tt.wantTraces {
				t.Errorf("store limit %d, %d traces; want %d, %d", got.Limit, len(found), tt.wantStore, tt.wantTraces)
			}
		})
	}
}

// overfull is a reader that returns more traces than asked.
type overfull struct{ traces.Reader }

func (overfull) FindTraces(_ context.Context, q storage.TraceQuery) (storage.FoundTraces, error) {
	out := make([]ptrace.Traces, q.Limit+3)
	for i := range out {
		out[i] = ptrace.NewTraces()
	}
	return storage.FoundTraces{Traces: out}, nil
}

func TestFindTracesNeverPastLimit(t *testing.T) {
	s := traces.New(overfull{}, traces.Config{})
	found, err := s.FindTraces(context.Background(), traces.Query{TraceQuery: storage.TraceQuery{Service: "x", Limit: 2}})
	if err != nil || len(found.Traces) != 2 {
		t.Fatalf("%d traces, %v; want 2", len(found.Traces), err)
	}
}

func TestTraceAndLists(t *testing.T) {
	b := setup(t)
	s := b.service(traces.Config{})
	ctx := context.Background()

	td, err := s.Trace(ctx, idDays)
	if err != nil || td.SpanCount() != 1 {
		t.Fatalf("trace: %d spans, %v", td.SpanCount(), err)
	}
	if _, err := s.Trace(ctx, traceID(99)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown trace: %v, want storage.ErrNotFound", err)
	}
	svcs, err := s.Services(ctx)
	if slices.Sort(svcs); err != nil || !slices.Equal(svcs, []string{"bulk", "checkout"}) {
		t.Errorf("services = %v, %v", svcs, err)
	}
	ops, err := s.Operations(ctx, storage.OperationQuery{Service: "checkout"})
	if err != nil || len(ops) != 1 || ops[0] != (storage.Operation{Name: "GET /orders", SpanKind: "server"}) {
		t.Errorf("operations = %+v, %v", ops, err)
	}
	if _, err := s.Operations(ctx, storage.OperationQuery{}); err == nil {
		t.Error("operations without a service: no error")
	}
}

// TestTimeout: every query runs under Config.Timeout.
func TestTimeout(t *testing.T) {
	b := setup(t)
	s := b.service(traces.Config{Timeout: time.Nanosecond})
	ctx := context.Background()
	checks := map[string]func() error{
		"services":    func() error { _, err := s.Services(ctx); return err },
		"operations":  func() error { _, err := s.Operations(ctx, storage.OperationQuery{Service: "checkout"}); return err },
		"trace":       func() error { _, err := s.Trace(ctx, idRecent); return err },
		"find traces": func() error { _, err := s.FindTraces(ctx, checkout(nil)); return err },
	}
	for name, f := range checks {
		t.Run(name, func(t *testing.T) {
			if err := f(); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", err)
			}
		})
	}
}
