package servicemap_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	prom "github.com/prometheus/prometheus/promql"

	"github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/query/servicemap"
	"github.com/vigil-obs/vigil/storage"
)

type bundle struct {
	stores stores
	engine *promql.Engine
	svc    *servicemap.Service
	fx     fixture
}

// setup writes the series fixture (Monitor, marks) and the rollup
// fixture of a window starting half an hour ago.
func setup(t *testing.T) bundle {
	t.Helper()
	st := newStores(t)
	start := time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	fx := writeSeries(t, newWriter(t, st.metrics), start)
	writeRollups(t, st.maps, start)
	engine, err := promql.New(st.metrics, promql.Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.Close() })
	svc := servicemap.New(servicemap.Config{MaxLookback: 24 * time.Hour}, servicemap.Options{Rollups: st.maps, Metrics: st.metrics, Engine: engine})
	return bundle{stores: st, engine: engine, svc: svc, fx: fx}
}

// promScalar evaluates an instant query that must return one sample.
func (b bundle) promScalar(t *testing.T, qs string) float64 {
	t.Helper()
	q, err := b.engine.InstantQuery(context.Background(), qs, b.fx.end, promql.QueryOptions{})
	if err != nil {
		t.Fatalf("%s: %v", qs, err)
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", qs, res.Err)
	}
	v, err := res.Vector()
	if err != nil || len(v) != 1 {
		t.Fatalf("%s: got %v (%v), want one sample", qs, res.Value, err)
	}
	return v[0].F
}

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

func findEdge(m servicemap.Map, client, server, conn string) (servicemap.Edge, bool) {
	for _, e := range m.Edges {
		if e.Client == client && e.Server == server && e.ConnectionType == conn {
			return e, true
		}
	}
	return servicemap.Edge{}, false
}

func findNode(m servicemap.Map, id string) (servicemap.Node, bool) {
	for _, n := range m.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return servicemap.Node{}, false
}

// wantEdge and wantNode are the expected counts of an edge or a node.
type wantEdge struct {
	client, server, conn string
	calls, failed        uint64
}

type wantNode struct {
	id, kind      string
	calls, errors uint64
}

func checkEdges(t *testing.T, m servicemap.Map, secs float64, want []wantEdge) {
	t.Helper()
	if len(m.Edges) != len(want) {
		t.Errorf("got %d edges, want %d: %+v", len(m.Edges), len(want), m.Edges)
	}
	for i, w := range want {
		if i >= len(m.Edges) {
			break
		}
		e := m.Edges[i]
		if e.Client != w.client || e.Server != w.server || e.ConnectionType != w.conn || e.Calls != w.calls || e.Errors != w.failed {
			t.Errorf("edge %d: got %s -> %s (%q) calls %d failed %d, want %s -> %s (%q) calls %d failed %d",
				i, e.Client, e.Server, e.ConnectionType, e.Calls, e.Errors, w.client, w.server, w.conn, w.calls, w.failed)
		}
		if !near(e.Rate, float64(w.calls)/secs) {
			t.Errorf("edge %s -> %s: rate %v, want %v", e.Client, e.Server, e.Rate, float64(w.calls)/secs)
		}
		if w.calls > 0 && !near(e.ErrorRate, float64(w.failed)/float64(w.calls)) {
			t.Errorf("edge %s -> %s: error rate %v, want %v", e.Client, e.Server, e.ErrorRate, float64(w.failed)/float64(w.calls))
		}
	}
}

func checkNodes(t *testing.T, m servicemap.Map, want []wantNode) {
	t.Helper()
	if len(m.Nodes) != len(want) {
		t.Errorf("got %d nodes, want %d: %+v", len(m.Nodes), len(want), m.Nodes)
	}
	for i, w := range want {
		if i >= len(m.Nodes) {
			break
		}
		n := m.Nodes[i]
		if n.ID != w.id || n.Kind != w.kind || n.Calls != w.calls || n.Errors != w.errors {
			t.Errorf("node %d: got %s (%s) calls %d errors %d, want %s (%s) calls %d errors %d",
				i, n.ID, n.Kind, n.Calls, n.Errors, w.id, w.kind, w.calls, w.errors)
		}
	}
}

