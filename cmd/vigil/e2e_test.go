package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-obs/vigil/ingest/jaeger"
	"github.com/vigil-obs/vigil/internal/pgtest"
)

// testServer is a running Vigil on loopback ports over dbURL.
type testServer struct {
	httpURL  string
	grpcAddr string
	otlpHTTP string
	jaeger   *jaeger.Receiver
	registry string // the Consul API's address, "" when off
	stop     func()
}

func startServer(t testing.TB, dbURL string, mutate ...func(*Config)) *testServer {
	t.Helper()
	cfg := defaultConfig()
	cfg.DB = dbURL
	cfg.HTTP.Address = "127.0.0.1:0"
	cfg.OTLP = OTLPConfig{GRPCAddress: "127.0.0.1:0", HTTPAddress: "127.0.0.1:0"}
	cfg.Jaeger, cfg.Zipkin = JaegerConfig{}, ZipkinConfig{}
	cfg.Registry.Address = ""
	cfg.Limits.MaxAge = time.Duration(cfg.Retention)
	for _, m := range mutate {
		m(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := newServer(ctx, cfg, logger)
	if err != nil {
		cancel()
		t.Fatalf("start vigil: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	ts := &testServer{
		httpURL: "http://" + s.http.Addr(), grpcAddr: s.rcv.GRPCAddr(), otlpHTTP: s.rcv.HTTPAddr(), jaeger: s.jaeger,
	}
	if s.registrySrv != nil {
		ts.registry = s.registrySrv.ln.Addr().String()
	}
	stopped := false
	ts.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("vigil run: %v", err)
		}
	}
	t.Cleanup(ts.stop)
	return ts
}

// jaegerResponse is the envelope of the Jaeger query API.
type jaegerResponse[T any] struct {
	Data   T     `json:"data"`
	Total  int   `json:"total"`
	Errors []any `json:"errors"`
}

type jTag struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

type jSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64  `json:"startTime"`
	Duration  int64  `json:"duration"`
	Tags      []jTag `json:"tags"`
	Logs      []struct {
		Timestamp int64  `json:"timestamp"`
		Fields    []jTag `json:"fields"`
	} `json:"logs"`
	ProcessID string `json:"processID"`
}

