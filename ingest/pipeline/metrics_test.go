package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
)

// newMetricStore returns a metric store on a fresh database and a count
// of its raw samples.
func newMetricStore(t *testing.T) (*metricstore.Store, func() int) {
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
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM metric_samples").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return metricstore.New(pool, parts, metricstore.Options{}), count
}

// runMetrics runs p until the test ends.
func runMetrics(t *testing.T, p *MetricPipeline) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// commitSamples appends n samples of series job=job, i=0..n-1 at t and
// commits them.
func commitSamples(ctx context.Context, app promstorage.AppendableV2, job string, n int, t int64) error {
	a := app.AppenderV2(ctx)
	for i := range n {
		ls := labels.FromStrings("__name__", "up", "job", job, "i", fmt.Sprint(i))
		if _, err := a.Append(0, ls, 0, t, float64(i), nil, nil, promstorage.AOptions{}); err != nil {
			return err
		}
	}
	return a.Commit()
}

// countingStore counts the commits of the store it wraps.
type countingStore struct {
	promstorage.AppendableV2
	mu      sync.Mutex
	commits int
}

func (s *countingStore) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return countingAppender{s.AppendableV2.AppenderV2(ctx), s}
}

type countingAppender struct {
	promstorage.AppenderV2
	s *countingStore
}

func (a countingAppender) Commit() error {
	a.s.mu.Lock()
	a.s.commits++
	a.s.mu.Unlock()
	return a.AppenderV2.Commit()
}

