package jaeger

import (
	"testing"
	"time"

	"github.com/jaegertracing/jaeger-idl/model/v1"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	zipkinmodel "github.com/openzipkin/zipkin-go/model"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// tagCase is one span's tags as sent and what must be stored.
type tagCase struct {
	name       string
	tags       []model.KeyValue
	kind       string
	wantAttrs  map[string]any
	wantStatus ptrace.StatusCode
}

var tagCases = []tagCase{
	{
		name:       "legacy status code",
		tags:       []model.KeyValue{model.Int64("http.status_code", 500), model.String("http.method", "GET")},
		kind:       "server",
		wantAttrs:  map[string]any{"http.status_code": int64(500), "http.method": "GET"},
		wantStatus: ptrace.StatusCodeError,
	},
	{
		name:       "current status code stays current",
		tags:       []model.KeyValue{model.Int64("http.response.status_code", 503)},
		kind:       "server",
		wantAttrs:  map[string]any{"http.response.status_code": int64(503)},
		wantStatus: ptrace.StatusCodeError,
	},
	{
		name:       "both names keep their own values",
		tags:       []model.KeyValue{model.String("http.status_code", "404"), model.Int64("http.response.status_code", 404)},
		kind:       "client",
		wantAttrs:  map[string]any{"http.status_code": "404", "http.response.status_code": int64(404)},
		wantStatus: ptrace.StatusCodeError,
	},
	{
		name:       "error=true kept beside the status",
		tags:       []model.KeyValue{model.Bool("error", true), model.String("otel.status_description", "boom")},
		wantAttrs:  map[string]any{"error": true},
		wantStatus: ptrace.StatusCodeError,
	},
	{
		name:       "error=false stays, 5xx still fails",
		tags:       []model.KeyValue{model.Bool("error", false), model.Int64("http.status_code", 502)},
		kind:       "client",
		wantAttrs:  map[string]any{"error": false, "http.status_code": int64(502)},
		wantStatus: ptrace.StatusCodeError,
	},
	{
		name:       "otel.status_code kept",
		tags:       []model.KeyValue{model.String("otel.status_code", "OK"), model.Int64("http.status_code", 500)},
		kind:       "server",
		wantAttrs:  map[string]any{"otel.status_code": "OK", "http.status_code": int64(500)},
		wantStatus: ptrace.StatusCodeOk,
	},
	{
		name:       "float and bool",
		tags:       []model.KeyValue{model.Float64("ratio", 0.5), model.Bool("cache.hit", true)},
		wantAttrs:  map[string]any{"ratio": 0.5, "cache.hit": true},
		wantStatus: ptrace.StatusCodeUnset,
	},
}

func toThrift(kv model.KeyValue) *jaegerthrift.Tag {
	t := &jaegerthrift.Tag{Key: kv.Key}
	switch kv.VType {
	case model.ValueType_STRING:
		t.VType, t.VStr = jaegerthrift.TagType_STRING, new(kv.VStr)
	case model.ValueType_BOOL:
		t.VType, t.VBool = jaegerthrift.TagType_BOOL, new(kv.VBool)
	case model.ValueType_INT64:
		t.VType, t.VLong = jaegerthrift.TagType_LONG, new(kv.VInt64)
	case model.ValueType_FLOAT64:
		t.VType, t.VDouble = jaegerthrift.TagType_DOUBLE, new(kv.VFloat64)
	case model.ValueType_BINARY:
		t.VType, t.VBinary = jaegerthrift.TagType_BINARY, kv.VBinary
	}
	return t
}

func checkTagCase(t *testing.T, tc tagCase, td ptrace.Traces, wantRes map[string]any) {
	t.Helper()
	if td.SpanCount() != 1 {
		t.Fatalf("%d spans, want 1", td.SpanCount())
	}
	rs := td.ResourceSpans().At(0)
	sp := rs.ScopeSpans().At(0).Spans().At(0)
	if got := sp.Attributes().AsRaw(); !equalJSON(got, tc.wantAttrs) {
		t.Errorf("attributes = %v, want %v", got, tc.wantAttrs)
	}
	if sp.Status().Code() != tc.wantStatus {
		t.Errorf("status = %v, want %v", sp.Status().Code(), tc.wantStatus)
	}
	if got := rs.Resource().Attributes().AsRaw(); !equalJSON(got, wantRes) {
		t.Errorf("resource = %v, want %v", got, wantRes)
	}
}

// TestTranslationKeepsTags checks, without a database, that both Jaeger
// IDLs come out of translation with the tags as sent and the status
// derived as Jaeger does.
func TestTranslationKeepsTags(t *testing.T) {
	if err := keepTagNames(); err != nil {
		t.Fatal(err)
	}
	wantRes := map[string]any{"service.name": "svc", "hostname": "h1", "jaeger.version": "Node-3.19.0", "ip": "10.0.0.1"}
	for _, tc := range tagCases {
		tags := tc.tags
		if tc.kind != "" {
			tags = append([]model.KeyValue{model.String("span.kind", tc.kind)}, tags...)
		}
		t.Run("thrift/"+tc.name, func(t *testing.T) {
			var th []*jaegerthrift.Tag
			for _, kv := range tags {
				th = append(th, toThrift(kv))
			}
			batch := &jaegerthrift.Batch{
				Process: &jaegerthrift.Process{ServiceName: "svc", Tags: []*jaegerthrift.Tag{
					toThrift(model.String("hostname", "h1")), toThrift(model.String("jaeger.version", "Node-3.19.0")), toThrift(model.String("ip", "10.0.0.1")),
				}},
				Spans: []*jaegerthrift.Span{{TraceIdLow: 7, TraceIdHigh: -1, SpanId: -2, OperationName: "op", StartTime: 1, Duration: 1, Tags: th}},
			}
			td, err := thriftToTraces(batch)
			if err != nil {
				t.Fatal(err)
			}
			checkTagCase(t, tc, td, wantRes)
		})
		t.Run("proto/"+tc.name, func(t *testing.T) {
			batch := &model.Batch{
				Process: &model.Process{ServiceName: "svc", Tags: []model.KeyValue{
					model.String("hostname", "h1"), model.String("jaeger.version", "Node-3.19.0"), model.String("ip", "10.0.0.1"),
				}},
				Spans: []*model.Span{{TraceID: model.NewTraceID(^uint64(0), 7), SpanID: model.NewSpanID(^uint64(1)), OperationName: "op",
					StartTime: time.Unix(1, 0), Duration: time.Millisecond, Tags: append([]model.KeyValue(nil), tags...)}},
			}
			td, err := protoToTraces([]*model.Batch{batch})
			if err != nil {
				t.Fatal(err)
			}
			checkTagCase(t, tc, td, wantRes)
		})
	}
}

func TestTranslationKeepsProcessHostName(t *testing.T) {
	batch := &model.Batch{
		Process: &model.Process{ServiceName: "svc", Tags: []model.KeyValue{model.String("host.name", "h2"), model.String("hostname", "h1")}},
		Spans:   []*model.Span{{TraceID: model.NewTraceID(0, 1), SpanID: 2, OperationName: "op", StartTime: time.Unix(1, 0)}},
	}
	td, err := protoToTraces([]*model.Batch{batch})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"service.name": "svc", "host.name": "h2", "hostname": "h1"}
	if got := td.ResourceSpans().At(0).Resource().Attributes().AsRaw(); !equalJSON(got, want) {
		t.Errorf("resource = %v, want %v", got, want)
	}
}