// The full map of the fixture's window.
var (
	fixtureEdges = []wantEdge{
		{"gateway", "inventory", "", 0, 0}, // marks only
		{"gateway", "payments-api", "virtual_node", 10, 0},
		{"gateway", "postgres", "database", 10, 0},
		{"gateway", "redis", "database", 32, 0},
		{"gateway", "user-service", "", 40 + 60, 20},
		{"gateway-stg", "user-service-stg", "", 50, 0},
		{"user", "gateway", "virtual_node", 20, 0},
		{"user-service", "orders", "messaging_system", 20, 0},
		{"user-service", "postgres", "database", 12 + 9, 0},
	}
	fixtureNodes = []wantNode{
		{"gateway", "service", 40, 0},
		{"gateway-stg", "service", 0, 0},
		{"inventory", "service", 0, 0},
		{"orders", "messaging", 20, 0},
		{"payments-api", "peer", 10, 0},
		{"postgres", "database", 21 + 10, 0},
		{"redis", "database", 32, 0},
		{"user", "user", 0, 0},
		{"user-service", "service", 160, 40},
		{"user-service-stg", "service", 0, 0},
	}
)

// TestMapExactCounts covers a replica restart (gateway -> user-service
// on r1 then r2), a key of two incarnations (user-service -> postgres), a
// key starting inside the window (gateway -> redis), a key whose rows end
// before the window (billing), node kinds and virtual nodes.
func TestMapExactCounts(t *testing.T) {
	b := setup(t)
	m, err := b.svc.Map(context.Background(), servicemap.MapQuery{Start: b.fx.start, End: b.fx.end})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Start.Equal(b.fx.start) || !m.End.Equal(b.fx.end) {
		t.Errorf("window [%s, %s], want [%s, %s]", m.Start, m.End, b.fx.start, b.fx.end)
	}
	checkEdges(t, m, 600, fixtureEdges)
	checkNodes(t, m, fixtureNodes)
	if n, _ := findNode(m, "user-service"); !near(n.ErrorRate, 0.25) || !near(n.Rate, 160.0/600) {
		t.Errorf("user-service error rate %v rate %v, want 0.25 and %v", n.ErrorRate, n.Rate, 160.0/600)
	}
	for _, id := range []string{"user", "inventory", "gateway-stg"} {
		if n, _ := findNode(m, id); !math.IsNaN(n.P50) || !math.IsNaN(n.P99) {
			t.Errorf("%s p50 %v p99 %v, want NaN (no latency)", id, n.P50, n.P99)
		}
	}
}

// bucketQuantiles computes the map's quantiles of a histogram of the
// map's buckets with Prometheus's BucketQuantile.
func bucketQuantiles(h []uint64) [3]float64 {
	var b prom.Buckets
	cum := 0.0
	for i, c := range h {
		cum += float64(c)
		ub := math.Inf(1)
		if i < len(storage.MapLatencyBounds) {
			ub = storage.MapLatencyBounds[i]
		}
		b = append(b, prom.Bucket{UpperBound: ub, Count: cum})
	}
	var out [3]float64
	for i, q := range []float64{0.5, 0.95, 0.99} {
		out[i], _, _, _, _, _ = prom.BucketQuantile(q, b)
	}
	return out
}

