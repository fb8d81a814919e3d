package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/chromedp/chromedp"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

// fastDerive makes span-derived series visible within a fraction of a
// second and lets unpaired halves end quickly.
func fastDerive(c *Config) {
	c.Derive.FlushInterval = 200 * time.Millisecond
	c.Derive.PairingTimeout = 2 * time.Second
	c.Derive.SharedPairingTimeout = 2 * time.Second
}

// dependency is one element of Jaeger's /api/dependencies answer.
type dependency struct {
	Parent    string `json:"parent"`
	Child     string `json:"child"`
	CallCount int64  `json:"callCount"`
}

type mapNode struct {
	ID     string   `json:"id"`
	Kind   string   `json:"kind"`
	Calls  int64    `json:"calls"`
	Errors int64    `json:"errors"`
	P95    *float64 `json:"p95"`
}

type mapMark struct {
	Kind     string `json:"kind"`
	Instance string `json:"instance"`
	Since    string `json:"since"`
}

type mapEdge struct {
	Client         string    `json:"client"`
	Server         string    `json:"server"`
	ConnectionType string    `json:"connection_type"`
	Calls          int64     `json:"calls"`
	Failed         int64     `json:"failed"`
	P50            *float64  `json:"p50"`
	P95            *float64  `json:"p95"`
	Marks          []mapMark `json:"marks"`
}

type serviceMap struct {
	Nodes []mapNode `json:"nodes"`
	Edges []mapEdge `json:"edges"`
}

func (m serviceMap) edge(client, server string) (mapEdge, bool) {
	for _, e := range m.Edges {
		if e.Client == client && e.Server == server {
			return e, true
		}
	}
	return mapEdge{}, false
}

func (m serviceMap) node(id string) (mapNode, bool) {
	for _, n := range m.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return mapNode{}, false
}

// promVector is the answer of an instant query.
type promVector struct {
	Status string `json:"status"`
	Data   struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// dependencies reads Jaeger's dependencies over the last hour, sorted.
func dependencies(t *testing.T, ts *testServer) []dependency {
	t.Helper()
	u := fmt.Sprintf("%s/api/dependencies?endTs=%d&lookback=%d", ts.httpURL, time.Now().Add(time.Minute).UnixMilli(), time.Hour.Milliseconds())
	got, code := getJSON[jaegerResponse[[]dependency]](t, u)
	if code != http.StatusOK {
		t.Fatalf("GET /api/dependencies: %d %+v", code, got)
	}
	slices.SortFunc(got.Data, func(a, b dependency) int {
		return strings.Compare(a.Parent+"\x00"+a.Child, b.Parent+"\x00"+b.Child)
	})
	return got.Data
}

func readMap(t *testing.T, ts *testServer) serviceMap {
	t.Helper()
	q := url.Values{"start": {strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)},
		"end": {strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10)}}
	got, code := getJSON[jaegerResponse[serviceMap]](t, ts.httpURL+"/api/vigil/servicemap?"+q.Encode())
	if code != http.StatusOK {
		t.Fatalf("GET /api/vigil/servicemap: %d %+v", code, got)
	}
	return got.Data
}

// waitDependencies waits until /api/dependencies equals want.
func waitDependencies(t *testing.T, ts *testServer, want []dependency) {
	t.Helper()
	waitUntil(t, "dependencies", func() (bool, string) {
		got := dependencies(t, ts)
		return slices.Equal(got, want), fmt.Sprintf("dependencies %+v, want %+v", got, want)
	})
}