func TestZipkinTranslationKeepsTags(t *testing.T) {
	if err := keepTagNames(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		tags       map[string]string
		want       map[string]any
		wantStatus ptrace.StatusCode
	}{
		{map[string]string{"http.status_code": "500", "error": "true"}, map[string]any{"http.status_code": "500", "error": "true"}, ptrace.StatusCodeError},
		{map[string]string{"error": "boom"}, map[string]any{"error": "boom"}, ptrace.StatusCodeError},
		{map[string]string{"otel.status_code": "Ok", "http.response.status_code": "200"}, map[string]any{"otel.status_code": "Ok", "http.response.status_code": "200"}, ptrace.StatusCodeOk},
	}
	for _, tc := range cases {
		span := &zipkinmodel.SpanModel{
			SpanContext: zipkinmodel.SpanContext{TraceID: zipkinmodel.TraceID{High: 1, Low: 2}, ID: 3},
			Name:        "op", Kind: zipkinmodel.Server, Timestamp: time.Unix(1, 0), Duration: time.Millisecond,
			LocalEndpoint: &zipkinmodel.Endpoint{ServiceName: "svc"}, Tags: tc.tags,
		}
		td, err := zipkinToTraces([]*zipkinmodel.SpanModel{span})
		if err != nil {
			t.Fatal(err)
		}
		sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
		if got := sp.Attributes().AsRaw(); !equalJSON(got, tc.want) {
			t.Errorf("tags %v: attributes = %v, want %v", tc.tags, got, tc.want)
		}
		if sp.Status().Code() != tc.wantStatus {
			t.Errorf("tags %v: status = %v, want %v", tc.tags, sp.Status().Code(), tc.wantStatus)
		}
	}
}
