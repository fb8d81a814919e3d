package derive_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/value"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/ingest/derive"
)

const (
	calls    = "traces_span_metrics_calls"
	bucket   = "traces_span_metrics_duration_bucket"
	requests = "traces_service_graph_request_total"
	failed   = "traces_service_graph_request_failed_total"
	unpaired = "traces_service_graph_unpaired_spans_total"
	dropped  = "traces_service_graph_dropped_spans_total"
)

func TestConfig(t *testing.T) {
	if err := derive.DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		edit func(*derive.Config)
		want string
	}{
		{func(c *derive.Config) { c.FlushInterval = 0 }, "derive.flush_interval must be positive"},
		{func(c *derive.Config) { c.PairingTimeout = -1 }, "derive.pairing_timeout must be positive"},
		{func(c *derive.Config) { c.SharedPairingTimeout = 0 }, "derive.shared_pairing_timeout must be positive"},
		{func(c *derive.Config) { c.MaxPending = 0 }, "derive.max_pending must be positive"},
		{func(c *derive.Config) { c.MaxOperationsPerService = 0 }, "derive.max_operations_per_service must be positive"},
		{func(c *derive.Config) { c.MaxSeries = 0 }, "derive.max_series must be positive"},
		{func(c *derive.Config) { c.SeriesIdleTimeout = time.Second }, "derive.series_idle_timeout must be at least derive.flush_interval"},
		{func(c *derive.Config) { c.Replica = "\xff" }, "derive.replica must be valid UTF-8 of at most 256 bytes"},
	} {
		cfg := derive.DefaultConfig()
		tc.edit(&cfg)
		if err := cfg.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
	if _, err := derive.New(derive.DefaultConfig(), derive.Options{}); err == nil {
		t.Error("New without an appendable succeeded")
	}
	d, err := derive.New(derive.DefaultConfig(), derive.Options{Appendable: &capture{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Replica()) < 8 || d.Replica()[len(d.Replica())-7] != '-' {
		t.Errorf("default replica %q, want <hostname>-<6 hex>", d.Replica())
	}
}

func TestREDCountsAndBuckets(t *testing.T) {
	b := setup(t, nil)
	res := map[string]string{"deployment.environment.name": "prod", "deployment.environment": "old", "k8s.namespace.name": "shop"}
	b.commit(
		span{service: "api", res: res, name: "op", kind: ptrace.SpanKindServer, trace: 1, id: 1, dur: 50 * time.Microsecond},
		span{service: "api", res: res, name: "op", kind: ptrace.SpanKindServer, trace: 1, id: 2, dur: 3 * time.Millisecond},
		span{service: "api", res: res, name: "op", kind: ptrace.SpanKindServer, trace: 1, id: 3, dur: 3 * time.Millisecond},
		span{service: "api", res: res, name: "op", kind: ptrace.SpanKindServer, trace: 1, id: 4, dur: 70 * time.Second},
		span{service: "api", res: res, name: "op", kind: ptrace.SpanKindServer, trace: 1, id: 5, err: true, dur: time.Millisecond},
	)
	b.commit(span{name: "bare", kind: ptrace.SpanKindInternal, trace: 2, id: 1, dur: time.Millisecond})
	b.clock.Advance(15 * time.Second)
	b.flush(t)

	ok := map[string]string{"service_name": "api", "span_name": "op", "span_kind": "SPAN_KIND_SERVER", "status_code": "STATUS_CODE_UNSET",
		"deployment_environment": "prod", "k8s_namespace_name": "shop", "vigil_replica": "r1"}
	if got := b.app.last(calls, ok); got != 4 {
		t.Errorf("calls = %v, want 4", got)
	}
	for le, want := range map[string]float64{"0.1": 1, "2.5": 1, "5": 3, "60000": 3, "+Inf": 4} {
		w := map[string]string{"le": le}
		for k, v := range ok {
			w[k] = v
		}
		if got := b.app.last(bucket, w); got != want {
			t.Errorf("bucket le=%s = %v, want %v", le, got, want)
		}
	}
	if got := b.app.last("traces_span_metrics_duration_sum", ok); !approx(got, 0.05+3+3+70000) {
		t.Errorf("sum = %v", got)
	}
	if got := b.app.last("traces_span_metrics_duration_count", ok); got != 4 {
		t.Errorf("count = %v", got)
	}
	if got := len(b.app.series(bucket, ok)); got != 20 {
		t.Errorf("%d buckets, want 20", got)
	}
	errs := map[string]string{"service_name": "api", "status_code": "STATUS_CODE_ERROR"}
	if got := b.app.last(calls, errs); got != 1 {
		t.Errorf("error calls = %v, want 1", got)
	}
	// A resource without service.name or dimensions: the labels are absent.
	bare := b.app.series(calls, map[string]string{"span_name": "bare"})
	want := `{__name__="traces_span_metrics_calls", service_name="unknown_service", span_kind="SPAN_KIND_INTERNAL", span_name="bare", status_code="STATUS_CODE_UNSET", vigil_replica="r1"}`
	if labelsOf(bare) != want {
		t.Errorf("labels\n%s\nwant\n%s", labelsOf(bare), want)
	}
	if md := b.app.meta["traces_span_metrics_duration"]; md.Type != "histogram" || md.Unit != "milliseconds" {
		t.Errorf("duration metadata %+v", md)
	}
	if md := b.app.meta[calls]; md.Type != "counter" {
		t.Errorf("calls metadata %+v", md)
	}
}

func TestHTTPRouteName(t *testing.T) {
	b := setup(t, nil)
	b.commit(
		span{service: "api", name: "GET /users/123", kind: ptrace.SpanKindServer, trace: 1, id: 1,
			attrs: map[string]string{"http.route": "/users/:id", "http.request.method": "GET"}},
		span{service: "api", name: "POST", kind: ptrace.SpanKindServer, trace: 1, id: 2,
			attrs: map[string]string{"http.route": "/users/:id", "http.method": "POST"}},
		span{service: "api", name: "whatever", kind: ptrace.SpanKindServer, trace: 1, id: 3,
			attrs: map[string]string{"http.route": "/health"}},
		span{service: "api", name: "GET /users/456", kind: ptrace.SpanKindServer, trace: 1, id: 4,
			attrs: map[string]string{"http.route": "/users/:id", "http.request.method": "GET"}},
	)
	b.clock.Advance(15 * time.Second)
	b.flush(t)
	for name, want := range map[string]float64{"GET /users/:id": 2, "POST /users/:id": 1, "/health": 1, "GET /users/123": 0} {
		if got := b.app.last(calls, map[string]string{"span_name": name}); got != want {
			t.Errorf("calls{span_name=%q} = %v, want %v", name, got, want)
		}
	}
}

func TestOperationOverflow(t *testing.T) {
	reg := prometheus.NewRegistry()
	app := &capture{}
	cfg := derive.DefaultConfig()
	cfg.MaxOperationsPerService = 2
	cfg.Replica = "r1"
	d, err := derive.New(cfg, derive.Options{Appendable: app, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	d.Committed([]ptrace.Traces{traces(
		span{service: "api", name: "a", trace: 1, id: 1},
		span{service: "api", name: "b", trace: 1, id: 2},
		span{service: "api", name: "c", trace: 1, id: 3},
		span{service: "api", name: "d", trace: 1, id: 4},
		span{service: "api", name: "a", trace: 1, id: 5},
		span{service: "other", name: "c", trace: 1, id: 6},
	)})
	if err := d.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"a": 2, "b": 1, "c": 0, "__overflow__": 2} {
		if got := app.last(calls, map[string]string{"service_name": "api", "span_name": name}); got != want {
			t.Errorf("calls{span_name=%q} = %v, want %v", name, got, want)
		}
	}
	if got := app.last(calls, map[string]string{"service_name": "other", "span_name": "c"}); got != 1 {
		t.Errorf("other service's c = %v", got)
	}
	if got := testutil.ToFloat64(mustVec(t, reg, "vigil_derive_operations_folded_total", "api")); got != 2 {
		t.Errorf("folded = %v, want 2", got)
	}
	if got, err := testutil.GatherAndCount(reg, "vigil_derive_spans_total"); err != nil || got != 1 {
		t.Errorf("spans metric count %d %v", got, err)
	}
}

// mustVec returns the value of a counter with one label from reg.
func mustVec(t *testing.T, reg *prometheus.Registry, name, lv string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == lv {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
				c.Add(m.GetCounter().GetValue())
				return c
			}
		}
	}
	t.Fatalf("no %s{%s}", name, lv)
	return nil
}

func TestPairingAnyOrder(t *testing.T) {
	b := setup(t, nil)
	// The server half first, the client half in a later call.
	b.commit(span{service: "back", name: "srv", kind: ptrace.SpanKindServer, trace: 7, id: 2, parent: 1, err: true, dur: 20 * time.Millisecond,
		res: map[string]string{"k8s.namespace.name": "b-ns"}})
	b.clock.Advance(5 * time.Second)
	b.commit(span{service: "front", name: "cli", kind: ptrace.SpanKindClient, trace: 7, id: 1, parent: 9, dur: 30 * time.Millisecond,
		res: map[string]string{"deployment.environment": "prod"}, attrs: map[string]string{"peer.service": "back"}})
	// The ordinary order, in one call.
	b.commit(
		span{service: "front", name: "cli", kind: ptrace.SpanKindClient, trace: 8, id: 1, parent: 9, dur: 30 * time.Millisecond, res: map[string]string{"deployment.environment": "prod"}},
		span{service: "back", name: "srv", kind: ptrace.SpanKindServer, trace: 8, id: 2, parent: 1, dur: 20 * time.Millisecond, res: map[string]string{"k8s.namespace.name": "b-ns"}},
	)
	b.clock.Advance(10 * time.Second)
	b.flush(t)
	edge := map[string]string{"client": "front", "server": "back", "connection_type": "", "client_deployment_environment": "prod",
		"server_k8s_namespace_name": "b-ns", "server_deployment_environment": "", "client_k8s_namespace_name": "", "vigil_replica": "r1"}
	if got := b.app.last(requests, edge); got != 2 {
		t.Errorf("requests = %v, want 2 (series %s)", got, labelsOf(b.app.series(requests, nil)))
	}
	if got := b.app.last(failed, edge); got != 1 {
		t.Errorf("failed = %v, want 1", got)
	}
	if got := b.app.last("traces_service_graph_request_client_seconds_sum", edge); !approx(got, 0.06) {
		t.Errorf("client seconds sum = %v, want 0.06", got)
	}
	if got := b.app.last("traces_service_graph_request_server_seconds_sum", edge); !approx(got, 0.04) {
		t.Errorf("server seconds sum = %v, want 0.04", got)
	}
	le := map[string]string{"client": "front", "le": "0.025"}
	if got := b.app.last("traces_service_graph_request_server_seconds_bucket", le); got != 2 {
		t.Errorf("server le=0.025 = %v, want 2", got)
	}
	if got := b.app.last("traces_service_graph_request_client_seconds_bucket", le); got != 0 {
		t.Errorf("client le=0.025 = %v, want 0", got)
	}
	if got := b.app.last(unpaired, nil); got != 0 {
		t.Errorf("unpaired = %v", got)
	}
	if got := len(b.app.series(requests, nil)); got != 1 {
		t.Errorf("%d edges, want 1: %s", got, labelsOf(b.app.series(requests, nil)))
	}
}

func TestOneHalfEdges(t *testing.T) {
	b := setup(t, nil)
	b.commit(
		// Database: complete at once.
		span{service: "api", name: "SELECT", kind: ptrace.SpanKindClient, trace: 1, id: 1, parent: 2, dur: time.Millisecond,
			attrs: map[string]string{"db.system": "postgresql", "db.namespace": "orders", "server.address": "db1"}},
		span{service: "api", name: "GET", kind: ptrace.SpanKindClient, trace: 1, id: 3, parent: 2,
			attrs: map[string]string{"db.system.name": "redis"}},
		// A root server span: a call from outside.
		span{service: "api", name: "GET /", kind: ptrace.SpanKindServer, trace: 1, id: 2, dur: 5 * time.Millisecond},
		// A root consumer span too.
		span{service: "worker", name: "process", kind: ptrace.SpanKindConsumer, trace: 3, id: 2},
	)
	b.flush(t)
	for _, tc := range []struct {
		client, server, conn string
	}{
		{"api", "orders", "database"},
		{"api", "redis", "database"},
		{"user", "api", "virtual_node"},
		{"user", "worker", "virtual_node"},
	} {
		if got := b.app.last(requests, map[string]string{"client": tc.client, "server": tc.server, "connection_type": tc.conn}); got != 1 {
			t.Errorf("%s → %s (%s) = %v, want 1; edges %s", tc.client, tc.server, tc.conn, got, labelsOf(b.app.series(requests, nil)))
		}
	}
	if got := b.app.last("traces_service_graph_request_server_seconds_sum", map[string]string{"server": "orders"}); !approx(got, 0.001) {
		t.Errorf("database server seconds = %v", got)
	}
}

func TestLoneHalves(t *testing.T) {
	b := setup(t, nil)
	b.commit(
		span{service: "api", name: "call", kind: ptrace.SpanKindClient, trace: 1, id: 1, attrs: map[string]string{"peer.service": "billing"}},
		span{service: "api", name: "call", kind: ptrace.SpanKindClient, trace: 1, id: 2, attrs: map[string]string{"net.peer.name": "ext.example"}},
		span{service: "api", name: "call", kind: ptrace.SpanKindClient, trace: 1, id: 3},
		span{service: "back", name: "srv", kind: ptrace.SpanKindServer, trace: 1, id: 4, parent: 5},
		span{service: "api", name: "send", kind: ptrace.SpanKindProducer, trace: 1, id: 6, attrs: map[string]string{"messaging.destination.name": "orders-q", "messaging.system": "kafka"}},
		span{service: "api", name: "send", kind: ptrace.SpanKindProducer, trace: 1, id: 7},
	)
	// Not yet: the halves wait PairingTimeout.
	b.clock.Advance(5 * time.Second)
	b.flush(t)
	if got := b.app.last(requests, nil); got != 0 {
		t.Errorf("requests before the timeout = %v", got)
	}
	b.clock.Advance(10 * time.Second)
	b.flush(t)
	for _, tc := range []struct {
		server, conn string
	}{{"billing", "virtual_node"}, {"ext.example", "virtual_node"}, {"orders-q", "messaging_system"}} {
		if got := b.app.last(requests, map[string]string{"client": "api", "server": tc.server, "connection_type": tc.conn}); got != 1 {
			t.Errorf("api → %s = %v, want 1; edges %s", tc.server, got, labelsOf(b.app.series(requests, nil)))
		}
	}
	if got := b.app.last(unpaired, map[string]string{"client": "api", "server": ""}); got != 2 {
		t.Errorf("unpaired{client=api} = %v, want 2", got)
	}
	if got := b.app.last(unpaired, map[string]string{"server": "back", "client": ""}); got != 1 {
		t.Errorf("unpaired{server=back} = %v, want 1", got)
	}
}

func TestMessagingPair(t *testing.T) {
	b := setup(t, nil)
	b.commit(
		span{service: "shop", name: "publish", kind: ptrace.SpanKindProducer, trace: 1, id: 1, attrs: map[string]string{"messaging.destination": "q"}},
		span{service: "mailer", name: "consume", kind: ptrace.SpanKindConsumer, trace: 1, id: 2, parent: 1},
	)
	b.flush(t)
	if got := b.app.last(requests, map[string]string{"client": "shop", "server": "mailer", "connection_type": "messaging_system"}); got != 1 {
		t.Errorf("shop → mailer = %v; edges %s", got, labelsOf(b.app.series(requests, nil)))
	}
}

func TestMaxPendingDrops(t *testing.T) {
	b := setup(t, func(c *derive.Config) { c.MaxPending = 1 })
	b.commit(
		span{service: "api", kind: ptrace.SpanKindClient, trace: 1, id: 1},
		span{service: "api", kind: ptrace.SpanKindClient, trace: 1, id: 2},
		span{service: "back", kind: ptrace.SpanKindServer, trace: 1, id: 3, parent: 4},
		// Completing the waiting half needs no room.
		span{service: "back", kind: ptrace.SpanKindServer, trace: 1, id: 5, parent: 1},
	)
	b.flush(t)
	if got := b.app.last(dropped, map[string]string{"client": "api"}); got != 1 {
		t.Errorf("dropped{client=api} = %v, want 1", got)
	}
	if got := b.app.last(dropped, map[string]string{"server": "back"}); got != 1 {
		t.Errorf("dropped{server=back} = %v, want 1", got)
	}
	if got := b.app.last(requests, map[string]string{"client": "api", "server": "back"}); got != 1 {
		t.Errorf("api → back = %v, want 1", got)
	}
}

func TestZeroBaselineAndStale(t *testing.T) {
	b := setup(t, func(c *derive.Config) { c.SeriesIdleTimeout = time.Minute })
	start := t0
	b.clock.Advance(5 * time.Second)
	b.commit(span{service: "api", name: "op", trace: 1, id: 1})
	b.clock.Advance(10 * time.Second)
	first := b.clock.Now()
	b.flush(t)
	want := map[string]string{"service_name": "api"}
	got := b.app.series(calls, want)
	if len(got) != 1 {
		t.Fatalf("series %s", labelsOf(got))
	}
	for _, ss := range got {
		if len(ss) != 2 || ss[0].t != start.UnixMilli() || ss[0].v != 0 || ss[1].t != first.UnixMilli() || ss[1].v != 1 {
			t.Errorf("first flush samples %+v, want 0 at creation then 1", ss)
		}
	}
	// Every series of the key has its baseline, buckets included.
	for _, ss := range b.app.series(bucket, want) {
		if ss[0].t != start.UnixMilli() || ss[0].v != 0 {
			t.Errorf("bucket %v has no baseline", ss[0].ls)
		}
	}
	// The next flush writes the value again, without a baseline.
	b.commit(span{service: "api", name: "op", trace: 1, id: 2})
	b.clock.Advance(15 * time.Second)
	second := b.clock.Now()
	b.flush(t)
	for _, ss := range b.app.series(calls, want) {
		if len(ss) != 3 || ss[2].t != second.UnixMilli() || ss[2].v != 2 {
			t.Errorf("second flush samples %+v", ss)
		}
	}
	// Idle for the timeout: a stale marker, and the series is forgotten.
	b.clock.Advance(45 * time.Second)
	b.flush(t) // idle for 45 s: still live
	b.clock.Advance(30 * time.Second)
	staleAt := b.clock.Now()
	b.flush(t)
	for _, ss := range b.app.series(calls, want) {
		last := ss[len(ss)-1]
		if last.t != staleAt.UnixMilli() || !value.IsStaleNaN(last.v) {
			t.Errorf("last sample %+v, want a stale marker at %v", last, staleAt)
		}
	}
	b.clock.Advance(15 * time.Second)
	n := len(b.app.series(calls, want)[labelsOf(b.app.series(calls, want))])
	b.flush(t)
	if m := len(b.app.series(calls, want)[labelsOf(b.app.series(calls, want))]); m != n {
		t.Errorf("a forgotten series was written again: %d samples, then %d", n, m)
	}
	// Back again: a new baseline (just after the stale marker) and counting from 0.
	b.commit(span{service: "api", name: "op", trace: 1, id: 3})
	b.clock.Advance(15 * time.Second)
	b.flush(t)
	ss := b.app.series(calls, want)[labelsOf(b.app.series(calls, want))]
	tail := ss[len(ss)-2:]
	if tail[0].v != 0 || tail[0].t <= staleAt.UnixMilli() || tail[1].v != 1 || tail[1].t != b.clock.Now().UnixMilli() {
		t.Errorf("samples after revival %+v", tail)
	}
}

func TestFailedCommitKeepsState(t *testing.T) {
	reg := prometheus.NewRegistry()
	app := &capture{fail: true}
	clk := &clock{t: t0}
	cfg := derive.DefaultConfig()
	cfg.Replica = "r1"
	d, err := derive.New(cfg, derive.Options{Appendable: app, Registerer: reg, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	d.Committed([]ptrace.Traces{traces(span{service: "api", name: "op", trace: 1, id: 1})})
	clk.Advance(15 * time.Second)
	if err := d.Flush(context.Background()); err == nil {
		t.Fatal("flush with a failing commit succeeded")
	}
	if len(app.samples) != 0 || app.rollbacks != 1 {
		t.Fatalf("samples %d, rollbacks %d", len(app.samples), app.rollbacks)
	}
	d.Committed([]ptrace.Traces{traces(span{service: "api", name: "op", trace: 1, id: 2})})
	app.mu.Lock()
	app.fail = false
	app.mu.Unlock()
	clk.Advance(15 * time.Second)
	if err := d.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, ss := range app.series(calls, map[string]string{"service_name": "api"}) {
		if len(ss) != 2 || ss[0].v != 0 || ss[0].t != t0.UnixMilli() || ss[1].v != 2 {
			t.Errorf("samples after a failed flush %+v, want 0 at the last good flush, then 2", ss)
		}
	}
	if got := testutil.ToFloat64(counter(t, reg, "vigil_derive_flush_failures_total")); got != 1 {
		t.Errorf("flush failures = %v", got)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			c := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
			m := mf.GetMetric()[0]
			c.Set(m.GetCounter().GetValue() + m.GetGauge().GetValue())
			return c
		}
	}
	t.Fatalf("no %s", name)
	return nil
}

func TestMaxSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	app := &capture{}
	cfg := derive.DefaultConfig()
	cfg.MaxSeries = 2
	d, err := derive.New(cfg, derive.Options{Appendable: app, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	d.Committed([]ptrace.Traces{traces(
		span{service: "a", name: "x"}, span{service: "b", name: "x"}, span{service: "c", name: "x"}, span{service: "a", name: "x"},
	)})
	if err := d.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := app.last(calls, nil); got != 3 {
		t.Errorf("calls = %v, want 3 (a twice, b)", got)
	}
	if got := testutil.ToFloat64(counter(t, reg, "vigil_derive_series_dropped_total")); got != 1 {
		t.Errorf("series dropped = %v", got)
	}
	if got := testutil.ToFloat64(counter(t, reg, "vigil_derive_series")); got != 2 {
		t.Errorf("series gauge = %v", got)
	}
}

// TestOddSpans feeds spans no rule expects; nothing may panic.
func TestOddSpans(t *testing.T) {
	b := setup(t, nil)
	td := traces(
		span{kind: ptrace.SpanKindClient},                       // no ids, no service
		span{kind: ptrace.SpanKindServer, parent: 3},            // no trace id
		span{service: "x", kind: ptrace.SpanKind(42), trace: 1}, // unknown kind
		span{service: "x", kind: ptrace.SpanKind(-3), trace: 1}, // negative kind
		span{service: "", kind: ptrace.SpanKindProducer, id: 9}, // producer without trace
		span{service: "x", kind: ptrace.SpanKindConsumer, trace: 2, parent: 1},
	)
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	sp.Status().SetCode(ptrace.StatusCode(99))
	sp.SetEndTimestamp(1) // before its start
	sp.Attributes().PutInt("http.route", 5)
	sp.Attributes().PutEmptyMap("peer.service")
	td.ResourceSpans().AppendEmpty()                                                  // empty resource
	td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty() // zero span
	td.ResourceSpans().At(0).Resource().Attributes().PutInt("service.name", 7)
	b.d.Committed([]ptrace.Traces{td, ptrace.NewTraces()})
	b.d.Committed(nil)
	b.clock.Advance(time.Minute)
	b.flush(t)
	if got := b.app.last(calls, nil); got != 7 {
		t.Errorf("calls = %v, want 7", got)
	}
	if got := b.app.last(calls, map[string]string{"span_kind": "SPAN_KIND_UNSPECIFIED"}); got != 3 {
		t.Errorf("unspecified = %v, want 3 (two odd kinds and the zero span)", got)
	}
}

func TestDisabled(t *testing.T) {
	b := setup(t, func(c *derive.Config) { c.Enabled = false })
	b.commit(span{service: "a"})
	b.flush(t)
	if len(b.app.samples) != 0 {
		t.Errorf("disabled deriver wrote %d samples", len(b.app.samples))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.d.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRunFlushesAtEnd(t *testing.T) {
	b := setup(t, nil)
	b.commit(span{service: "a", name: "x"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.d.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if got := b.app.last(calls, nil); got != 1 {
		t.Errorf("calls after Run = %v", got)
	}
}

// TestConcurrentCommitted runs writers and flushes at once: the final
// count is exact.
func TestConcurrentCommitted(t *testing.T) {
	// The flushes advance the clock by 20 s while the writers run: a half
	// must not time out between its resource and its partner's, which a
	// busy machine can delay by many flushes.
	b := setup(t, func(c *derive.Config) { c.PairingTimeout = time.Hour })
	const writers, batches = 4, 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			b.clock.Advance(time.Second)
			if err := b.d.Flush(context.Background()); err != nil {
				t.Error(err)
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				b.commit(
					span{service: "front", name: "cli", kind: ptrace.SpanKindClient, trace: byte(w + 1), id: byte(i%250 + 1)},
					span{service: "back", name: "srv", kind: ptrace.SpanKindServer, trace: byte(w + 1), id: 1, parent: byte(i%250 + 1)},
				)
			}
		}()
	}
	wg.Wait()
	<-done
	b.clock.Advance(time.Second)
	b.flush(t)
	if got := b.app.last(calls, nil); got != 2*writers*batches {
		t.Errorf("calls = %v, want %d", got, 2*writers*batches)
	}
	if got := b.app.last(requests, map[string]string{"client": "front", "server": "back"}); got != writers*batches {
		t.Errorf("requests = %v, want %d", got, writers*batches)
	}
}

// TestQueueFullRetried tries a commit the pipeline refused for a full
// queue again within the flush.
func TestQueueFullRetried(t *testing.T) {
	b := setup(t, nil)
	b.app.refuse = 2
	b.commit(span{service: "api", name: "op"})
	b.clock.Advance(15 * time.Second)
	b.flush(t)
	if got := b.app.last(calls, nil); got != 1 || b.app.commits != 1 || b.app.rollbacks != 2 {
		t.Errorf("calls %v, commits %d, rollbacks %d", got, b.app.commits, b.app.rollbacks)
	}
}