type jTrace struct {
	TraceID   string  `json:"traceID"`
	Spans     []jSpan `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
		Tags        []jTag `json:"tags"`
	} `json:"processes"`
}

func getJSON[T any](t *testing.T, u string) (T, int) {
	t.Helper()
	var out T
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET %s: decode %q: %v", u, body, err)
	}
	return out, resp.StatusCode
}

func tagValue(tags []jTag, key string) (any, bool) {
	for _, tg := range tags {
		if tg.Key == key {
			return tg.Value, true
		}
	}
	return nil, false
}

// sdkProvider returns a tracer provider for one service exporting to the
// given exporter synchronously, so every span is exported when it ends.
func sdkProvider(t *testing.T, exp sdktrace.SpanExporter, service string) *sdktrace.TracerProvider {
	t.Helper()
	res := resource.NewSchemaless(semconv.ServiceName(service), attribute.String("host.name", service+"-host"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

func TestOTLPSDKToJaegerAPI(t *testing.T) {
	ts := startServer(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	grpcExp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(ts.grpcAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	httpExp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(ts.otlpHTTP), otlptracehttp.WithInsecure(),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	if err != nil {
		t.Fatal(err)
	}
	// The gateway exports over gRPC, the user service over HTTP.
	gateway := sdkProvider(t, grpcExp, "gateway").Tracer("gateway-http", trace.WithInstrumentationVersion("1.0.0"))
	users := sdkProvider(t, httpExp, "user-service").Tracer("users-db")

	type sent struct {
		traceID   string
		rootID    string
		childID   string
		status    int
		slow      bool
		linkTrace string
	}
	var all []sent
	for i := 0; i < 6; i++ {
		status := 200
		if i%3 == 0 {
			status = 500
		}
		rctx, root := gateway.Start(ctx, "GET /users/:id", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", status),
				attribute.StringSlice("tags", []string{"a", "b"}), attribute.Float64("ratio", 0.5), attribute.Bool("cached", false)))
		_, other := gateway.Start(ctx, "background")
		other.End()
		cctx, child := users.Start(rctx, "SELECT users", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithLinks(trace.Link{SpanContext: other.SpanContext(), Attributes: []attribute.KeyValue{attribute.String("link.kind", "cause")}}),
			trace.WithAttributes(attribute.String("db.system", "postgresql")))
		_ = cctx
		child.AddEvent("query sent", trace.WithAttributes(attribute.Int("rows", 3)))
		if i == 4 {
			time.Sleep(60 * time.Millisecond)
		}
		child.End()
		if status == 500 {
			root.SetStatus(codes.Error, "upstream failed")
			root.RecordError(fmt.Errorf("boom %d", i))
		}
		root.End()
		all = append(all, sent{
			traceID: root.SpanContext().TraceID().String(), rootID: root.SpanContext().SpanID().String(),
			childID: child.SpanContext().SpanID().String(), status: status, slow: i == 4,
			linkTrace: other.SpanContext().TraceID().String(),
		})
	}

	for _, s := range all {
		resp, code := getJSON[jaegerResponse[[]jTrace]](t, ts.httpURL+"/api/traces/"+s.traceID)
		if code != 200 || len(resp.Data) != 1 {
			t.Fatalf("trace %s: status %d, %d traces, errors %v", s.traceID, code, len(resp.Data), resp.Errors)
		}
		tr := resp.Data[0]
		if tr.TraceID != s.traceID || len(tr.Spans) != 2 {
			t.Fatalf("trace %s: got id %s with %d spans", s.traceID, tr.TraceID, len(tr.Spans))
		}
		byID := map[string]jSpan{}
		for _, sp := range tr.Spans {
			byID[sp.SpanID] = sp
		}
		root, child := byID[s.rootID], byID[s.childID]
		if root.OperationName != "GET /users/:id" || child.OperationName != "SELECT users" {
			t.Fatalf("operations %q / %q", root.OperationName, child.OperationName)
		}
		if tr.Processes[root.ProcessID].ServiceName != "gateway" || tr.Processes[child.ProcessID].ServiceName != "user-service" {
			t.Fatalf("processes %+v", tr.Processes)
		}
		if v, _ := tagValue(tr.Processes[root.ProcessID].Tags, "host.name"); v != "gateway-host" {
			t.Errorf("process tag host.name = %v", v)
		}
		var childOf, follows bool
		for _, r := range child.References {
			if r.RefType == "CHILD_OF" && r.SpanID == s.rootID && r.TraceID == s.traceID {
				childOf = true
			}
			if r.RefType == "FOLLOWS_FROM" && r.TraceID == s.linkTrace {
				follows = true
			}
		}
		if !childOf || !follows {
			t.Errorf("child references %+v: child_of=%v follows_from(link)=%v", child.References, childOf, follows)
		}
		if v, _ := tagValue(root.Tags, "span.kind"); v != "server" {
			t.Errorf("root span.kind = %v", v)
		}
		if v, _ := tagValue(root.Tags, "http.response.status_code"); v != float64(s.status) {
			t.Errorf("root status code tag = %v (%T), want %d", v, v, s.status)
		}
		if v, _ := tagValue(root.Tags, "otel.scope.name"); v != "gateway-http" {
			t.Errorf("scope name tag = %v", v)
		}
		if v, _ := tagValue(root.Tags, "otel.scope.version"); v != "1.0.0" {
			t.Errorf("scope version tag = %v", v)
		}
		if s.status == 500 {
			if v, _ := tagValue(root.Tags, "error"); v != true {
				t.Errorf("error tag = %v", v)
			}
			if v, _ := tagValue(root.Tags, "otel.status_description"); v != "upstream failed" {
				t.Errorf("status description = %v", v)
			}
			if len(root.Logs) != 1 {
				t.Errorf("root logs (exception event) = %+v", root.Logs)
			}
		}
		found := false
		for _, l := range child.Logs {
			if v, _ := tagValue(l.Fields, "event"); v == "query sent" {
				found = true
				if v, _ := tagValue(l.Fields, "rows"); v != float64(3) {
					t.Errorf("event attribute rows = %v", v)
				}
			}
		}
		if !found {
			t.Errorf("child logs lack the span event: %+v", child.Logs)
		}
	}

	// Services and operations.
	svcs, _ := getJSON[jaegerResponse[[]string]](t, ts.httpURL+"/api/services")
	sort.Strings(svcs.Data)
	if strings.Join(svcs.Data, ",") != "gateway,user-service" {
		t.Fatalf("services = %v", svcs.Data)
	}
	ops, _ := getJSON[jaegerResponse[[]string]](t, ts.httpURL+"/api/services/gateway/operations")
	sort.Strings(ops.Data)
	if strings.Join(ops.Data, ",") != "GET /users/:id,background" {
		t.Fatalf("operations = %v", ops.Data)
	}
	kops, _ := getJSON[jaegerResponse[[]struct {
		Name     string `json:"name"`
		SpanKind string `json:"spanKind"`
	}]](t, ts.httpURL+"/api/operations?service=user-service&spanKind=client")
	if len(kops.Data) != 1 || kops.Data[0].Name != "SELECT users" || kops.Data[0].SpanKind != "client" {
		t.Fatalf("operations by kind = %+v", kops.Data)
	}

	// Search finds exactly the right traces.
	want := func(pred func(sent) bool) []string {
		var out []string
		for _, s := range all {
			if pred(s) {
				out = append(out, s.traceID)
			}
		}
		sort.Strings(out)
		return out
	}
	search := func(q url.Values) []string {
		resp, code := getJSON[jaegerResponse[[]jTrace]](t, ts.httpURL+"/api/traces?"+q.Encode())
		if code != 200 {
			t.Fatalf("search %v: status %d errors %v", q, code, resp.Errors)
		}
		var out []string
		for _, tr := range resp.Data {
			out = append(out, tr.TraceID)
		}
		sort.Strings(out)
		return out
	}
	cases := []struct {
		name string
		q    url.Values
		want []string
	}{
		{"service", url.Values{"service": {"user-service"}, "lookback": {"1h"}}, want(func(sent) bool { return true })},
		{"operation", url.Values{"service": {"gateway"}, "operation": {"GET /users/:id"}}, want(func(sent) bool { return true })},
		{"tags json", url.Values{"service": {"gateway"}, "tags": {`{"http.response.status_code":"500"}`}}, want(func(s sent) bool { return s.status == 500 })},
		{"error tag", url.Values{"service": {"gateway"}, "tags": {`{"error":"true"}`}}, want(func(s sent) bool { return s.status == 500 })},
		{"min duration", url.Values{"service": {"user-service"}, "minDuration": {"50ms"}}, want(func(s sent) bool { return s.slow })},
		{"limit", url.Values{"service": {"user-service"}, "limit": {"2"}}, nil},
	}
	for _, c := range cases {
		got := search(c.q)
		if c.name == "limit" {
			if len(got) != 2 {
				t.Errorf("limit 2: got %d traces", len(got))
			}
			continue
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("search %s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
