package consulapi_test

import (
	"context"
	"math"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/registry"
	"github.com/vigil-obs/vigil/registry/consulapi"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/leader"
	"github.com/vigil-obs/vigil/storage/postgres/registrystore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of the test clients' transports.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// testConfig has intervals short enough for tests.
func testConfig() registry.Config {
	cfg := registry.DefaultConfig()
	cfg.MinCheckInterval = 10 * time.Millisecond
	cfg.SweepInterval = 50 * time.Millisecond
	cfg.PollInterval = 100 * time.Millisecond
	return cfg
}

// replica is one running Registry with its API on loopback.
type replica struct {
	reg     *registry.Registry
	elector *leader.Elector
	srv     *httptest.Server
	client  *api.Client
	app     *captureApp
	stop    func()
}

// database returns a migrated database's URL.
func database(t *testing.T) string {
	t.Helper()
	pool, url := pgtest.NewPool(t)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return url
}

// startReplica runs a Registry over its own pool on the database at url,
// elected with a real leader.Elector, until the test ends or stop.
func startReplica(t *testing.T, url string, opts consulapi.Options) *replica {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	app := &captureApp{}
	el := leader.New(pool, registry.LeaderKey, leader.Options{Interval: 50 * time.Millisecond})
	reg, err := registry.New(testConfig(), registry.Options{Store: registrystore.New(pool), Elector: el, Appendable: app})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(consulapi.New(reg, opts))
	client, err := api.NewClient(&api.Config{Address: srv.Listener.Addr().String(), Scheme: "http"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = reg.Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			srv.CloseClientConnections()
			srv.Close()
			pool.Close()
		})
	}
	t.Cleanup(stop)
	return &replica{reg: reg, elector: el, srv: srv, client: client, app: app, stop: stop}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// captureApp is an AppendableV2 that keeps every committed sample.
type captureApp struct {
	mu      sync.Mutex
	samples []capturedSample
}

type capturedSample struct {
	ls labels.Labels
	t  int64
	v  float64
}

func (c *captureApp) AppenderV2(context.Context) promstorage.AppenderV2 {
	return &captureAppender{app: c}
}

// last returns the newest value of the series with ls, and whether any.
func (c *captureApp) last(ls labels.Labels) (float64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.samples) - 1; i >= 0; i-- {
		if labels.Equal(c.samples[i].ls, ls) {
			return c.samples[i].v, true
		}
	}
	return 0, false
}

func isStale(v float64) bool { return value.IsStaleNaN(v) && math.IsNaN(v) }

type captureAppender struct {
	app     *captureApp
	pending []capturedSample
}

func (a *captureAppender) Append(_ promstorage.SeriesRef, ls labels.Labels, _, t int64, v float64, _ *histogram.Histogram,
	_ *histogram.FloatHistogram, _ promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	a.pending = append(a.pending, capturedSample{ls, t, v})
	return 1, nil
}

func (a *captureAppender) Commit() error {
	a.app.mu.Lock()
	defer a.app.mu.Unlock()
	a.app.samples = append(a.app.samples, a.pending...)
	a.pending = nil
	return nil
}

func (a *captureAppender) Rollback() error { a.pending = nil; return nil }