func TestMetricGroupCommitStoresEverythingAcknowledged(t *testing.T) {
	store, count := newMetricStore(t)
	counted := &countingStore{AppendableV2: store}
	p, err := NewMetrics(DefaultMetricConfig(), MetricOptions{Writer: counted})
	if err != nil {
		t.Fatal(err)
	}
	runMetrics(t, p)
	now := time.Now().UnixMilli()
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked, requests := 0, 0
	for w := range 8 {
		wg.Go(func() {
			for r := range 10 {
				if err := commitSamples(context.Background(), p, fmt.Sprint("job", w), 100, now-int64(r)*15_000); err != nil {
					t.Errorf("commit: %v", err)
					return
				}
				mu.Lock()
				acked += 100
				requests++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if got := count(); got != acked || acked != 8000 {
		t.Fatalf("stored %d samples, acknowledged %d (want 8000)", got, acked)
	}
	t.Logf("%d requests in %d commits", requests, counted.commits)
	if counted.commits > requests {
		t.Fatalf("%d commits for %d requests", counted.commits, requests)
	}
}

// gatedStore holds every commit until open is closed, and fails those
// holding a sample of job="poison".
type gatedStore struct {
	promstorage.AppendableV2
	open chan struct{}
}

func (s gatedStore) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return &gatedAppender{AppenderV2: s.AppendableV2.AppenderV2(ctx), open: s.open}
}

type gatedAppender struct {
	promstorage.AppenderV2
	open   chan struct{}
	poison bool
}

func (a *gatedAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) (promstorage.SeriesRef, error) {
	a.poison = a.poison || ls.Get("job") == "poison"
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

func (a *gatedAppender) Commit() error {
	<-a.open
	if a.poison {
		_ = a.Rollback()
		return errors.New("bad data")
	}
	return a.AppenderV2.Commit()
}

func TestMetricQueueFullAndDrainOnShutdown(t *testing.T) {
	store, count := newMetricStore(t)
	g := gatedStore{AppendableV2: store, open: make(chan struct{})}
	cfg := DefaultMetricConfig()
	cfg.MaxQueueSamples = 25
	cfg.Writers = 1
	p, err := NewMetrics(cfg, MetricOptions{Writer: g})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { _ = p.Run(ctx); close(runDone) }()

	now := time.Now().UnixMilli()
	results := make(chan error, 2)
	for i := range 2 {
		go func() { results <- commitSamples(context.Background(), p, fmt.Sprint("job", i), 10, now) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.b.mu.Lock()
		q := p.b.queued
		p.b.mu.Unlock()
		if q == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue holds %d samples, want 20", q)
		}
		time.Sleep(time.Millisecond)
	}
	if err := commitSamples(context.Background(), p, "job3", 10, now); !errors.Is(err, ingest.ErrQueueFull) {
		t.Fatalf("third commit: got %v, want ErrQueueFull", err)
	}
	cancel()
	time.Sleep(10 * time.Millisecond)
	if err := commitSamples(context.Background(), p, "job4", 1, now); !errors.Is(err, ingest.ErrShuttingDown) {
		t.Fatalf("after shutdown: got %v, want ErrShuttingDown", err)
	}
	close(g.open)
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("accepted commit failed: %v", err)
		}
	}
	<-runDone
	if got := count(); got != 20 {
		t.Fatalf("stored %d samples, want 20", got)
	}
}

func TestMetricBadRequestDoesNotFailNeighbours(t *testing.T) {
	store, count := newMetricStore(t)
	g := gatedStore{AppendableV2: store, open: make(chan struct{})}
	cfg := DefaultMetricConfig()
	cfg.Writers = 1
	p, err := NewMetrics(cfg, MetricOptions{Writer: g})
	if err != nil {
		t.Fatal(err)
	}
	runMetrics(t, p)
	now := time.Now().UnixMilli()
	// The first commit holds the single writer at the gate so that the
	// next three are batched together.
	first := make(chan error, 1)
	go func() { first <- commitSamples(context.Background(), p, "first", 1, now) }()
	time.Sleep(50 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, job := range []string{"a", "poison", "b"} {
		wg.Go(func() { errs[i] = commitSamples(context.Background(), p, job, 3, now) })
	}
	time.Sleep(50 * time.Millisecond)
	close(g.open)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("first commit: %v", err)
	}
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("good commits failed: %v, %v", errs[0], errs[2])
	}
	if errs[1] == nil {
		t.Fatal("poisoned commit succeeded")
	}
	if got := count(); got != 7 {
		t.Fatalf("stored %d samples, want 7", got)
	}
}

// TestMetricRefusedSamples checks that samples the store refuses fail
// alone: the others of the request and of its batch are stored, and
// Commit names the refused ones by their Append position.
func TestMetricRefusedSamples(t *testing.T) {
	store, count := newMetricStore(t)
	p, err := NewMetrics(DefaultMetricConfig(), MetricOptions{Writer: store})
	if err != nil {
		t.Fatal(err)
	}
	runMetrics(t, p)
	now := time.Now().UnixMilli()
	app := p.AppenderV2(context.Background())
	for i, ts := range []int64{now, math.MinInt64 / 2, now, now} {
		ls := labels.FromStrings("__name__", "up", "i", fmt.Sprint(i))
		if i == 3 {
			ls = labels.New(labels.Label{Name: "__name__", Value: "up"}, labels.Label{Name: "bad", Value: "nul\x00"})
		}
		if _, err := app.Append(0, ls, 0, ts, 1, nil, nil, promstorage.AOptions{}); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	err = app.Commit()
	var refused *ingest.RefusedSamples
	if !errors.As(err, &refused) || !errors.Is(err, ingest.ErrPartlyStored) || !errors.Is(err, promstorage.ErrOutOfBounds) {
		t.Fatalf("Commit = %v, want RefusedSamples wrapping ErrPartlyStored and ErrOutOfBounds", err)
	}
	if len(refused.Samples) != 2 || refused.Samples[0].Index != 1 || refused.Samples[1].Index != 3 {
		t.Fatalf("refused %+v, want the samples appended 2nd and 4th", refused.Samples)
	}
	if got := count(); got != 2 {
		t.Fatalf("stored %d samples, want 2", got)
	}
}

// TestMetricMetadata checks both ways metadata reaches the store: with
// the samples (OTLP) and apart from them (remote_write).
func TestMetricMetadata(t *testing.T) {
	store, _ := newMetricStore(t)
	p, err := NewMetrics(DefaultMetricConfig(), MetricOptions{Writer: store})
	if err != nil {
		t.Fatal(err)
	}
	runMetrics(t, p)
	ctx := context.Background()
	app := p.AppenderV2(ctx)
	// The strings of the options live in a buffer the caller reuses, as
	// Prometheus's scrape loop does: the pipeline keeps its own copies.
	buf := []byte("http_requestscounterRequests.")
	view := func(from, to int) string { return unsafe.String(&buf[from], to-from) }
	opts := promstorage.AOptions{MetricFamilyName: view(0, 13), Metadata: metadata.Metadata{Type: model.MetricType(view(13, 20)), Help: view(20, 29)}}
	for _, code := range []string{"200", "500"} {
		ls := labels.FromStrings("__name__", "http_requests_total", "code", code)
		if _, err := app.Append(0, ls, 0, time.Now().UnixMilli(), 1, nil, nil, opts); err != nil {
			t.Fatal(err)
		}
	}
	for i := range buf {
		buf[i] = 0xff
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := p.UpdateMetadata(ctx, map[string]metadata.Metadata{"up": {Type: model.MetricTypeGauge, Help: "Target up."}}); err != nil {
		t.Fatal(err)
	}
	md, err := store.Metadata(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if md["http_requests"].Help != "Requests." || md["http_requests"].Type != model.MetricTypeCounter || md["up"].Type != model.MetricTypeGauge {
		t.Fatalf("metadata %v", md)
	}
}

// TestOTLPMetricsThroughPipeline translates OTLP metrics into the
// pipeline: committed when acknowledged, and pushed back when the queue
// is full.
func TestOTLPMetricsThroughPipeline(t *testing.T) {
	store, count := newMetricStore(t)
	g := gatedStore{AppendableV2: store, open: make(chan struct{})}
	cfg := DefaultMetricConfig()
	cfg.MaxQueueSamples, cfg.Writers = 1, 1
	p, err := NewMetrics(cfg, MetricOptions{Writer: g})
	if err != nil {
		t.Fatal(err)
	}
	runMetrics(t, p)
	c := NewOTLPMetrics(p, OTLPMetricsConfig{}, nil)
	gauge := func(name string) pmetric.Metrics {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "svc")
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName(name)
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
		dp.SetDoubleValue(1)
		return md
	}
	held := make(chan error, 1)
	go func() { held <- c.ConsumeMetrics(context.Background(), gauge("queue.depth")) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.b.mu.Lock()
		q := p.b.queued
		p.b.mu.Unlock()
		if q > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first request never queued")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ConsumeMetrics(ctx, gauge("other")); !errors.Is(err, ingest.ErrQueueFull) {
		t.Fatalf("second request: %v, want ErrQueueFull", err)
	}
	close(g.open)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if got := count(); got != 1 {
		t.Fatalf("stored %d samples, want 1", got)
	}
}