// seedFleet sends the seed's shape through the OTel SDK: a gateway
// calling three user-service instances, each querying PostgreSQL. Every
// failEvery-th call fails in user-service. It returns the trace ids sent
// and the number of failed calls.
func seedFleet(t *testing.T, ts *testServer, calls, failEvery int) (traceIDs []string, failed int) {
	t.Helper()
	ctx := context.Background()
	provider := func(service, instance string) trace.Tracer {
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(ts.grpcAddr), otlptracegrpc.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		res := resource.NewSchemaless(semconv.ServiceName(service), semconv.ServiceInstanceID(instance),
			attribute.String("deployment.environment", "demo"))
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(exp))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		return tp.Tracer("seed")
	}
	gateway := provider("gateway", "127.0.0.1:3000")
	var users []trace.Tracer
	for i := 1; i <= 3; i++ {
		users = append(users, provider("user-service", fmt.Sprintf("127.0.0.1:300%d", i)))
	}
	at := func(t0 time.Time, ms int) trace.SpanEventOption {
		return trace.WithTimestamp(t0.Add(time.Duration(ms) * time.Millisecond))
	}
	for i := 0; i < calls; i++ {
		t0 := time.Now()
		port := 3001 + i%3
		gctx, in := gateway.Start(ctx, "GET /api/users/:id", trace.WithSpanKind(trace.SpanKindServer), at(t0, 0),
			trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.String("http.route", "/api/users/:id")))
		cctx, out := gateway.Start(gctx, "GET", trace.WithSpanKind(trace.SpanKindClient), at(t0, 1),
			trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.String("server.address", "127.0.0.1"), attribute.Int("server.port", port)))
		sctx, srv := users[i%3].Start(cctx, "GET /users/"+strconv.Itoa(i), trace.WithSpanKind(trace.SpanKindServer), at(t0, 2),
			trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.String("http.route", "/users/:id")))
		_, db := users[i%3].Start(sctx, "SELECT users", trace.WithSpanKind(trace.SpanKindClient), at(t0, 3),
			trace.WithAttributes(attribute.String("db.system", "postgresql"), attribute.String("db.name", "users"),
				attribute.String("server.address", "127.0.0.1"), attribute.Int("server.port", 5432)))
		db.End(at(t0, 13))
		if i%failEvery == 0 {
			srv.SetStatus(codes.Error, "query failed")
			in.SetStatus(codes.Error, "upstream failed")
			failed++
		}
		srv.End(at(t0, 20))
		out.End(at(t0, 22))
		in.End(at(t0, 25))
		traceIDs = append(traceIDs, in.SpanContext().TraceID().String())
	}
	return traceIDs, failed
}

