package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/spanstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t *testing.T) (*spanstore.Store, func() int) {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM spans").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return spanstore.New(pool, parts), count
}

func traces(seq, spans int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	ss := rs.ScopeSpans().AppendEmpty()
	now := time.Now()
	for i := 0; i < spans; i++ {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{1, byte(seq >> 8), byte(seq), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
		sp.SetSpanID(pcommon.SpanID{1, byte(i), 0, 0, 0, 0, 0, 1})
		sp.SetName("op")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
		sp.Attributes().PutInt("i", int64(i))
	}
	return td
}

func run(t *testing.T, p *Pipeline) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func TestGroupCommitStoresEverythingAcknowledged(t *testing.T) {
	store, count := newStore(t)
	p, err := New(DefaultConfig(), Options{Writer: store})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, p)
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if err := p.ConsumeTraces(context.Background(), traces(w*100+i, 10)); err != nil {
					t.Errorf("consume: %v", err)
					return
				}
				mu.Lock()
				acked += 10
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if got := count(); got != acked || acked != 1600 {
		t.Fatalf("stored %d spans, acknowledged %d (want 1600)", got, acked)
	}
}

// gate blocks writes until released, so the queue can be filled.
type gate struct {
	SpanWriter
	open chan struct{}
}

func (g gate) WriteTraces(ctx context.Context, b []ptrace.Traces) error {
	<-g.open
	return g.SpanWriter.WriteTraces(ctx, b)
}

func TestQueueFullAndDrainOnShutdown(t *testing.T) {
	store, count := newStore(t)
	g := gate{SpanWriter: store, open: make(chan struct{})}
	cfg := DefaultConfig()
	cfg.MaxQueueSpans = 25
	cfg.Writers = 1
	p, err := New(cfg, Options{Writer: g})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { _ = p.Run(ctx); close(runDone) }()

	results := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func(i int) { results <- p.ConsumeTraces(context.Background(), traces(i, 10)) }(i)
	}
	// Wait until both requests are queued (20 spans), then a third of 10
	// must be refused at once.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.b.mu.Lock()
		q := p.b.queued
		p.b.mu.Unlock()
		if q == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue holds %d spans, want 20", q)
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.ConsumeTraces(context.Background(), traces(3, 10)); !errors.Is(err, ingest.ErrQueueFull) {
		t.Fatalf("third request: got %v, want ErrQueueFull", err)
	}
	// Shut down while writes are blocked: accepted requests are drained,
	// new ones refused.
	cancel()
	time.Sleep(10 * time.Millisecond)
	if err := p.ConsumeTraces(context.Background(), traces(4, 1)); !errors.Is(err, ingest.ErrShuttingDown) {
		t.Fatalf("after shutdown: got %v, want ErrShuttingDown", err)
	}
	close(g.open)
	for i := 0; i < 2; i++ {
		if err := <-results; err != nil {
			t.Fatalf("accepted request failed: %v", err)
		}
	}
	<-runDone
	if got := count(); got != 20 {
		t.Fatalf("stored %d spans, want 20", got)
	}
}

// failing rejects any batch containing a poisoned request.
type failing struct {
	SpanWriter
}

func (f failing) WriteTraces(ctx context.Context, b []ptrace.Traces) error {
	for _, td := range b {
		if td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name() == "poison" {
			return errors.New("bad data")
		}
	}
	return f.SpanWriter.WriteTraces(ctx, b)
}

func TestBadRequestDoesNotFailNeighbours(t *testing.T) {
	store, count := newStore(t)
	g := gate{SpanWriter: failing{store}, open: make(chan struct{})}
	cfg := DefaultConfig()
	cfg.Writers = 1
	// The committed hook sees exactly the spans that were stored, never
	// those of a failed batch.
	var seen, poisonSeen atomic.Int64
	p, err := New(cfg, Options{Writer: g, Committed: func(batch []ptrace.Traces) {
		for _, td := range batch {
			seen.Add(int64(td.SpanCount()))
			if td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name() == "poison" {
				poisonSeen.Add(1)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, p)
	defer stop()
	// The first request holds the single writer at the gate so the next
	// three are batched together.
	results := make(chan error, 4)
	go func() { results <- p.ConsumeTraces(context.Background(), traces(0, 1)) }()
	time.Sleep(50 * time.Millisecond)
	poison := traces(9, 2)
	poison.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetName("poison")
	var wg sync.WaitGroup
	var poisonErr error
	for i, td := range []ptrace.Traces{traces(1, 3), poison, traces(2, 4)} {
		wg.Add(1)
		go func(i int, td ptrace.Traces) {
			defer wg.Done()
			err := p.ConsumeTraces(context.Background(), td)
			if i == 1 {
				poisonErr = err
			} else {
				results <- err
			}
		}(i, td)
	}
	time.Sleep(50 * time.Millisecond)
	close(g.open)
	wg.Wait()
	for i := 0; i < 3; i++ {
		if err := <-results; err != nil {
			t.Fatalf("good request failed: %v", err)
		}
	}
	if poisonErr == nil {
		t.Fatal("poisoned request succeeded")
	}
	if got := count(); got != 8 {
		t.Fatalf("stored %d spans, want 8", got)
	}
	if seen.Load() != 8 || poisonSeen.Load() != 0 {
		t.Fatalf("committed hook saw %d spans (%d poisoned requests), want 8 and 0", seen.Load(), poisonSeen.Load())
	}
}
