package scrape

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/ingest/pipeline"
	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
)

// TestMain fails the package's tests when a goroutine outlives them
// (Run starts Prometheus's discovery and scrape managers).
func TestMain(m *testing.M) {
	if os.Getenv(dnsChildEnv) != "" {
		// The DNS test's child process: see dns_test.go.
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// testInterval is the scrape interval of the tests' jobs.
const testInterval = 200 * time.Millisecond

// store is a migrated database with a metric store behind Vigil's
// metric pipeline, as cmd/vigil wires them.
type store struct {
	pool    *pgxpool.Pool
	metrics *metricstore.Store
	pipe    *pipeline.MetricPipeline
}

func newStore(t *testing.T) store {
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
	ms := metricstore.New(pool, parts, metricstore.Options{})
	pipe, err := pipeline.NewMetrics(pipeline.DefaultMetricConfig(), pipeline.MetricOptions{Writer: ms})
	if err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = pipe.Run(pctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return store{pool: pool, metrics: ms, pipe: pipe}
}

// point is one stored sample.
type point struct {
	t int64
	v float64
}

// series returns the stored float samples of every series matching the
// matchers (name/value equality pairs), by their labels' string.
func (s store) series(t *testing.T, kv ...string) map[string][]point {
	t.Helper()
	var ms []*labels.Matcher
	for i := 0; i+1 < len(kv); i += 2 {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, kv[i], kv[i+1]))
	}
	now := time.Now()
	q, err := s.metrics.Querier(now.Add(-time.Hour).UnixMilli(), now.Add(time.Minute).UnixMilli())
	if err != nil {
		t.Fatalf("querier: %v", err)
	}
	defer q.Close()
	out := map[string][]point{}
	set := q.Select(context.Background(), true, nil, ms...)
	for set.Next() {
		sr := set.At()
		it := sr.Iterator(nil)
		var pts []point
		for it.Next() != 0 {
			ts, v := it.At()
			pts = append(pts, point{ts, v})
		}
		out[sr.Labels().String()] = pts
	}
	if err := set.Err(); err != nil {
		t.Fatalf("select %v: %v", kv, err)
	}
	return out
}

// last returns the last sample of the one series matching kv, and
// whether there is one.
func (s store) last(t *testing.T, kv ...string) (point, bool) {
	t.Helper()
	all := s.series(t, kv...)
	if len(all) > 1 {
		t.Fatalf("%v matches %d series: %v", kv, len(all), all)
	}
	for _, pts := range all {
		if len(pts) > 0 {
			return pts[len(pts)-1], true
		}
	}
	return point{}, false
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// target is an HTTP server exposing a client_golang registry, counting
// the requests it gets.
type target struct {
	srv      *httptest.Server
	reg      *prometheus.Registry
	requests atomic.Int64
}

func newTarget(t *testing.T, cs ...prometheus.Collector) *target {
	t.Helper()
	tg := &target{reg: prometheus.NewRegistry()}
	tg.reg.MustRegister(cs...)
	h := promhttp.HandlerFor(tg.reg, promhttp.HandlerOpts{})
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

// addr is the target's host:port, its instance label.
func (tg *target) addr() string {
	u, _ := url.Parse(tg.srv.URL)
	return u.Host
}

// started is a Manager running in the background.
type started struct {
	m       *Manager
	leading chan bool
	cancel  context.CancelFunc
	done    chan error
}

// start runs m until the test ends (or stop) and, without an elector,
// returns once it leads.
func start(t *testing.T, m *Manager) *started {
	t.Helper()
	s := &started{m: m, leading: make(chan bool, 8), done: make(chan error, 1)}
	m.onLeader = func(l bool) { s.leading <- l }
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- m.Run(ctx) }()
	if m.opts.Elector == nil {
		if !<-s.leading {
			t.Fatal("manager did not lead")
		}
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop ends Run and waits for it; it may be called more than once.
func (s *started) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	if err := <-s.done; err != nil {
		t.Errorf("run: %v", err)
	}
}

// writeFile writes content to dir/name and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	// Written aside and renamed, so that a watcher never sees half a file.
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// newManager returns a manager over app with the tests' short discovery
// interval.
func newManager(t *testing.T, app promstorage.AppendableV2, cfg Config, opts Options) *Manager {
	t.Helper()
	opts.Appendable = app
	if opts.DiscoveryReloadInterval == 0 {
		opts.DiscoveryReloadInterval = 100 * time.Millisecond
	}
	m, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	return m
}

// activeTargets returns the scrape URLs of the active targets of job.
func activeTargets(m *Manager, job string) []string {
	var out []string
	for _, tg := range m.TargetsActive()[job] {
		out = append(out, tg.URL().String())
	}
	return out
}

func isStale(v float64) bool { return value.IsStaleNaN(v) }

// dnsChildEnv marks the child process of TestDNSDiscovery.
const dnsChildEnv = "VIGIL_SCRAPE_DNS_CHILD"

// discard is an appendable that keeps nothing, for tests that look only
// at targets.
type discard struct{}

func (discard) AppenderV2(context.Context) promstorage.AppenderV2 { return discardAppender{} }

type discardAppender struct{}

func (discardAppender) Append(promstorage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	return 0, nil
}
func (discardAppender) Commit() error   { return nil }
func (discardAppender) Rollback() error { return nil }