// TestServiceMapSeedTopology sends the seed's fleet through the OTel SDK
// and reads it back as Jaeger dependencies, the native map, the edge's
// traces and PromQL over the derived series.
func TestServiceMapSeedTopology(t *testing.T) {
	ts := startServer(t, pgtest.NewDatabase(t), fastDerive)
	const calls = 30
	traceIDs, failed := seedFleet(t, ts, calls, 6)

	waitDependencies(t, ts, []dependency{
		{Parent: "gateway", Child: "user-service", CallCount: calls},
		{Parent: "user", Child: "gateway", CallCount: calls},
		{Parent: "user-service", Child: "users", CallCount: calls},
	})

	m := readMap(t, ts)
	e, ok := m.edge("gateway", "user-service")
	if !ok || e.Calls != calls || e.Failed != int64(failed) || e.ConnectionType != "" {
		t.Fatalf("edge gateway → user-service: %+v (want %d calls, %d failed)", e, calls, failed)
	}
	// The server halves take 18 ms: the p95 is inside the (10 ms, 25 ms] bucket.
	if e.P95 == nil || *e.P95 <= 0.010 || *e.P95 > 0.025 {
		t.Errorf("edge p95 = %v, want within (0.010, 0.025]", e.P95)
	}
	if db, ok := m.edge("user-service", "users"); !ok || db.ConnectionType != "database" || db.Calls != calls {
		t.Errorf("database edge: %+v", db)
	}
	for id, kind := range map[string]string{"gateway": "service", "user-service": "service", "users": "database", "user": "user"} {
		if n, ok := m.node(id); !ok || n.Kind != kind {
			t.Errorf("node %s: %+v, want kind %s", id, n, kind)
		}
	}
	if n, _ := m.node("user-service"); n.Calls != calls || n.Errors != int64(failed) {
		t.Errorf("user-service RED: %+v, want %d calls and %d errors", n, calls, failed)
	}

	// The edge's example traces are traces that were sent.
	examples, code := getJSON[jaegerResponse[[]struct {
		TraceID string `json:"traceID"`
	}]](t, ts.httpURL+"/api/vigil/servicemap/traces?client=gateway&server=user-service&start="+
		strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10))
	if code != http.StatusOK || len(examples.Data) == 0 {
		t.Fatalf("edge traces: %d %+v", code, examples)
	}
	for _, ex := range examples.Data {
		if !slices.Contains(traceIDs, ex.TraceID) {
			t.Errorf("edge trace %s was not sent", ex.TraceID)
		}
	}

	// PromQL over the derived series: the seed-style queries.
	vec := func(q string) map[string]float64 {
		t.Helper()
		resp, code := getJSON[promVector](t, ts.httpURL+"/api/v1/query?query="+url.QueryEscape(q))
		if code != http.StatusOK || resp.Status != "success" {
			t.Fatalf("%s: %d %+v", q, code, resp)
		}
		out := map[string]float64{}
		for _, r := range resp.Data.Result {
			v, _ := strconv.ParseFloat(fmt.Sprint(r.Value[1]), 64)
			out[r.Metric["service_name"]] = v
		}
		return out
	}
	if got := vec(`sum by (service_name) (traces_span_metrics_calls{span_kind="SPAN_KIND_SERVER"})`); got["gateway"] != calls || got["user-service"] != calls {
		t.Errorf("server calls per service: %v, want %d each", got, calls)
	}
	if got := vec(`sum by (service_name) (traces_span_metrics_calls{span_kind="SPAN_KIND_SERVER", status_code="STATUS_CODE_ERROR"})`); got["user-service"] != float64(failed) {
		t.Errorf("server errors per service: %v, want %d", got, failed)
	}
	if got := vec(`sum by (service_name) (rate(traces_span_metrics_calls[1m]))`); got["gateway"] <= 0 || got["user-service"] <= 0 {
		t.Errorf("call rates: %v", got)
	}
	p95 := vec(`histogram_quantile(0.95, sum by (le, service_name) (rate(traces_span_metrics_duration_bucket{service_name="user-service", span_kind="SPAN_KIND_SERVER"}[1m])))`)
	if v := p95["user-service"]; v <= 10 || v > 25 {
		t.Errorf("user-service p95 = %v ms, want within (10, 25]", v)
	}
	if got := vec(`sum by (client, server) (traces_service_graph_request_total{client="gateway"})`); len(got) != 1 {
		t.Errorf("service-graph series: %v", got)
	}
	// When each service last sent anything (the liveness rule's series).
	if got := vec(`time() - max by (service_name) (vigil_service_last_seen_timestamp_seconds)`); len(got) != 2 ||
		got["gateway"] < 0 || got["gateway"] > 60 || got["user-service"] > 60 {
		t.Errorf("seconds since last seen: %v", got)
	}
	if got := vec(`count by (service_name) (vigil_service_last_seen_timestamp_seconds{service_name="user-service"})`); got["user-service"] != 3 {
		t.Errorf("user-service instances seen: %v, want 3", got)
	}
}

// TestServiceMapPairing checks the pairing cases a single request does
// not show: halves in separate requests, in reverse order, seconds apart;
// a call to a peer nobody instruments; halves sent to two Vigil processes
// on one database.
func TestServiceMapPairing(t *testing.T) {
	db := pgtest.NewDatabase(t)
	// Halves wait 7 s in memory (the reverse-order pair is 5 s apart),
	// then 10 s in the database for a half another process parked.
	slowPairing := func(c *Config) {
		c.Derive.PairingTimeout = 7 * time.Second
		c.Derive.SharedPairingTimeout = 10 * time.Second
	}
	a := startServer(t, db, fastDerive, slowPairing)
	b := startServer(t, db, fastDerive, slowPairing)
	ctx := context.Background()
	tracer := func(ts *testServer, service string) trace.Tracer {
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(ts.grpcAddr), otlptracegrpc.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		return sdkProvider(t, exp, service).Tracer("pairing")
	}

	// Reverse order, 5 s apart, one process: the server half is exported
	// first (it ends first), the client half 5 s later.
	cctx, out := tracer(a, "orders").Start(ctx, "POST /pay", trace.WithSpanKind(trace.SpanKindClient))
	_, in := tracer(a, "payments").Start(cctx, "POST /pay", trace.WithSpanKind(trace.SpanKindServer))
	in.End()
	time.Sleep(5 * time.Second)
	out.End()

	// Two processes: the client half to a, the server half to b.
	cctx, out2 := tracer(a, "cart").Start(ctx, "GET /stock", trace.WithSpanKind(trace.SpanKindClient))
	_, in2 := tracer(b, "stock").Start(cctx, "GET /stock", trace.WithSpanKind(trace.SpanKindServer))
	out2.End()
	in2.End()

	// A call to a peer nobody instruments.
	_, ext := tracer(b, "cart").Start(ctx, "POST", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("server.address", "api.payments.example")))
	ext.End()

	want := []dependency{
		{Parent: "cart", Child: "api.payments.example", CallCount: 1},
		{Parent: "cart", Child: "stock", CallCount: 1},
		{Parent: "orders", Child: "payments", CallCount: 1},
	}
	waitDependencies(t, a, want)
	waitDependencies(t, b, want)
	m := readMap(t, b)
	if n, ok := m.node("api.payments.example"); !ok || n.Kind != "peer" {
		t.Errorf("uninstrumented peer: %+v", n)
	}
	if e, _ := m.edge("cart", "api.payments.example"); e.ConnectionType != "virtual_node" {
		t.Errorf("edge to the peer: %+v", e)
	}
	if e, _ := m.edge("cart", "stock"); e.Calls != 1 || e.ConnectionType != "" {
		t.Errorf("edge across processes: %+v", e)
	}
}

