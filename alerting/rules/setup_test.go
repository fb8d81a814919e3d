package rules

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	prom "github.com/prometheus/prometheus/promql"
	promrules "github.com/prometheus/prometheus/rules"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
)

// t0 is the start of every test's series; evaluations happen at t0 plus
// whole minutes.
var t0 = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)

// minute returns t0 + n minutes.
func minute(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }

// store is a migrated database with a metric store and Vigil's engine
// over it.
type store struct {
	pool    *pgxpool.Pool
	metrics *metricstore.Store
	engine  *promql.Engine
}

func newStore(t *testing.T) store {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour})
	ms := metricstore.New(pool, parts, metricstore.Options{})
	return store{pool: pool, metrics: ms, engine: newEngine(t, ms)}
}

func newEngine(t *testing.T, q promstorage.Queryable) *promql.Engine {
	t.Helper()
	eng, err := promql.New(q, promql.Config{}, nil, nil)
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	return eng
}

// sample is one float sample of a series given as name/value pairs.
type sample struct {
	ls labels.Labels
	t  time.Time
	v  float64
}

// load appends samples through the store's AppendableV2 and commits them.
func (s store) load(t *testing.T, samples []sample) {
	t.Helper()
	app := s.metrics.AppenderV2(context.Background())
	for _, smp := range samples {
		if _, err := app.Append(0, smp.ls, 0, smp.t.UnixMilli(), smp.v, nil, nil, promstorage.AOptions{}); err != nil {
			t.Fatalf("append %s: %v", smp.ls, err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// query evaluates qs at ts through the engine.
func (s store) query(t *testing.T, qs string, ts time.Time) prom.Vector {
	t.Helper()
	q, err := s.engine.InstantQuery(context.Background(), qs, ts, promql.QueryOptions{})
	if err != nil {
		t.Fatalf("query %s: %v", qs, err)
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("query %s: %v", qs, res.Err)
	}
	v, ok := res.Value.(prom.Vector)
	if !ok {
		t.Fatalf("query %s: %s, not a vector", qs, res.Value.Type())
	}
	return v
}

// testConfig evaluates only what a test drives: the groups' own loop
// waits a day for its first tick, and the file watcher a day for its
// first check.
func testConfig(files ...string) Config {
	off := false
	return Config{
		RuleFiles:          files,
		DefaultRules:       &off,
		EvaluationInterval: model.Duration(24 * time.Hour),
		WatchInterval:      model.Duration(24 * time.Hour),
		ExternalURL:        "https://vigil.example.com",
	}
}

// running is a Manager leading in the background, its evaluation driven
// by hand.
type running struct {
	m      *Manager
	sent   *sentAlerts
	cancel context.CancelFunc
	done   chan error
	fresh  map[*promrules.Group]int // evaluations of the groups present at the start
}

type sentAlerts struct {
	mu     sync.Mutex
	alerts []*notifier.Alert
}

func (s *sentAlerts) notify(_ context.Context, alerts []*notifier.Alert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alerts = append(s.alerts, alerts...)
}

func (s *sentAlerts) take() []*notifier.Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.alerts
	s.alerts = nil
	return out
}

// newManager returns a manager over st that evaluates nothing by itself.
func newManager(t *testing.T, st store, cfg Config, opts Options) *Manager {
	t.Helper()
	opts.Engine = st.engine
	opts.Appendable = st.metrics
	m, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	m.iterate = func(context.Context, *promrules.Group, time.Time) {}
	return m
}

// start runs m (without an elector) until the test ends and returns once
// it leads.
func start(t *testing.T, m *Manager) *running {
	t.Helper()
	sent := &sentAlerts{}
	m.opts.Notify = sent.notify
	leading := make(chan bool, 2)
	m.onLeader = func(l bool) { leading <- l }
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{m: m, sent: sent, cancel: cancel, done: make(chan error, 1), fresh: map[*promrules.Group]int{}}
	go func() { r.done <- m.Run(ctx) }()
	if !<-leading {
		t.Fatal("manager did not lead")
	}
	m.mu.RLock()
	for _, g := range m.prom.RuleGroups() {
		r.fresh[g] = 0
	}
	m.mu.RUnlock()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends Run and waits for it.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		t.Errorf("run: %v", err)
	}
}

// evalAt evaluates every group at ts as one tick of Prometheus's group
// loop does, restoring `for` state after the second evaluation of the
// groups a fresh manager started with, as the loop does.
func (r *running) evalAt(t *testing.T, ts time.Time) {
	t.Helper()
	r.m.mu.RLock()
	pm := r.m.prom
	r.m.mu.RUnlock()
	if pm == nil {
		t.Fatal("evaluating while not leading")
	}
	for _, g := range pm.RuleGroups() {
		promrules.DefaultEvalIterationFunc(context.Background(), g, ts)
		if n, ok := r.fresh[g]; ok {
			r.fresh[g] = n + 1
			if n+1 == 2 {
				g.RestoreForState(ts)
			}
		}
	}
}

// alertsByName returns the active alerts of one alert name.
func alertsByName(t *testing.T, m *Manager, name string) []Alert {
	t.Helper()
	all, err := m.ActiveAlerts(context.Background())
	if err != nil {
		t.Fatalf("active alerts: %v", err)
	}
	var out []Alert
	for _, a := range all {
		if a.Labels.Get(labels.AlertName) == name {
			out = append(out, a)
		}
	}
	return out
}

func series(kv ...string) labels.Labels { return labels.FromStrings(kv...) }
