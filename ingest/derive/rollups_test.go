package derive_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/ingest/derive"
	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/mapstore"
)

// flaky is a RollupStore that fails while fail is above zero.
type flaky struct {
	mu    sync.Mutex
	store derive.RollupStore
	fail  int
}

func (f *flaky) WriteMapRollups(ctx context.Context, minute time.Time, rows []storage.MapRollup) error {
	f.mu.Lock()
	if f.fail > 0 {
		f.fail--
		f.mu.Unlock()
		return errors.New("database down")
	}
	f.mu.Unlock()
	return f.store.WriteMapRollups(ctx, minute, rows)
}

// rollupBundle is a Deriver writing its rollups to a real store, with a
// clock two hours back at a whole hour (m(i) is its i-th minute).
type rollupBundle struct {
	bundle
	store *mapstore.Store
	pool  *pgxpool.Pool
	flaky *flaky
	reg   *prometheus.Registry
	m0    time.Time
}

func (r rollupBundle) m(i int) time.Time { return r.m0.Add(time.Duration(i) * time.Minute) }

// at sets the clock to minute i plus sec seconds.
func (r rollupBundle) at(i, sec int) {
	r.clock.mu.Lock()
	r.clock.t = r.m(i).Add(time.Duration(sec) * time.Second)
	r.clock.mu.Unlock()
}