func TestMapQuantiles(t *testing.T) {
	b := setup(t)
	m, err := b.svc.Map(context.Background(), servicemap.MapQuery{Start: b.fx.start, End: b.fx.end})
	if err != nil {
		t.Fatal(err)
	}
	got := func(s servicemap.Stats) [3]float64 { return [3]float64{s.P50, s.P95, s.P99} }
	check := func(name string, got, want [3]float64) {
		t.Helper()
		for i := range want {
			if !near(got[i], want[i]) {
				t.Errorf("%s: quantiles %v, want %v", name, got, want)
				return
			}
		}
	}
	edge := func(client, server, conn string) servicemap.Stats {
		e, ok := findEdge(m, client, server, conn)
		if !ok {
			t.Fatalf("no edge %s -> %s", client, server)
		}
		return e.Stats
	}
	node := func(id string) servicemap.Stats {
		n, ok := findNode(m, id)
		if !ok {
			t.Fatalf("no node %s", id)
		}
		return n.Stats
	}

	// By hand. gateway -> user-service, server side over both replicas:
	// 40 calls <= 5 ms, 20 in (10 ms, 25 ms], 20 in (25 ms, 50 ms], 20 in
	// (0.5 s, 1 s].
	check("gateway -> user-service", got(edge("gateway", "user-service", "")), [3]float64{
		0.01 + 0.015*(50-40)/20, 0.5 + 0.5*(95-80)/20, 0.5 + 0.5*(99-80)/20})
	// gateway -> redis has no server side: its 32 client latencies, all
	// in (1 ms, 2.5 ms]; the redis node's are its one incoming edge's.
	redis := [3]float64{0.001 + 0.0015*0.5, 0.001 + 0.0015*0.95, 0.001 + 0.0015*0.99}
	check("gateway -> redis", got(edge("gateway", "redis", "database")), redis)
	check("redis", got(node("redis")), redis)
	// user-service's spans: 40 in each of (2.5 ms, 5 ms], (5 ms, 10 ms],
	// (25 ms, 50 ms], (0.25 s, 0.5 s].
	check("user-service", got(node("user-service")), [3]float64{0.01, 0.25 + 0.25*(152-120)/40, 0.25 + 0.25*(158.4-120)/40})

	// Against Prometheus's BucketQuantile over the histograms of the
	// window: the postgres node sums its two incoming edges.
	check("user -> gateway (server side)", got(edge("user", "gateway", "virtual_node")), bucketQuantiles(hist(20, le5ms)))
	check("postgres", got(node("postgres")), bucketQuantiles(addAll(hist(21, le1ms), hist(10, le25ms))))
	check("payments-api", got(node("payments-api")), bucketQuantiles(hist(10, le500ms)))
	check("orders", got(node("orders")), bucketQuantiles(hist(20, le5ms)))
	check("gateway", got(node("gateway")), bucketQuantiles(hist(40, le1ms)))
	check("gateway -> user-service", got(edge("gateway", "user-service", "")),
		bucketQuantiles(addAll(hist(40, le5ms), hist(20, le25ms), hist(20, le50ms), hist(20, le1s))))
	check("gateway-stg -> user-service-stg (no latency)", got(edge("gateway-stg", "user-service-stg", "")), [3]float64{math.NaN(), math.NaN(), math.NaN()})
}

func names(m servicemap.Map) (edges, nodes []string) {
	for _, e := range m.Edges {
		edges = append(edges, e.Client+">"+e.Server)
	}
	for _, n := range m.Nodes {
		nodes = append(nodes, n.ID)
	}
	return edges, nodes
}

func TestMapFilters(t *testing.T) {
	b := setup(t)
	tests := []struct {
		name         string
		filters      map[string]string
		edges, nodes []string
	}{
		{
			name:    "environment",
			filters: map[string]string{"deployment.environment": "prod"},
			edges:   []string{"gateway>payments-api", "gateway>postgres", "gateway>redis", "gateway>user-service", "user>gateway", "user-service>orders"},
			nodes:   []string{"gateway", "orders", "payments-api", "postgres", "redis", "user", "user-service"},
		},
		{
			name:    "namespace",
			filters: map[string]string{"k8s.namespace.name": "shop"},
			edges:   []string{"gateway>user-service"},
			nodes:   []string{"gateway", "user-service"},
		},
		{
			name:    "both",
			filters: map[string]string{"deployment.environment": "prod", "k8s.namespace.name": "shop"},
			edges:   []string{"gateway>user-service"},
			nodes:   []string{"gateway", "user-service"},
		},
		{
			name:    "empty value",
			filters: map[string]string{"deployment.environment": "staging", "k8s.namespace.name": ""},
			edges:   []string{"gateway-stg>user-service-stg"},
			nodes:   []string{"gateway-stg", "user-service-stg"},
		},
		{
			name:    "none",
			filters: map[string]string{"k8s.namespace.name": "none"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := b.svc.Map(context.Background(), servicemap.MapQuery{Start: b.fx.start, End: b.fx.end, Filters: tc.filters})
			if err != nil {
				t.Fatal(err)
			}
			edges, nodes := names(m)
			if fmt.Sprint(edges) != fmt.Sprint(tc.edges) || fmt.Sprint(nodes) != fmt.Sprint(tc.nodes) {
				t.Errorf("edges %v nodes %v, want %v and %v", edges, nodes, tc.edges, tc.nodes)
			}
		})
	}
	m, err := b.svc.Map(context.Background(), servicemap.MapQuery{Start: b.fx.start, End: b.fx.end,
		Filters: map[string]string{"deployment.environment": "prod"}})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := findEdge(m, "gateway", "user-service", ""); e.Calls != 100 || len(e.Marks) != 3 {
		t.Errorf("filtered gateway -> user-service: %d calls, marks %+v; want 100 and its 3 marks", e.Calls, e.Marks)
	}

	_, err = b.svc.Map(context.Background(), servicemap.MapQuery{Filters: map[string]string{"host.name": "x"}})
	var qe *servicemap.QueryError
	if !errors.As(err, &qe) || qe.Param != "attr.host.name" {
		t.Errorf("unknown filter: got %v, want a QueryError naming attr.host.name", err)
	}
	_, err = b.svc.Map(context.Background(), servicemap.MapQuery{Start: b.fx.end.Add(-25 * time.Hour), End: b.fx.end})
	if !errors.As(err, &qe) || qe.Param != "start" {
		t.Errorf("window over retention: got %v, want a QueryError naming start", err)
	}
	_, err = b.svc.Map(context.Background(), servicemap.MapQuery{Start: b.fx.end, End: b.fx.start})
	if !errors.As(err, &qe) || qe.Param != "start" {
		t.Errorf("start after end: got %v, want a QueryError naming start", err)
	}
}