// TestServiceMapJaegerAndZipkinInputs sends one topology as OTLP, as
// Jaeger thrift over HTTP and as Zipkin v2 JSON, each to its own Vigil,
// and expects the same dependencies and failed counts from each.
func TestServiceMapJaegerAndZipkinInputs(t *testing.T) {
	const calls = 6
	want := []dependency{
		{Parent: "gateway", Child: "user-service", CallCount: calls},
		{Parent: "user", Child: "gateway", CallCount: calls},
		{Parent: "user-service", Child: "users", CallCount: calls},
	}
	withJaeger := func(c *Config) {
		c.Jaeger = JaegerConfig{HTTPAddress: "127.0.0.1:0"}
		c.Zipkin = ZipkinConfig{Address: "127.0.0.1:0"}
	}

	otlpSrv := startServer(t, pgtest.NewDatabase(t), fastDerive)
	_, failed := seedFleet(t, otlpSrv, calls, 3)

	jaegerSrv := startServer(t, pgtest.NewDatabase(t), fastDerive, withJaeger)
	postThrift(t, jaegerSrv, calls, 3)

	zipkinSrv := startServer(t, pgtest.NewDatabase(t), fastDerive, withJaeger)
	postZipkin(t, zipkinSrv, calls, 3)

	for name, ts := range map[string]*testServer{"otlp": otlpSrv, "jaeger": jaegerSrv, "zipkin": zipkinSrv} {
		t.Run(name, func(t *testing.T) {
			waitDependencies(t, ts, want)
			e, _ := readMap(t, ts).edge("gateway", "user-service")
			if e.Calls != calls || e.Failed != int64(failed) {
				t.Errorf("edge %+v, want %d calls, %d failed", e, calls, failed)
			}
		})
	}
}

// fleetIDs are the ids of call i of the fixed topology: trace, and the
// gateway's server and client spans, user-service's server and database spans.
func fleetIDs(i int) (traceHigh, traceLow, gwIn, gwOut, usIn, usDB int64) {
	base := int64(i+1) << 8
	return 0x0a0b0c0d, 0x1000 + int64(i), base | 1, base | 2, base | 3, base | 4
}

