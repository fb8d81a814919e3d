package otlp

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/internal/auth"
)

var (
	sdkTraceID = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	sdkSpanID  = trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	sdkParent  = trace.SpanID{0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8a, 0xd8}
	sdkLinkTID = trace.TraceID{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01}
	sdkLinkSID = trace.SpanID{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}
)

// sdkSpans returns two spans as the OTel SDK would export them: a server
// span carrying every kind of field, and a plain client child.
func sdkSpans(now time.Time) tracetest.SpanStubs {
	res := resource.NewSchemaless(
		attribute.String("service.name", "checkout"),
		attribute.String("host.name", "node-1"),
	)
	scope := instrumentation.Scope{
		Name:       "github.com/vigil-obs/demo",
		Version:    "1.2.3",
		Attributes: attribute.NewSet(attribute.String("scope.attr", "s")),
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: sdkTraceID, SpanID: sdkSpanID, TraceFlags: trace.FlagsSampled})
	return tracetest.SpanStubs{
		{
			Name:        "POST /cart/checkout",
			SpanContext: sc,
			Parent:      trace.NewSpanContext(trace.SpanContextConfig{TraceID: sdkTraceID, SpanID: sdkParent, Remote: true}),
			SpanKind:    trace.SpanKindServer,
			StartTime:   now.Add(-250 * time.Millisecond),
			EndTime:     now,
			Attributes: []attribute.KeyValue{
				attribute.String("http.request.method", "POST"),
				attribute.Int64("http.response.status_code", 500),
				attribute.Bool("retry", true),
				attribute.Float64("ratio", 0.25),
				attribute.StringSlice("tags", []string{"a", "b"}),
				attribute.String("用户", "张三"),
			},
			Events: []sdktrace.Event{{
				Name:       "exception",
				Time:       now.Add(-10 * time.Millisecond),
				Attributes: []attribute.KeyValue{attribute.String("exception.message", "payment declined")},
			}},
			Links: []sdktrace.Link{{
				SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: sdkLinkTID, SpanID: sdkLinkSID}),
				Attributes:  []attribute.KeyValue{attribute.String("link.kind", "follows")},
			}},
			Status:               sdktrace.Status{Code: otelcodes.Error, Description: "payment declined"},
			Resource:             res,
			InstrumentationScope: scope,
		},
		{
			Name:                 "SELECT carts",
			SpanContext:          trace.NewSpanContext(trace.SpanContextConfig{TraceID: sdkTraceID, SpanID: trace.SpanID{9, 9, 9, 9, 9, 9, 9, 9}}),
			Parent:               sc,
			SpanKind:             trace.SpanKindClient,
			StartTime:            now.Add(-200 * time.Millisecond),
			EndTime:              now.Add(-150 * time.Millisecond),
			Resource:             res,
			InstrumentationScope: scope,
		},
	}
}

func TestSDKExporters(t *testing.T) {
	const token = "s3cret-token"
	tests := []struct {
		name     string
		protocol string
		exporter func(ctx context.Context, b *bundle) (sdktrace.SpanExporter, error)
	}{
		{
			name: "grpc", protocol: ingest.ProtocolOTLPGRPC,
			exporter: func(ctx context.Context, b *bundle) (sdktrace.SpanExporter, error) {
				return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(b.r.GRPCAddr()), otlptracegrpc.WithInsecure(),
					otlptracegrpc.WithHeaders(map[string]string{"authorization": "Bearer " + token}))
			},
		},
		{
			name: "grpc gzip", protocol: ingest.ProtocolOTLPGRPC,
			exporter: func(ctx context.Context, b *bundle) (sdktrace.SpanExporter, error) {
				return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(b.r.GRPCAddr()), otlptracegrpc.WithInsecure(),
					otlptracegrpc.WithCompressor("gzip"),
					otlptracegrpc.WithHeaders(map[string]string{"authorization": "Bearer " + token}))
			},
		},
		{
			name: "http protobuf", protocol: ingest.ProtocolOTLPHTTP,
			exporter: func(ctx context.Context, b *bundle) (sdktrace.SpanExporter, error) {
				return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(b.r.HTTPAddr()), otlptracehttp.WithInsecure(),
					otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + token}))
			},
		},
		{
			name: "http protobuf gzip", protocol: ingest.ProtocolOTLPHTTP,
			exporter: func(ctx context.Context, b *bundle) (sdktrace.SpanExporter, error) {
				return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(b.r.HTTPAddr()), otlptracehttp.WithInsecure(),
					otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
					otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + token}))
			},
		},
		{
			name: "http json", protocol: ingest.ProtocolOTLPHTTP,
			exporter: func(ctx context.Context, b *bundle) (sdktrace.SpanExporter, error) {
				return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(b.r.HTTPAddr()), otlptracehttp.WithInsecure(),
					otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON),
					otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + token}))
			},
		},
		{
			name: "http json gzip", protocol: ingest.ProtocolOTLPHTTP,
			exporter: func(ctx context.Context, b *bundle) (sdktrace.SpanExporter, error) {
				return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(b.r.HTTPAddr()), otlptracehttp.WithInsecure(),
					otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON),
					otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
					otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + token}))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokens, err := auth.NewTokens([]string{"other", token})
			if err != nil {
				t.Fatal(err)
			}
			b := setup(t, func(_ *Config, o *Options) { o.Auth = tokens })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			exp, err := tt.exporter(ctx, b)
			if err != nil {
				t.Fatalf("new exporter: %v", err)
			}
			now := time.Now().Truncate(time.Microsecond)
			err = exp.ExportSpans(ctx, sdkSpans(now).Snapshots())
			if shutErr := exp.Shutdown(ctx); shutErr != nil {
				t.Errorf("exporter shutdown: %v", shutErr)
			}
			if err != nil {
				t.Fatalf("ExportSpans: %v", err)
			}
			checkSDKSpans(t, recordedSpans(b.rec), now)
			if got := b.counter(t, "vigil_ingest_spans_stored_total", map[string]string{"protocol": tt.protocol}); got != 2 {
				t.Errorf("stored counter = %v, want 2", got)
			}
			if got := b.counter(t, "vigil_ingest_spans_received_total", map[string]string{"protocol": tt.protocol}); got != 2 {
				t.Errorf("received counter = %v, want 2", got)
			}
		})
	}
}