// TestMapWindowAlignment checks that a window is widened to whole
// minutes, reported so, and that rates are per second of that window.
func TestMapWindowAlignment(t *testing.T) {
	b := setup(t)
	s := b.fx.start
	tests := []struct {
		name       string
		now        time.Time // the clock; zero: the real one
		q          servicemap.MapQuery
		start, end time.Time
		calls      uint64 // gateway -> user-service
	}{
		{name: "whole minutes", q: servicemap.MapQuery{Start: s, End: b.fx.end}, start: s, end: b.fx.end, calls: 100},
		{name: "inside minutes", q: servicemap.MapQuery{Start: s.Add(30 * time.Second), End: s.Add(9*time.Minute + 10*time.Second)}, start: s, end: b.fx.end, calls: 100},
		{name: "default window", now: s.Add(9*time.Minute + 40*time.Second), start: s.Add(-6 * time.Minute), end: b.fx.end, calls: 8*8 + 60}, // r1 from its first row
		{name: "empty window", q: servicemap.MapQuery{Start: s.Add(5 * time.Minute), End: s.Add(5 * time.Minute)}, start: s.Add(5 * time.Minute), end: s.Add(6 * time.Minute), calls: 12},
		{name: "one instant", q: servicemap.MapQuery{Start: s.Add(4*time.Minute + time.Second), End: s.Add(4*time.Minute + time.Second)}, start: s.Add(4 * time.Minute), end: s.Add(5 * time.Minute), calls: 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := b.svc
			if !tc.now.IsZero() {
				svc = servicemap.New(servicemap.Config{Now: func() time.Time { return tc.now }}, servicemap.Options{Rollups: b.stores.maps})
			}
			m, err := svc.Map(context.Background(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if !m.Start.Equal(tc.start) || !m.End.Equal(tc.end) {
				t.Errorf("window [%s, %s], want [%s, %s]", m.Start, m.End, tc.start, tc.end)
			}
			e, _ := findEdge(m, "gateway", "user-service", "")
			if secs := tc.end.Sub(tc.start).Seconds(); e.Calls != tc.calls || !near(e.Rate, float64(tc.calls)/secs) {
				t.Errorf("gateway -> user-service: %d calls, rate %v; want %d and %v", e.Calls, e.Rate, tc.calls, float64(tc.calls)/secs)
			}
		})
	}
}

func TestMapMarks(t *testing.T) {
	b := setup(t)
	m, err := b.svc.Map(context.Background(), servicemap.MapQuery{Start: b.fx.start, End: b.fx.end})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := findEdge(m, "gateway", "user-service", "")
	want := []servicemap.Mark{
		{Kind: "breaker_open", Instance: "127.0.0.1:3003", Since: b.fx.start.Add(6 * time.Minute), Value: 2},
		{Kind: "ejected", Instance: "127.0.0.1:3004", Since: b.fx.start, Value: 1},
		{Kind: "retry_budget_exhausted", Since: b.fx.start.Add(8 * time.Minute), Value: 2},
	}
	if len(e.Marks) != len(want) {
		t.Fatalf("marks %+v, want %+v", e.Marks, want)
	}
	for i := range want {
		if g := e.Marks[i]; g.Kind != want[i].Kind || g.Instance != want[i].Instance || !g.Since.Equal(want[i].Since) || g.Value != want[i].Value {
			t.Errorf("mark %d: got %+v, want %+v", i, g, want[i])
		}
	}
	// A mark about a pair that made no call shows on an edge of its own.
	if e, ok := findEdge(m, "gateway", "inventory", ""); !ok || len(e.Marks) != 1 || e.Marks[0].Kind != "ejected" || e.Calls != 0 {
		t.Errorf("gateway -> inventory: %+v (found %v), want an edge with no call and the ejection", e, ok)
	}
	// Before the breaker opened, there is no breaker mark.
	m, err = b.svc.Map(context.Background(), servicemap.MapQuery{Start: b.fx.start, End: b.fx.start.Add(5 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	e, _ = findEdge(m, "gateway", "user-service", "")
	if len(e.Marks) != 1 || e.Marks[0].Kind != "ejected" {
		t.Errorf("marks before start+5m: %+v, want only ejected", e.Marks)
	}
	// Without the metric store the map has no marks, and no mark-only
	// edge.
	svc := servicemap.New(servicemap.Config{}, servicemap.Options{Rollups: b.stores.maps})
	m, err = svc.Map(context.Background(), servicemap.MapQuery{Start: b.fx.start, End: b.fx.end})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := findEdge(m, "gateway", "user-service", ""); len(e.Marks) != 0 || e.Calls != 100 {
		t.Errorf("without metrics: gateway -> user-service %+v, want 100 calls and no marks", e)
	}
	if _, ok := findEdge(m, "gateway", "inventory", ""); ok {
		t.Error("without metrics: a mark-only edge")
	}
}

func TestDependencies(t *testing.T) {
	b := setup(t)
	want := []servicemap.Dependency{
		{Parent: "gateway", Child: "payments-api", CallCount: 10},
		{Parent: "gateway", Child: "postgres", CallCount: 10},
		{Parent: "gateway", Child: "redis", CallCount: 32},
		{Parent: "gateway", Child: "user-service", CallCount: 100},
		{Parent: "gateway-stg", Child: "user-service-stg", CallCount: 50},
		{Parent: "user", Child: "gateway", CallCount: 20},
		{Parent: "user-service", Child: "orders", CallCount: 20},
		{Parent: "user-service", Child: "postgres", CallCount: 21},
	}
	for _, tc := range []struct {
		name     string
		end      time.Time
		lookback time.Duration
	}{
		{"whole minutes", b.fx.end, 10 * time.Minute},
		{"widened to whole minutes", b.fx.end.Add(-30 * time.Second), 9 * time.Minute},
	} {
		deps, err := b.svc.Dependencies(context.Background(), tc.end, tc.lookback)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(deps) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", tc.name, deps, want)
		}
	}
	var qe *servicemap.QueryError
	if _, err := b.svc.Dependencies(context.Background(), b.fx.end, 0); !errors.As(err, &qe) {
		t.Errorf("lookback 0: got %v, want a QueryError", err)
	}
}

func TestNoRollups(t *testing.T) {
	svc := servicemap.New(servicemap.Config{}, servicemap.Options{})
	if _, err := svc.Map(context.Background(), servicemap.MapQuery{}); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("map: got %v, want ErrUnavailable", err)
	}
	if _, err := svc.Dependencies(context.Background(), time.Time{}, time.Hour); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("dependencies: got %v, want ErrUnavailable", err)
	}
}

type fakeTraces struct {
	got storage.EdgeTraceQuery
	out []storage.EdgeTrace
	err error
}

func (f *fakeTraces) EdgeTraces(_ context.Context, q storage.EdgeTraceQuery) ([]storage.EdgeTrace, error) {
	f.got = q
	return f.out, f.err
}

func TestEdgeTraces(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := &fakeTraces{out: []storage.EdgeTrace{{Client: "a", Server: "b", TraceID: [16]byte{1}}}}
	svc := servicemap.New(servicemap.Config{MaxLookback: time.Hour, Now: func() time.Time { return now }}, servicemap.Options{EdgeTraces: f})
	out, err := svc.EdgeTraces(context.Background(), storage.EdgeTraceQuery{Client: "a", Server: "b"})
	if err != nil || len(out) != 1 {
		t.Fatalf("got %v, %v", out, err)
	}
	want := storage.EdgeTraceQuery{Client: "a", Server: "b", Start: now.Add(-15 * time.Minute), End: now, Limit: 20}
	if f.got != want {
		t.Errorf("store asked %+v, want %+v", f.got, want)
	}
	for _, q := range []storage.EdgeTraceQuery{
		{Limit: 1001},
		{Limit: -1},
		{Start: now.Add(-2 * time.Hour)},
		{Start: now, End: now.Add(-time.Second)},
	} {
		var qe *servicemap.QueryError
		if _, err := svc.EdgeTraces(context.Background(), q); !errors.As(err, &qe) {
			t.Errorf("%+v: got %v, want a QueryError", q, err)
		}
	}
	f.err = storage.ErrUnavailable
	if _, err := svc.EdgeTraces(context.Background(), storage.EdgeTraceQuery{}); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("store error: got %v", err)
	}
}