func setupRollups(t *testing.T, edit func(*derive.Config)) rollupBundle {
	t.Helper()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 24 * time.Hour})
	store := mapstore.NewWithPartitions(pool, parts)
	m0 := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	cfg := derive.DefaultConfig()
	cfg.Replica = "r1"
	if edit != nil {
		edit(&cfg)
	}
	r := rollupBundle{bundle: bundle{app: &capture{}, clock: &clock{t: m0}}, store: store, pool: pool, flaky: &flaky{store: store}, m0: m0,
		reg: prometheus.NewRegistry()}
	d, err := derive.New(cfg, derive.Options{Appendable: r.app, Rollups: r.flaky, Registerer: r.reg, Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	r.d = d
	return r
}

// totals reads the totals of [m(from), m(to)) by "client>server/conn" or
// "node:server".
func (r rollupBundle) totals(t *testing.T, from, to int, env string) map[string]storage.MapCounts {
	t.Helper()
	got, err := r.store.MapTotals(context.Background(), storage.MapWindowQuery{Start: r.m(from), End: r.m(to), Env: env,
		KeyLookback: 12 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]storage.MapCounts{}
	for _, g := range got {
		name := g.Client + ">" + g.Server + "/" + g.ConnectionType
		if g.Node {
			name = "node:" + g.Server
		}
		out[name] = g.Counts
	}
	return out
}

// dbCall is a call from api to the database orders lasting 3 ms (bucket
// 3 of MapLatencyBounds).
func dbCall(trace byte, failed bool) span {
	return span{service: "api", kind: ptrace.SpanKindClient, trace: trace, id: 1, err: failed, dur: 3 * time.Millisecond,
		attrs: map[string]string{"db.system": "postgresql", "db.name": "orders"}}
}

// rootCall is a call from outside to api in prod lasting 20 ms (bucket
// 5).
func rootCall(trace byte, failed bool) span {
	return span{service: "api", res: map[string]string{"deployment.environment.name": "prod"}, name: "GET /",
		kind: ptrace.SpanKindServer, trace: trace, id: 2, err: failed, dur: 20 * time.Millisecond}
}

// checkCounts compares calls, failed and the histograms' counts of one
// total with n calls (f failed) all in bucket b of the server latencies
// (and of the client ones for an edge).
func checkCounts(t *testing.T, what string, got storage.MapCounts, n, f uint64, b int, dur time.Duration, node bool) {
	t.Helper()
	if got.Calls != n || got.Failed != f {
		t.Errorf("%s: calls %d failed %d, want %d, %d", what, got.Calls, got.Failed, n, f)
	}
	hists := [][]uint64{got.ServerHist, got.ClientHist}
	sums := []float64{got.ServerSum, got.ClientSum}
	if node {
		if len(got.ClientHist) != 0 || got.ClientSum != 0 {
			t.Errorf("%s: a node with client latencies %v %v", what, got.ClientHist, got.ClientSum)
		}
		hists, sums = hists[:1], sums[:1]
	}
	for i, h := range hists {
		if len(h) != len(storage.MapLatencyBounds)+1 || h[b] != n {
			t.Errorf("%s: histogram %d = %v, want %d in bucket %d", what, i, h, n, b)
		}
		if !approx(sums[i], float64(n)*dur.Seconds()) {
			t.Errorf("%s: sum %d = %v, want %v", what, i, sums[i], float64(n)*dur.Seconds())
		}
	}
}

// TestMapRollups sends calls in several minutes, flushing at injected
// times, and reads exactly the calls of each window back.
func TestMapRollups(t *testing.T) {
	r := setupRollups(t, nil)
	const db, user, node = "api>orders/database", "user>api/virtual_node", "node:api"
	r.at(0, 10)
	r.commit(dbCall(1, false), dbCall(2, true), dbCall(3, false), rootCall(4, false), rootCall(5, true))
	r.flush(t)
	r.at(1, 10)
	r.commit(dbCall(6, false), dbCall(7, false), dbCall(8, false), dbCall(9, false))
	r.flush(t)
	r.at(1, 40) // a second flush in the minute replaces the first's rows
	r.commit(dbCall(10, false), rootCall(11, false))
	r.flush(t)
	r.at(2, 10)
	r.flush(t)
	r.at(3, 20)
	r.commit(dbCall(12, true), dbCall(13, false))
	r.flush(t)

	type want struct{ n, f uint64 }
	for _, tc := range []struct {
		from, to int
		env      string
		want     map[string]want
	}{
		{0, 4, "", map[string]want{db: {10, 2}, user: {3, 1}, node: {3, 1}}},
		{0, 1, "", map[string]want{db: {3, 1}, user: {2, 1}, node: {2, 1}}},
		{1, 2, "", map[string]want{db: {5, 0}, user: {1, 0}, node: {1, 0}}},
		{0, 2, "", map[string]want{db: {8, 1}, user: {3, 1}, node: {3, 1}}},
		{2, 3, "", map[string]want{}},
		{2, 4, "", map[string]want{db: {2, 1}}},
		{3, 60, "", map[string]want{db: {2, 1}}},
		{-60, 0, "", map[string]want{}},
		{0, 4, "prod", map[string]want{user: {3, 1}, node: {3, 1}}},
	} {
		got := r.totals(t, tc.from, tc.to, tc.env)
		if len(got) != len(tc.want) {
			t.Errorf("[m%d, m%d) env %q: totals %v, want %v", tc.from, tc.to, tc.env, got, tc.want)
			continue
		}
		for name, w := range tc.want {
			c, ok := got[name]
			if !ok {
				t.Errorf("[m%d, m%d): no %s in %v", tc.from, tc.to, name, got)
				continue
			}
			b, dur := 3, 3*time.Millisecond
			if name != db {
				b, dur = 5, 20*time.Millisecond
			}
			checkCounts(t, name, c, w.n, w.f, b, dur, name == node)
		}
	}
}

// TestMapRollupsIdle gives a key forgotten after SeriesIdleTimeout and
// seen again a new incarnation.
func TestMapRollupsIdle(t *testing.T) {
	r := setupRollups(t, func(c *derive.Config) { c.SeriesIdleTimeout = time.Minute })
	r.at(0, 10)
	r.commit(dbCall(1, false), rootCall(2, false))
	r.flush(t)
	for i := 1; i <= 3; i++ { // idle: forgotten
		r.at(i, 10)
		r.flush(t)
	}
	r.commit(dbCall(3, false), dbCall(4, false), rootCall(5, false))
	r.flush(t)

	got := r.totals(t, 0, 4, "")
	if got["api>orders/database"].Calls != 3 || got["user>api/virtual_node"].Calls != 2 || got["node:api"].Calls != 2 {
		t.Errorf("totals over both incarnations: %v", got)
	}
	if got := r.totals(t, 3, 4, ""); got["api>orders/database"].Calls != 2 || got["node:api"].Calls != 1 {
		t.Errorf("totals of the second incarnation: %v", got)
	}
	if got := r.totals(t, 1, 3, ""); len(got) != 0 {
		t.Errorf("totals while idle: %v", got)
	}
	assertIncarnations(t, r, 2)
}

// assertIncarnations checks that every key of r has n incarnations, all
// distinct.
func assertIncarnations(t *testing.T, r rollupBundle, n int) {
	t.Helper()
	got, err := r.store.MapTotals(context.Background(), storage.MapWindowQuery{Start: r.m(-60), End: r.m(60)})
	if err != nil || len(got) == 0 {
		t.Fatalf("totals: %v, %v", got, err)
	}
	incs := map[string][]int64{}
	rows, err := r.pool.Query(context.Background(), `SELECT replica, node, client, server, incarnation FROM servicemap_keys`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var (
			replica, client, server string
			node                    bool
			inc                     int64
		)
		if err := rows.Scan(&replica, &node, &client, &server, &inc); err != nil {
			t.Fatal(err)
		}
		if replica != "r1" {
			t.Errorf("replica %q", replica)
		}
		key := client + ">" + server
		if node {
			key = "node:" + server
		}
		incs[key] = append(incs[key], inc)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(incs) != 3 {
		t.Errorf("keys %v, want 3", incs)
	}
	seen := map[int64]bool{}
	for key, list := range incs {
		if len(list) != n {
			t.Errorf("key %s: incarnations %v, want %d", key, list, n)
		}
		for _, i := range list {
			if seen[i] {
				t.Errorf("incarnation %d given twice", i)
			}
			seen[i] = true
		}
	}
}

// TestMapRollupsRetried keeps the rollups of failed writes, of a key
// forgotten meanwhile too, and writes them with the next flush that
// succeeds.
func TestMapRollupsRetried(t *testing.T) {
	r := setupRollups(t, func(c *derive.Config) { c.SeriesIdleTimeout = time.Minute })
	r.flaky.fail = 3
	r.at(0, 10)
	r.commit(dbCall(1, false), rootCall(2, true))
	if err := r.d.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), "write map rollups") {
		t.Fatalf("flush with the store down: %v", err)
	}
	r.at(1, 10)
	r.commit(dbCall(3, true))
	_ = r.d.Flush(context.Background())
	r.at(2, 10) // the node is forgotten, its rollup kept
	_ = r.d.Flush(context.Background())
	r.at(3, 10)
	r.flush(t)
	got := r.totals(t, 0, 4, "")
	if got["api>orders/database"].Calls != 2 || got["api>orders/database"].Failed != 1 || got["node:api"].Calls != 1 || got["node:api"].Failed != 1 {
		t.Errorf("totals after the retried write: %v", got)
	}
	// Counted in the minute of the write that succeeded.
	if got := r.totals(t, 3, 4, ""); got["api>orders/database"].Calls != 2 {
		t.Errorf("totals of the minute written: %v", got)
	}
	if got := r.totals(t, 0, 3, ""); len(got) != 0 {
		t.Errorf("totals before it: %v", got)
	}
}

// TestMapRollupsBounded keeps at most MaxSeries rows of failed writes:
// here the incarnations of an edge forgotten and seen again while the
// store is down.
func TestMapRollupsBounded(t *testing.T) {
	r := setupRollups(t, func(c *derive.Config) { c.SeriesIdleTimeout = time.Minute; c.MaxSeries = 3 })
	r.flaky.fail = 1000
	for i := range 4 { // an incarnation every other minute
		r.at(2*i, 10)
		r.commit(dbCall(byte(i+1), false))
		_ = r.d.Flush(context.Background())
		r.at(2*i+1, 30)
		_ = r.d.Flush(context.Background())
	}
	if got := counterValue(t, r.reg, "vigil_derive_map_rollup_failures_total"); got != 8 {
		t.Errorf("failures %v, want 8", got)
	}
	if got := counterValue(t, r.reg, "vigil_derive_map_rollups_dropped_total"); got != 1 {
		t.Errorf("dropped %v, want 1", got)
	}
	r.flaky.mu.Lock()
	r.flaky.fail = 0
	r.flaky.mu.Unlock()
	r.at(8, 10)
	r.flush(t)
	if got := r.totals(t, 0, 9, ""); got["api>orders/database"].Calls != 3 {
		t.Errorf("totals %v, want the 3 calls kept", got)
	}
}

// counterValue returns the value of the counter name of reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
