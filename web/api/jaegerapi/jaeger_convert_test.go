package jaegerapi

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/web/api"
)

func TestKeyValue(t *testing.T) {
	tests := []struct {
		name string
		set  func(v pcommon.Value)
		want string // JSON of the converted tag
	}{
		{"string", func(v pcommon.Value) { v.SetStr("a\"b") }, `{"key":"k","type":"string","value":"a\"b"}`},
		{"bool", func(v pcommon.Value) { v.SetBool(true) }, `{"key":"k","type":"bool","value":true}`},
		{"int", func(v pcommon.Value) { v.SetInt(-42) }, `{"key":"k","type":"int64","value":-42}`},
		{"int max safe", func(v pcommon.Value) { v.SetInt(1<<53 - 1) }, `{"key":"k","type":"int64","value":9007199254740991}`},
		{"int beyond safe", func(v pcommon.Value) { v.SetInt(math.MaxInt64) }, `{"key":"k","type":"int64","value":"9223372036854775807"}`},
		{"int below safe", func(v pcommon.Value) { v.SetInt(math.MinInt64) }, `{"key":"k","type":"int64","value":"-9223372036854775808"}`},
		{"double", func(v pcommon.Value) { v.SetDouble(0.1) }, `{"key":"k","type":"float64","value":0.1}`},
		{"double big", func(v pcommon.Value) { v.SetDouble(1e300) }, `{"key":"k","type":"float64","value":1e+300}`},
		{"NaN", func(v pcommon.Value) { v.SetDouble(math.NaN()) }, `{"key":"k","type":"float64","value":"NaN"}`},
		{"-Inf", func(v pcommon.Value) { v.SetDouble(math.Inf(-1)) }, `{"key":"k","type":"float64","value":"-Infinity"}`},
		{"bytes", func(v pcommon.Value) { v.SetEmptyBytes().FromRaw([]byte{0, 1, 2, 255}) }, `{"key":"k","type":"binary","value":"AAEC/w=="}`},
		{"empty bytes", func(v pcommon.Value) { v.SetEmptyBytes() }, `{"key":"k","type":"binary","value":""}`},
		{"empty", func(pcommon.Value) {}, `{"key":"k","type":"string","value":""}`},
		{"empty map", func(v pcommon.Value) { v.SetEmptyMap() }, `{"key":"k","type":"string","value":"{}"}`},
		{"empty slice", func(v pcommon.Value) { v.SetEmptySlice() }, `{"key":"k","type":"string","value":"[]"}`},
		{"nested", func(v pcommon.Value) {
			m := v.SetEmptyMap()
			m.PutStr("b", "x")
			inner := m.PutEmptyMap("a")
			inner.PutDouble("nan", math.NaN())
			inner.PutEmpty("nil")
			inner.PutEmptySlice("s").AppendEmpty().SetEmptySlice().AppendEmpty().SetInt(1)
		}, `{"key":"k","type":"string","value":"{\"a\":{\"nan\":\"NaN\",\"nil\":null,\"s\":[[1]]},\"b\":\"x\"}"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := pcommon.NewValueEmpty()
			tt.set(v)
			got, err := json.Marshal(keyValue("k", v))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestFormatIDs(t *testing.T) {
	tests := []struct {
		id   pcommon.TraceID
		want string
	}{
		{pcommon.TraceID{15: 1}, "0000000000000001"},
		{pcommon.TraceID{7: 1}, "00000000000000010000000000000000"},
		{pcommon.TraceID{0: 0xab, 15: 0xcd}, "ab0000000000000000000000000000cd"},
		{pcommon.TraceID{}, "0000000000000000"},
	}
	for _, tt := range tests {
		if got := formatTraceID(tt.id); got != tt.want {
			t.Errorf("formatTraceID(%v) = %q, want %q", tt.id, got, tt.want)
		}
	}
	if got := formatSpanID(pcommon.SpanID{7: 9}); got != "0000000000000009" {
		t.Errorf("formatSpanID = %q", got)
	}
}

func TestConvertTraceEmpty(t *testing.T) {
	td := ptrace.NewTraces()
	td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	if _, ok := convertTrace(td); ok {
		t.Error("a trace without spans converted")
	}
}

func TestConvertTraceLeavesInputAlone(t *testing.T) {
	td := checkoutTrace()
	before, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := convertTrace(td); !ok {
		t.Fatal("not converted")
	}
	after, _ := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if string(before) != string(after) {
		t.Error("convertTrace modified its input")
	}
}

// maxFuzzTraceJSON caps FuzzConvertTrace inputs: enough for the fixtures
// (about 5 KiB) and a few hundred spans.
const maxFuzzTraceJSON = 64 << 10

// FuzzConvertTrace feeds arbitrary OTLP JSON through the conversion and the
// response encoding: whatever a reader returns must produce valid JSON.
func FuzzConvertTrace(f *testing.F) {
	for _, td := range []ptrace.Traces{checkoutTrace(), legacyTrace()} {
		b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"","spanId":"","startTimeUnixNano":"18446744073709551615","endTimeUnixNano":"1"}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzTraceJSON {
			t.Skip()
		}
		td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(data)
		if err != nil {
			return
		}
		tr, ok := convertTrace(td)
		if !ok {
			return
		}
		out, err := json.Marshal(api.Envelope{Data: []uiTrace{tr}})
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
		for _, s := range tr.Spans {
			if _, ok := tr.Processes[s.ProcessID]; !ok {
				t.Fatalf("span %s has unknown process %q", s.SpanID, s.ProcessID)
			}
		}
	})
}

// bigTrace builds a trace of n spans over a few services, each with the
// attributes, an event and a parent a typical instrumented RPC span has.
func bigTrace(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	tid := traceID(idCheckout)
	const services = 8
	spans := make([]ptrace.SpanSlice, services)
	for i := range services {
		rs := td.ResourceSpans().AppendEmpty()
		ra := rs.Resource().Attributes()
		ra.PutStr("service.name", fmt.Sprintf("service-%d", i))
		ra.PutStr("host.name", fmt.Sprintf("host-%d", i))
		ra.PutStr("telemetry.sdk.language", "go")
		ra.PutStr("telemetry.sdk.version", "1.30.0")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
		ss.Scope().SetVersion("0.55.0")
		spans[i] = ss.Spans()
	}
	for i := range n {
		s := spans[i%services].AppendEmpty()
		s.SetTraceID(tid)
		var sid pcommon.SpanID
		sid[4], sid[5], sid[6], sid[7] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)+1
		s.SetSpanID(sid)
		if i > 0 {
			var pid pcommon.SpanID
			p := (i - 1) / 2
			pid[4], pid[5], pid[6], pid[7] = byte(p>>24), byte(p>>16), byte(p>>8), byte(p)+1
			s.SetParentSpanID(pid)
		}
		s.SetName(fmt.Sprintf("GET /api/v1/items/%d", i%50))
		s.SetKind(ptrace.SpanKind(1 + i%5))
		s.SetStartTimestamp(at(time.Duration(n-i) * time.Microsecond))
		s.SetEndTimestamp(at(time.Duration(n-i)*time.Microsecond + time.Millisecond))
		a := s.Attributes()
		a.PutStr("http.request.method", "GET")
		a.PutStr("url.path", "/api/v1/items")
		a.PutInt("http.response.status_code", 200)
		a.PutStr("server.address", "items.internal")
		a.PutInt("server.port", 8080)
		a.PutDouble("sample.rate", 0.25)
		if i%10 == 0 {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Status().SetMessage("upstream reset")
			e := s.Events().AppendEmpty()
			e.SetName("exception")
			e.SetTimestamp(at(time.Duration(n-i)*time.Microsecond + 500*time.Microsecond))
			e.Attributes().PutStr("exception.type", "io.EOF")
			e.Attributes().PutStr("exception.message", "unexpected EOF")
		}
	}
	return td
}

func BenchmarkConvertTrace10k(b *testing.B) {
	td := bigTrace(10_000)
	b.ReportAllocs()
	var size int
	for b.Loop() {
		tr, ok := convertTrace(td)
		if !ok {
			b.Fatal("not converted")
		}
		out, err := json.Marshal(api.Envelope{Data: []uiTrace{tr}, Total: 1})
		if err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	b.ReportMetric(float64(size), "json-bytes")
}

// TestSpanTagsCarried checks that tags made from span fields are added only
// where the span does not carry the tag itself: a Jaeger client's span
// (ingest/jaeger keeps its error and otel.status_code tags) shows what it
// sent, an OTLP span gets the tags Jaeger's model needs.
func TestSpanTagsCarried(t *testing.T) {
	tests := []struct {
		name string
		set  func(s ptrace.Span)
		want string
	}{
		{"otlp error", func(s ptrace.Span) {
			s.SetKind(ptrace.SpanKindServer)
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Attributes().PutInt("http.response.status_code", 500)
		}, `[{"key":"error","type":"bool","value":true},{"key":"http.response.status_code","type":"int64","value":500},` +
			`{"key":"otel.status_code","type":"string","value":"ERROR"},{"key":"span.kind","type":"string","value":"server"}]`},
		{"otlp ok", func(s ptrace.Span) {
			s.Status().SetCode(ptrace.StatusCodeOk)
		}, `[{"key":"otel.status_code","type":"string","value":"OK"}]`},
		{"jaeger error=true", func(s ptrace.Span) {
			s.SetKind(ptrace.SpanKindServer)
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Attributes().PutBool("error", true)
			s.Attributes().PutInt("http.status_code", 500)
		}, `[{"key":"error","type":"bool","value":true},{"key":"http.status_code","type":"int64","value":500},` +
			`{"key":"span.kind","type":"string","value":"server"}]`},
		{"jaeger otel.status_code", func(s ptrace.Span) {
			s.Status().SetCode(ptrace.StatusCodeOk)
			s.Attributes().PutStr("otel.status_code", "OK")
		}, `[{"key":"otel.status_code","type":"string","value":"OK"}]`},
		{"zipkin error string", func(s ptrace.Span) {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Attributes().PutStr("error", "true")
		}, `[{"key":"error","type":"string","value":"true"}]`},
		{"zipkin error message", func(s ptrace.Span) {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Attributes().PutStr("error", "boom")
		}, `[{"key":"error","type":"string","value":"boom"},{"key":"error","type":"bool","value":true},` +
			`{"key":"otel.status_code","type":"string","value":"ERROR"}]`},
		{"otlp attribute named error", func(s ptrace.Span) {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Attributes().PutBool("error", false)
		}, `[{"key":"error","type":"bool","value":false},{"key":"error","type":"bool","value":true},` +
			`{"key":"otel.status_code","type":"string","value":"ERROR"}]`},
		{"jaeger otel.status_code=ERROR alone", func(s ptrace.Span) {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Attributes().PutStr("otel.status_code", "ERROR")
		}, `[{"key":"otel.status_code","type":"string","value":"ERROR"}]`},
		{"jaeger status from the HTTP code alone", func(s ptrace.Span) {
			s.SetKind(ptrace.SpanKindServer)
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Attributes().PutInt("http.status_code", 503)
		}, `[{"key":"error","type":"bool","value":true},{"key":"http.status_code","type":"int64","value":503},` +
			`{"key":"otel.status_code","type":"string","value":"ERROR"},{"key":"span.kind","type":"string","value":"server"}]`},
		{"carried kind and description win", func(s ptrace.Span) {
			s.SetKind(ptrace.SpanKindClient)
			s.Status().SetMessage("from status")
			s.Attributes().PutStr("span.kind", "client")
			s.Attributes().PutStr("otel.status_description", "as sent")
		}, `[{"key":"otel.status_description","type":"string","value":"as sent"},{"key":"span.kind","type":"string","value":"client"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ptrace.NewSpan()
			tt.set(s)
			tags, _ := spanTags(s, pcommon.NewInstrumentationScope())
			got, err := json.Marshal(tags)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("tags\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}