func checkSDKSpans(t *testing.T, got []recordedSpan, now time.Time) {
	t.Helper()
	if len(got) != 2 {
		t.Fatalf("consumer got %d spans, want 2", len(got))
	}
	s := got[0]
	if s.span.Name() != "POST /cart/checkout" {
		s = got[1]
	}
	sp := s.span
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("name", sp.Name(), "POST /cart/checkout")
	check("trace id", sp.TraceID(), pcommon.TraceID(sdkTraceID))
	check("span id", sp.SpanID(), pcommon.SpanID(sdkSpanID))
	check("parent span id", sp.ParentSpanID(), pcommon.SpanID(sdkParent))
	check("kind", sp.Kind(), ptrace.SpanKindServer)
	check("start", sp.StartTimestamp().AsTime(), now.Add(-250*time.Millisecond).UTC())
	check("end", sp.EndTimestamp().AsTime(), now.UTC())
	check("status code", sp.Status().Code(), ptrace.StatusCodeError)
	check("status message", sp.Status().Message(), "payment declined")
	wantAttrs := map[string]any{
		"http.request.method":       "POST",
		"http.response.status_code": int64(500),
		"retry":                     true,
		"ratio":                     0.25,
		"tags":                      []any{"a", "b"},
		"用户":                        "张三",
	}
	gotAttrs := sp.Attributes().AsRaw()
	if len(gotAttrs) != len(wantAttrs) {
		t.Errorf("attributes = %v, want %v", gotAttrs, wantAttrs)
	}
	for k, want := range wantAttrs {
		g := gotAttrs[k]
		if ws, ok := want.([]any); ok {
			gs, _ := g.([]any)
			if !slices.Equal(gs, ws) {
				t.Errorf("attribute %s = %v, want %v", k, g, want)
			}
			continue
		}
		if g != want {
			t.Errorf("attribute %s = %#v, want %#v", k, g, want)
		}
	}
	if sp.Events().Len() != 1 {
		t.Fatalf("events = %d, want 1", sp.Events().Len())
	}
	ev := sp.Events().At(0)
	check("event name", ev.Name(), "exception")
	check("event time", ev.Timestamp().AsTime(), now.Add(-10*time.Millisecond).UTC())
	check("event attribute", ev.Attributes().AsRaw()["exception.message"], "payment declined")
	if sp.Links().Len() != 1 {
		t.Fatalf("links = %d, want 1", sp.Links().Len())
	}
	l := sp.Links().At(0)
	check("link trace id", l.TraceID(), pcommon.TraceID(sdkLinkTID))
	check("link span id", l.SpanID(), pcommon.SpanID(sdkLinkSID))
	check("link attribute", l.Attributes().AsRaw()["link.kind"], "follows")
	check("scope name", s.scope.Name(), "github.com/vigil-obs/demo")
	check("scope version", s.scope.Version(), "1.2.3")
	check("scope attribute", s.scope.Attributes().AsRaw()["scope.attr"], "s")
	check("service.name", s.resource.Attributes().AsRaw()["service.name"], "checkout")
	check("host.name", s.resource.Attributes().AsRaw()["host.name"], "node-1")

	child := got[0]
	if child.span.Name() != "SELECT carts" {
		child = got[1]
	}
	check("child kind", child.span.Kind(), ptrace.SpanKindClient)
	check("child parent", child.span.ParentSpanID(), pcommon.SpanID(sdkSpanID))
}

func TestSDKExportersRefusedWithoutToken(t *testing.T) {
	tokens, err := auth.NewTokens([]string{"right"})
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, func(_ *Config, o *Options) { o.Auth = tokens })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	grpcExp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(b.r.GRPCAddr()), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithHeaders(map[string]string{"authorization": "Bearer wrong"}),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	httpExp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(b.r.HTTPAddr()), otlptracehttp.WithInsecure(),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	for name, exp := range map[string]sdktrace.SpanExporter{"grpc": grpcExp, "http": httpExp} {
		if err := exp.ExportSpans(ctx, sdkSpans(time.Now()).Snapshots()); err == nil {
			t.Errorf("%s: ExportSpans succeeded without a valid token", name)
		}
		if err := exp.Shutdown(ctx); err != nil {
			t.Errorf("%s: shutdown: %v", name, err)
		}
	}
	if n := b.rec.Calls(); n != 0 {
		t.Fatalf("consumer called %d times", n)
	}
}