// postThrift sends the fixed topology as Jaeger thrift batches over HTTP.
func postThrift(t *testing.T, ts *testServer, calls, failEvery int) {
	t.Helper()
	str := func(k, v string) *jaegerthrift.Tag {
		return &jaegerthrift.Tag{Key: k, VType: jaegerthrift.TagType_STRING, VStr: &v}
	}
	yes := true
	gw := &jaegerthrift.Batch{Process: &jaegerthrift.Process{ServiceName: "gateway"}}
	us := &jaegerthrift.Batch{Process: &jaegerthrift.Process{ServiceName: "user-service"}}
	t0 := time.Now().Add(-time.Second).UnixMicro()
	for i := 0; i < calls; i++ {
		hi, lo, gwIn, gwOut, usIn, usDB := fleetIDs(i)
		span := func(id, parent int64, name, kind string, startUS, durUS int64, tags ...*jaegerthrift.Tag) *jaegerthrift.Span {
			return &jaegerthrift.Span{TraceIdHigh: hi, TraceIdLow: lo, SpanId: id, ParentSpanId: parent, OperationName: name,
				StartTime: t0 + startUS, Duration: durUS, Tags: append([]*jaegerthrift.Tag{str("span.kind", kind)}, tags...)}
		}
		srv := span(usIn, gwOut, "GET /users/:id", "server", 2000, 18000)
		if i%failEvery == 0 {
			srv.Tags = append(srv.Tags, &jaegerthrift.Tag{Key: "error", VType: jaegerthrift.TagType_BOOL, VBool: &yes})
		}
		gw.Spans = append(gw.Spans, span(gwIn, 0, "GET /api/users/:id", "server", 0, 25000),
			span(gwOut, gwIn, "GET", "client", 1000, 21000))
		us.Spans = append(us.Spans, srv,
			span(usDB, usIn, "SELECT users", "client", 3000, 10000, str("db.system", "postgresql"), str("db.name", "users")))
	}
	for _, b := range []*jaegerthrift.Batch{us, gw} {
		body, err := thrift.NewTSerializer().Write(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post("http://"+ts.jaeger.HTTPAddr()+"/api/traces", "application/x-thrift", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
			t.Fatalf("jaeger post: %d", resp.StatusCode)
		}
	}
}

// postZipkin sends the fixed topology as Zipkin v2 JSON.
func postZipkin(t *testing.T, ts *testServer, calls, failEvery int) {
	t.Helper()
	hex := func(v int64) string {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(v))
		return fmt.Sprintf("%x", b)
	}
	t0 := time.Now().Add(-time.Second).UnixMicro()
	var spans []map[string]any
	for i := 0; i < calls; i++ {
		hi, lo, gwIn, gwOut, usIn, usDB := fleetIDs(i)
		span := func(id, parent int64, service, name, kind string, startUS, durUS int64, tags map[string]string) map[string]any {
			s := map[string]any{"traceId": hex(hi) + hex(lo), "id": hex(id), "name": name, "kind": kind,
				"timestamp": t0 + startUS, "duration": durUS, "localEndpoint": map[string]string{"serviceName": service}}
			if parent != 0 {
				s["parentId"] = hex(parent)
			}
			if tags != nil {
				s["tags"] = tags
			}
			return s
		}
		var srvTags map[string]string
		if i%failEvery == 0 {
			srvTags = map[string]string{"error": "query failed"}
		}
		spans = append(spans,
			span(gwIn, 0, "gateway", "GET /api/users/:id", "SERVER", 0, 25000, nil),
			span(gwOut, gwIn, "gateway", "GET", "CLIENT", 1000, 21000, nil),
			span(usIn, gwOut, "user-service", "GET /users/:id", "SERVER", 2000, 18000, srvTags),
			span(usDB, usIn, "user-service", "SELECT users", "CLIENT", 3000, 10000, map[string]string{"db.system": "postgresql", "db.name": "users"}))
	}
	body, err := json.Marshal(spans)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+ts.jaeger.ZipkinAddr()+"/api/v2/spans", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("zipkin post: %d", resp.StatusCode)
	}
}

// startDemo builds the reference client's demo fleet, runs it against
// ts and makes every user-service instance fail every request, so that
// the gateway's client opens its circuit breakers.
func startDemo(t *testing.T, ts *testServer) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil-demo")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vigil-demo")
	build.Dir = filepath.Join("..", "..", "client")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build vigil-demo: %v\n%s", err, out)
	}
	gateway := freePort(t)
	users := []string{freePort(t), freePort(t), freePort(t)}
	ctx, cancel := context.WithCancel(context.Background())
	demo := exec.CommandContext(ctx, bin, "-otlp-endpoint", ts.grpcAddr, "-gateway-addr", gateway,
		"-user-addrs", strings.Join(users, ","), "-load", "30", "-metric-interval", "1s", "-log-level", "warn")
	var out strings.Builder
	demo.Stdout, demo.Stderr = &out, &out
	if err := demo.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = demo.Wait()
		if t.Failed() {
			t.Logf("vigil-demo output:\n%s", out.String())
		}
	})
	// Some healthy traffic first, then every instance fails.
	waitUntil(t, "demo traffic on the map", func() (bool, string) {
		e, ok := readMap(t, ts).edge("gateway", "user-service")
		return ok && e.Calls > 0, fmt.Sprintf("%+v", e)
	})
	for i := 1; i <= len(users); i++ {
		resp, err := http.Post(fmt.Sprintf("http://%s/admin/fault?instance=%d&mode=fail&rate=1", gateway, i), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("fault on instance %d: %d", i, resp.StatusCode)
		}
	}
}

// TestServiceMapUIBrowser opens the map the demo fleet draws: the landing
// page shows the gateway, user-service and the edge between them, with
// the breaker the gateway opened when user-service failed; clicking the
// edge lists its traces; the page renders in Chinese.
func TestServiceMapUIBrowser(t *testing.T) {
	requireUI(t)
	chromium := chromiumPath(t)
	ts := startServer(t, pgtest.NewDatabase(t), fastDerive)
	startDemo(t, ts)

	// The API first: the edge, with the breaker the gateway opened.
	var open mapMark
	waitUntil(t, "breaker mark on the map", func() (bool, string) {
		e, _ := readMap(t, ts).edge("gateway", "user-service")
		for _, mk := range e.Marks {
			if mk.Kind == "breaker_open" {
				open = mk
				return true, ""
			}
		}
		return false, fmt.Sprintf("edge %+v", e)
	})
	// The mark names the instance whose breaker opened, or the service.
	named := open.Instance
	if named == "" {
		named = "user-service"
	}

	b := newBrowser(t, chromium)
	b.do(t, chromedp.Navigate(ts.httpURL+"/"))
	b.waitFor(t, `!!document.querySelector('.servicemap-page [data-node="gateway"]') && !!document.querySelector('[data-node="user-service"]')`)
	edge := `[data-edge="gateway->user-service"]`
	b.waitFor(t, fmt.Sprintf(`(() => { const e = document.querySelector('%s'); return e && [...document.querySelectorAll('[data-mark="breaker_open"]')].some((m) => m.textContent.includes(%q)); })()`, edge, named))
	b.screenshot(t, "servicemap")

	// Clicking the edge lists its traces, each a link to a trace sent by the fleet.
	_ = eval[chromedp.Void](t, b, fmt.Sprintf(`document.querySelector('%s').dispatchEvent(new MouseEvent('click', { bubbles: true }))`, edge))
	b.waitFor(t, `document.querySelectorAll('[data-panel="edge"] [data-edge-trace]').length > 0`)
	traceID := eval[string](t, b, `document.querySelector('[data-panel="edge"] [data-edge-trace]').getAttribute('data-edge-trace')`)
	got, code := getJSON[jaegerResponse[[]jTrace]](t, ts.httpURL+"/api/traces/"+traceID)
	if code != http.StatusOK || len(got.Data) != 1 {
		t.Fatalf("edge trace %s: %d %+v", traceID, code, got)
	}
	services := map[string]bool{}
	for _, p := range got.Data[0].Processes {
		services[p.ServiceName] = true
	}
	if !services["gateway"] || !services["user-service"] {
		t.Errorf("edge trace %s holds services %v", traceID, services)
	}
	b.screenshot(t, "servicemap-edge")

	// The services list is one click away.
	b.do(t, chromedp.Click(chromedp.CSS(`[data-nav="services"]`)))
	b.waitFor(t, `location.pathname === '/services' && [...document.querySelectorAll('.services-table .service-name')].some((e) => e.textContent === 'gateway')`)

	// In Chinese.
	b.do(t, chromedp.Navigate(ts.httpURL+"/"))
	b.waitFor(t, `!!document.querySelector('[data-node="gateway"]')`)
	_ = eval[chromedp.Void](t, b, `(() => { const s = document.querySelector('.lang-select'); s.value = 'zh-CN'; s.dispatchEvent(new Event('change', { bubbles: true })); })()`)
	b.waitFor(t, `document.querySelector('[data-nav="map"]')?.textContent !== 'Map' && /[\u4e00-\u9fff]/.test(document.querySelector('.servicemap-page h1')?.textContent ?? '') &&
		[...document.querySelectorAll('[data-mark="breaker_open"]')].some((m) => /[\u4e00-\u9fff]/.test(m.textContent))`)
	b.screenshot(t, "servicemap-zh")
}
