package jaegerapi

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/query/traces"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/web/api"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memReader is an in-memory span store (traces.Reader) over ptrace values,
// one ptrace.Traces per trace. The handlers are tested over the real query
// layer on top of it, without a database; lastQuery is what the query
// layer asked of storage; err, when set, is returned by every method
// instead.
type memReader struct {
	traces    []ptrace.Traces
	err       error
	truncated time.Time // when set, searches report they stopped there
	lastQuery storage.TraceQuery
	lastOps   storage.OperationQuery
}

func (m *memReader) Services(context.Context) ([]string, error) {
	if m.err != nil {
		return nil, m.err
	}
	var out []string
	m.eachSpan(func(_ int, res pcommon.Resource, _ pcommon.InstrumentationScope, _ ptrace.Span) {
		out = append(out, serviceOf(res))
	})
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (m *memReader) Operations(_ context.Context, q storage.OperationQuery) ([]storage.Operation, error) {
	m.lastOps = q
	if m.err != nil {
		return nil, m.err
	}
	var out []storage.Operation
	m.eachSpan(func(_ int, res pcommon.Resource, _ pcommon.InstrumentationScope, s ptrace.Span) {
		kind := spanKindName(s.Kind())
		if serviceOf(res) == q.Service && (q.SpanKind == "" || q.SpanKind == kind) {
			out = append(out, storage.Operation{Name: s.Name(), SpanKind: kind})
		}
	})
	slices.SortFunc(out, func(a, b storage.Operation) int {
		return strings.Compare(a.Name+"\x00"+a.SpanKind, b.Name+"\x00"+b.SpanKind)
	})
	return slices.Compact(out), nil
}

func (m *memReader) Trace(_ context.Context, id pcommon.TraceID) (ptrace.Traces, error) {
	if m.err != nil {
		return ptrace.Traces{}, m.err
	}
	for _, td := range m.traces {
		if firstTraceID(td) == id {
			out := ptrace.NewTraces()
			td.CopyTo(out)
			return out, nil
		}
	}
	return ptrace.Traces{}, fmt.Errorf("trace %s: %w", id, storage.ErrNotFound)
}

func (m *memReader) FindTraces(_ context.Context, q storage.TraceQuery) (storage.FoundTraces, error) {
	m.lastQuery = q
	if m.err != nil {
		return storage.FoundTraces{}, m.err
	}
	var out []ptrace.Traces
	for i, td := range m.traces {
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
		match := false
		m.eachSpan(func(ti int, res pcommon.Resource, scope pcommon.InstrumentationScope, s ptrace.Span) {
			if ti == i && !match && spanMatches(q, res, scope, s) {
				match = true
			}
		})
		if match {
			c := ptrace.NewTraces()
			td.CopyTo(c)
			out = append(out, c)
		}
	}
	return storage.FoundTraces{Traces: out, Truncated: !m.truncated.IsZero(), SearchedFrom: m.truncated}, nil
}

func (m *memReader) eachSpan(f func(trace int, res pcommon.Resource, scope pcommon.InstrumentationScope, s ptrace.Span)) {
	for ti, td := range m.traces {
		for i := range td.ResourceSpans().Len() {
			rs := td.ResourceSpans().At(i)
			for j := range rs.ScopeSpans().Len() {
				ss := rs.ScopeSpans().At(j)
				for k := range ss.Spans().Len() {
					f(ti, rs.Resource(), ss.Scope(), ss.Spans().At(k))
				}
			}
		}
	}
}

func spanMatches(q storage.TraceQuery, res pcommon.Resource, scope pcommon.InstrumentationScope, s ptrace.Span) bool {
	if q.Service != "" && serviceOf(res) != q.Service {
		return false
	}
	if q.Operation != "" && s.Name() != q.Operation {
		return false
	}
	start := s.StartTimestamp().AsTime()
	if !q.StartMin.IsZero() && start.Before(q.StartMin) || !q.StartMax.IsZero() && start.After(q.StartMax) {
		return false
	}
	d := s.EndTimestamp().AsTime().Sub(start)
	if q.DurationMin != 0 && d < q.DurationMin || q.DurationMax != 0 && d > q.DurationMax {
		return false
	}
	for k, want := range q.Tags {
		found := false
		for _, m := range []pcommon.Map{s.Attributes(), res.Attributes(), scope.Attributes()} {
			if v, ok := m.Get(k); ok && v.AsString() == want {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func serviceOf(res pcommon.Resource) string {
	if v, ok := res.Attributes().Get("service.name"); ok {
		return v.AsString()
	}
	return noServiceName
}

func firstTraceID(td ptrace.Traces) pcommon.TraceID {
	return td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
}

// Fixtures. Attribute maps are filled with explicit Put calls so that their
// order is fixed and the conversion's own ordering is what the goldens show.

var base = time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)

func at(d time.Duration) pcommon.Timestamp { return pcommon.NewTimestampFromTime(base.Add(d)) }

func traceID(s string) pcommon.TraceID {
	id, err := api.ParseTraceID(s)
	if err != nil {
		panic(err)
	}
	return id
}

func spanID(s string) pcommon.SpanID {
	var id pcommon.SpanID
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		panic(err)
	}
	return id
}

const (
	idCheckout = "0af7651916cd43dd8448eb211c80319c" // 128-bit
	idLegacy   = "4bf92f3577b34da6"                 // 64-bit: high half zero
	idForeign  = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
)

// checkoutTrace exercises every part of the mapping: resources and process
// deduplication, scope, kinds, status, events, links, trace state, flags,
// dropped counts, warnings and every attribute value type.
func checkoutTrace() ptrace.Traces {
	tid := traceID(idCheckout)
	td := ptrace.NewTraces()

	// frontend, first resource.
	rs := td.ResourceSpans().AppendEmpty()
	ra := rs.Resource().Attributes()
	ra.PutStr("service.name", "frontend")
	ra.PutStr("host.name", "web-1")
	ra.PutInt("process.pid", 4242)
	labels := ra.PutEmptyMap("k8s.labels")
	labels.PutStr("app", "web")
	tiers := labels.PutEmptySlice("tiers")
	tiers.AppendEmpty().SetStr("edge")
	tiers.AppendEmpty().SetStr("<public>")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("net/http")
	ss.Scope().SetVersion("1.2.3")
	root := ss.Spans().AppendEmpty()
	root.SetTraceID(tid)
	root.SetSpanID(spanID("00f067aa0ba902b7"))
	root.SetName("GET /checkout")
	root.SetKind(ptrace.SpanKindServer)
	root.SetStartTimestamp(at(0))
	root.SetEndTimestamp(at(2*time.Second + 345678*time.Nanosecond))
	root.SetFlags(0x301) // sampled, plus the OTLP has/is-remote bits
	root.TraceState().FromRaw("vigil=00f067aa0ba902b7,congo=t61rcWkgMzE")
	root.Status().SetCode(ptrace.StatusCodeOk)
	root.Attributes().PutStr("http.method", "GET")
	root.Attributes().PutInt("http.status_code", 200)
	root.Attributes().PutStr("http.route", "/checkout")
	ev := root.Events().AppendEmpty()
	ev.SetName("request.received")
	ev.SetTimestamp(at(10 * time.Microsecond))
	ev.Attributes().PutInt("body.size", 512)
	ev.Attributes().PutStr("a.first", "sorted after event")

	// payments.
	rs = td.ResourceSpans().AppendEmpty()
	ra = rs.Resource().Attributes()
	ra.PutStr("service.name", "payments")
	ra.PutStr("telemetry.sdk.language", "go")
	ss = rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("github.com/acme/payments")
	charge := ss.Spans().AppendEmpty()
	charge.SetTraceID(tid)
	charge.SetSpanID(spanID("b7ad6b7169203331"))
	charge.SetParentSpanID(root.SpanID())
	charge.SetName("charge")
	charge.SetKind(ptrace.SpanKindClient)
	charge.SetStartTimestamp(at(500 * time.Millisecond))
	charge.SetEndTimestamp(at(1500*time.Millisecond + 999*time.Nanosecond))
	charge.SetFlags(1)
	charge.Status().SetCode(ptrace.StatusCodeError)
	charge.Status().SetMessage("card declined")
	charge.SetDroppedAttributesCount(3)
	charge.SetDroppedEventsCount(1)
	charge.SetDroppedLinksCount(2)
	a := charge.Attributes()
	a.PutBool("retry", false)
	a.PutDouble("amount", 12.5)
	a.PutDouble("ratio", math.NaN())
	a.PutDouble("ceiling", math.Inf(1))
	a.PutInt("big", 1<<60)
	a.PutInt("small", -(1 << 53))
	a.PutInt("safe", 1<<53-1)
	a.PutEmptyBytes("token").FromRaw([]byte{0xde, 0xad, 0xbe, 0xef})
	list := a.PutEmptySlice("items")
	list.AppendEmpty().SetInt(1)
	list.AppendEmpty().SetDouble(math.Inf(-1))
	list.AppendEmpty().SetBool(true)
	list.AppendEmpty().SetEmptyBytes().FromRaw([]byte("hi"))
	nested := list.AppendEmpty().SetEmptyMap()
	nested.PutStr("z", "last")
	nested.PutStr("a", "first & <html>")
	a.PutEmpty("nothing")
	exc := charge.Events().AppendEmpty()
	exc.SetName("exception")
	exc.SetTimestamp(at(1400 * time.Millisecond))
	exc.Attributes().PutStr("exception.type", "CardError")
	exc.Attributes().PutStr("exception.message", "declined")
	exc.SetDroppedAttributesCount(1)
	named := charge.Events().AppendEmpty()
	named.SetName("ignored because an attribute is called event")
	named.SetTimestamp(at(600 * time.Millisecond))
	named.Attributes().PutStr("event", "retry.scheduled")
	anon := charge.Events().AppendEmpty()
	anon.SetTimestamp(at(700 * time.Millisecond))
	anon.Attributes().PutStr("note", "an event without a name")
	// A link to another trace, with attributes the reference cannot carry.
	l := charge.Links().AppendEmpty()
	l.SetTraceID(traceID(idForeign))
	l.SetSpanID(spanID("1111111111111111"))
	l.Attributes().PutStr("messaging.message.id", "m-42")
	// A link that OpenTracing marked child_of; no other attributes.
	l = charge.Links().AppendEmpty()
	l.SetTraceID(traceID(idLegacy))
	l.SetSpanID(spanID("2222222222222222"))
	l.Attributes().PutStr("opentracing.ref_type", "child_of")
	// A link to the parent itself only retypes the parent reference.
	l = charge.Links().AppendEmpty()
	l.SetTraceID(tid)
	l.SetSpanID(root.SpanID())
	l.Attributes().PutStr("opentracing.ref_type", "follows_from")

	// frontend again, attributes in another order: the same process p1.
	rs = td.ResourceSpans().AppendEmpty()
	ra = rs.Resource().Attributes()
	labels = ra.PutEmptyMap("k8s.labels")
	tiers = labels.PutEmptySlice("tiers")
	tiers.AppendEmpty().SetStr("edge")
	tiers.AppendEmpty().SetStr("<public>")
	labels.PutStr("app", "web")
	ra.PutInt("process.pid", 4242)
	ra.PutStr("host.name", "web-1")
	ra.PutStr("service.name", "frontend")
	ss = rs.ScopeSpans().AppendEmpty() // no scope name or version
	// Same start as charge: the span ID breaks the tie (0a... < b7...).
	render := ss.Spans().AppendEmpty()
	render.SetTraceID(tid)
	render.SetSpanID(spanID("0a0b0c0d0e0f1011"))
	render.SetParentSpanID(root.SpanID())
	render.SetName("render")
	render.SetKind(ptrace.SpanKindInternal)
	render.SetStartTimestamp(at(500 * time.Millisecond))
	render.SetEndTimestamp(at(400 * time.Millisecond)) // ends before it starts: duration 0

	// A resource without service.name, and a span carrying Jaeger warnings.
	rs = td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("host.name", "batch-7")
	ss = rs.ScopeSpans().AppendEmpty()
	pub := ss.Spans().AppendEmpty()
	pub.SetTraceID(tid)
	pub.SetSpanID(spanID("3333333333333333"))
	pub.SetParentSpanID(charge.SpanID())
	pub.SetName("publish receipt")
	pub.SetKind(ptrace.SpanKindProducer)
	pub.SetStartTimestamp(at(1600 * time.Millisecond))
	pub.SetEndTimestamp(at(1601 * time.Millisecond))
	pub.Status().SetMessage("description without a code")
	w := pub.Attributes().PutEmptySlice("@jaeger@warnings")
	w.AppendEmpty().SetStr("clock skew adjusted")
	w.AppendEmpty().SetStr("duplicate span ID")
	pub.Attributes().PutStr("messaging.system", "kafka")
	cons := ss.Spans().AppendEmpty()
	cons.SetTraceID(tid)
	cons.SetSpanID(spanID("4444444444444444"))
	cons.SetParentSpanID(pub.SpanID())
	cons.SetName("consume receipt")
	cons.SetKind(ptrace.SpanKindConsumer)
	cons.SetStartTimestamp(at(1700 * time.Millisecond))
	cons.SetEndTimestamp(at(1800 * time.Millisecond))
	return td
}

// legacyTrace has a 64-bit trace ID, as Jaeger clients and Zipkin send.
func legacyTrace() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "inventory")
	ss := rs.ScopeSpans().AppendEmpty()
	s := ss.Spans().AppendEmpty()
	s.SetTraceID(traceID(idLegacy))
	s.SetSpanID(spanID("2222222222222222"))
	s.SetName("SELECT stock")
	s.SetKind(ptrace.SpanKindClient)
	s.SetStartTimestamp(at(time.Minute))
	s.SetEndTimestamp(at(time.Minute + 3*time.Millisecond))
	s.Attributes().PutStr("db.system", "postgresql")
	s.Links().AppendEmpty().SetTraceID(traceID(idCheckout)) // span ID left empty
	// The same operation name with another kind: the legacy operations route
	// lists it once.
	s2 := ss.Spans().AppendEmpty()
	s2.SetTraceID(traceID(idLegacy))
	s2.SetSpanID(spanID("5555555555555555"))
	s2.SetParentSpanID(s.SpanID())
	s2.SetName("SELECT stock")
	s2.SetKind(ptrace.SpanKindInternal)
	s2.SetStartTimestamp(at(time.Minute + time.Millisecond))
	s2.SetEndTimestamp(at(time.Minute + 2*time.Millisecond))
	return td
}

type setup struct {
	mux    *http.ServeMux
	reader *memReader
	logs   *bytes.Buffer
}

func newSetup(t *testing.T) setup {
	t.Helper()
	reader := &memReader{traces: []ptrace.Traces{checkoutTrace(), legacyTrace()}}
	logs := &bytes.Buffer{}
	svc := traces.New(reader, traces.Config{Now: func() time.Time { return base.Add(time.Hour) }})
	j := New(svc, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	mux := http.NewServeMux()
	j.Register(mux)
	return setup{mux: mux, reader: reader, logs: logs}
}

func micros(d time.Duration) string { return fmt.Sprint(base.Add(d).UnixMicro()) }

func TestJaegerAPI(t *testing.T) {
	secret := errors.New("pq: password authentication failed for user vigil")
	tests := []struct {
		name       string
		url        string
		readerErr  error
		truncated  time.Time // the reader's searches stop there
		wantStatus int
		golden     string // testdata/<golden>.golden; several cases may share one
		raw        bool   // compare the body as is, without re-indenting it
	}{
		{name: "services", url: "/api/services", wantStatus: 200, golden: "services"},
		{name: "services pretty", url: "/api/services?prettyPrint=true", wantStatus: 200, golden: "services_pretty", raw: true},
		{name: "services unavailable", url: "/api/services", readerErr: fmt.Errorf("acquire conn: %w", storage.ErrUnavailable), wantStatus: 503, golden: "error_unavailable"},
		{name: "services internal", url: "/api/services", readerErr: secret, wantStatus: 500, golden: "error_internal"},
		{name: "services deadline", url: "/api/services", readerErr: fmt.Errorf("query: %w", context.DeadlineExceeded), wantStatus: 504, golden: "error_deadline"},
		{name: "services canceled", url: "/api/services", readerErr: context.Canceled, wantStatus: 499, golden: "error_canceled"},

		{name: "service operations", url: "/api/services/payments/operations", wantStatus: 200, golden: "service_operations"},
		{name: "service operations escaped", url: "/api/services/no%2Fsuch%20service/operations", wantStatus: 200, golden: "empty_data"},
		{name: "service operations not found", url: "/api/services/x/operations", readerErr: storage.ErrNotFound, wantStatus: 404, golden: "error_service_not_found"},

		{name: "service operations unique", url: "/api/services/inventory/operations", wantStatus: 200, golden: "service_operations_unique"},
		{name: "operations", url: "/api/operations?service=frontend", wantStatus: 200, golden: "operations"},
		{name: "operations both kinds", url: "/api/operations?service=inventory", wantStatus: 200, golden: "operations_inventory"},
		{name: "operations kind", url: "/api/operations?service=frontend&spanKind=server", wantStatus: 200, golden: "operations_server"},
		{name: "operations no service", url: "/api/operations?spanKind=server", wantStatus: 400, golden: "error_service_required"},
		{name: "operations bad kind", url: "/api/operations?service=frontend&spanKind=SPAN_KIND_SERVER", wantStatus: 400, golden: "error_span_kind"},
		{name: "operations bad query", url: "/api/operations?service=%zz", wantStatus: 400, golden: "error_query_string"},

		{name: "trace 128-bit", url: "/api/traces/" + idCheckout, wantStatus: 200, golden: "trace_checkout"},
		{name: "trace upper case", url: "/api/traces/" + strings.ToUpper(idCheckout), wantStatus: 200, golden: "trace_checkout"},
		{name: "trace 64-bit", url: "/api/traces/" + idLegacy, wantStatus: 200, golden: "trace_legacy"},
		{name: "trace 64-bit padded", url: "/api/traces/0000000000000000" + idLegacy, wantStatus: 200, golden: "trace_legacy"},
		{name: "trace not found", url: "/api/traces/abc", wantStatus: 404, golden: "error_trace_not_found"},
		{name: "trace bad hex", url: "/api/traces/xyz", wantStatus: 400, golden: "error_trace_id_hex"},
		{name: "trace too long", url: "/api/traces/0" + idCheckout, wantStatus: 400, golden: "error_trace_id_long"},
		{name: "trace zero", url: "/api/traces/000", wantStatus: 400, golden: "error_trace_id_zero"},
		{name: "trace unavailable", url: "/api/traces/" + idCheckout, readerErr: storage.ErrUnavailable, wantStatus: 503, golden: "error_unavailable"},
		{name: "trace internal", url: "/api/traces/" + idCheckout, readerErr: secret, wantStatus: 500, golden: "error_internal"},

		{name: "search service", url: "/api/traces?service=payments", wantStatus: 200, golden: "search_checkout"},
		{name: "search operation", url: "/api/traces?service=inventory&operation=SELECT+stock", wantStatus: 200, golden: "search_inventory"},
		{name: "search tags json", url: "/api/traces?service=frontend&tags=" + url.QueryEscape(`{"http.status_code":"200","host.name":"web-1"}`), wantStatus: 200, golden: "search_checkout"},
		{name: "search tag", url: "/api/traces?service=inventory&tag=db.system:postgresql", wantStatus: 200, golden: "search_inventory"},
		{name: "search tag no match", url: "/api/traces?service=inventory&tag=db.system:mysql", wantStatus: 200, golden: "empty_data"},
		{name: "search min duration", url: "/api/traces?service=frontend&minDuration=1.5s", wantStatus: 200, golden: "search_checkout"},
		{name: "search max duration", url: "/api/traces?service=inventory&maxDuration=500us", wantStatus: 200, golden: "empty_data"},
		{name: "search start end", url: "/api/traces?service=inventory&start=" + micros(30*time.Second) + "&end=" + micros(90*time.Second), wantStatus: 200, golden: "search_inventory"},
		{name: "search start after span", url: "/api/traces?service=inventory&start=" + micros(2*time.Minute) + "&end=" + micros(3*time.Minute), wantStatus: 200, golden: "empty_data"},
		{name: "search lookback", url: "/api/traces?service=inventory&lookback=30m", wantStatus: 200, golden: "empty_data"},
		{name: "search lookback days", url: "/api/traces?service=inventory&lookback=2d&end=" + micros(2*time.Minute), wantStatus: 200, golden: "search_inventory"},
		{name: "search limit", url: "/api/traces?service=frontend&limit=1", wantStatus: 200, golden: "search_checkout"},
		{name: "search trace ids", url: "/api/traces?traceID=" + idLegacy + "&traceID=dead&traceID=" + idCheckout + "&traceID=" + idLegacy, wantStatus: 200, golden: "search_trace_ids"},
		{name: "search unavailable", url: "/api/traces?service=frontend", readerErr: storage.ErrUnavailable, wantStatus: 503, golden: "error_unavailable"},
		{name: "search truncated", url: "/api/traces?service=payments", truncated: base.Add(45 * time.Second), wantStatus: 200, golden: "search_truncated"},
		{name: "search truncated empty", url: "/api/traces?service=inventory&tag=db.system:mysql", truncated: base.Add(45 * time.Second), wantStatus: 200, golden: "search_truncated_empty"},

		{name: "search no service", url: "/api/traces?operation=charge", wantStatus: 400, golden: "error_service_required"},
		{name: "search bad start", url: "/api/traces?service=a&start=yesterday", wantStatus: 400, golden: "error_start"},
		{name: "search negative end", url: "/api/traces?service=a&end=-5", wantStatus: 400, golden: "error_end"},
		{name: "search start after end", url: "/api/traces?service=a&start=20&end=10", wantStatus: 400, golden: "error_start_after_end"},
		{name: "search bad lookback", url: "/api/traces?service=a&lookback=last+week", wantStatus: 400, golden: "error_lookback"},
		{name: "search bad tag", url: "/api/traces?service=a&tag=error", wantStatus: 400, golden: "error_tag"},
		{name: "search bad tags", url: "/api/traces?service=a&tags=" + url.QueryEscape(`{"error":`), wantStatus: 400, golden: "error_tags"},
		{name: "search tags object value", url: "/api/traces?service=a&tags=" + url.QueryEscape(`{"error":{"x":1}}`), wantStatus: 400, golden: "error_tags_value"},
		{name: "search bad limit", url: "/api/traces?service=a&limit=ten", wantStatus: 400, golden: "error_limit"},
		{name: "search limit too large", url: "/api/traces?service=a&limit=1501", wantStatus: 400, golden: "error_limit_max"},
		{name: "search bad min duration", url: "/api/traces?service=a&minDuration=5", wantStatus: 400, golden: "error_min_duration"},
		{name: "search negative max duration", url: "/api/traces?service=a&maxDuration=-1s", wantStatus: 400, golden: "error_max_duration"},
		{name: "search max below min", url: "/api/traces?service=a&minDuration=2s&maxDuration=1s", wantStatus: 400, golden: "error_max_below_min"},
		{name: "search bad trace id", url: "/api/traces?traceID=0xabc", wantStatus: 400, golden: "error_trace_id_hex_param"},
	}
	written := map[string][]byte{} // goldens shared by cases must agree under -update too
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t)
			s.reader.err = tt.readerErr
			s.reader.truncated = tt.truncated
			rec := httptest.NewRecorder()
			s.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.url, nil))

			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d; body: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			body := rec.Body.Bytes()
			if !json.Valid(body) {
				t.Fatalf("body is not JSON: %s", body)
			}
			if !tt.raw {
				var buf bytes.Buffer
				if err := json.Indent(&buf, body, "", "  "); err != nil {
					t.Fatal(err)
				}
				buf.WriteByte('\n')
				body = buf.Bytes()
			}
			if prev, ok := written[tt.golden]; ok && !bytes.Equal(prev, body) {
				t.Errorf("golden %s is shared with an earlier case whose body differs", tt.golden)
			}
			written[tt.golden] = body
			checkGolden(t, tt.golden, body)
			if tt.wantStatus >= 400 && strings.Contains(string(body), "password") {
				t.Errorf("error body leaks the storage error: %s", body)
			}
		})
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("body differs from %s (run go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestJaegerSearchQuery(t *testing.T) {
	s := newSetup(t)
	url := "/api/traces?service=frontend&operation=GET+%2Fcheckout&tag=a:b:c&tags=" + url.QueryEscape(`{"a":"override","n":5,"ok":true}`) +
		"&start=" + micros(-time.Minute) + "&end=" + micros(time.Minute) + "&minDuration=1ms&maxDuration=1.5s"
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	if rec.Code != 200 {
		t.Fatalf("status = %d: %s", rec.Code, rec.Body)
	}
	want := storage.TraceQuery{
		Service:     "frontend",
		Operation:   "GET /checkout",
		Tags:        map[string]string{"a": "override", "n": "5", "ok": "true"},
		StartMin:    base.Add(-time.Minute).Truncate(time.Microsecond),
		StartMax:    base.Add(time.Minute).Truncate(time.Microsecond),
		DurationMin: time.Millisecond,
		DurationMax: 1500 * time.Millisecond,
		Limit:       traces.DefaultLimit,
	}
	if got := s.reader.lastQuery; !equalQuery(got, want) {
		t.Errorf("reader got %+v, want %+v", got, want)
	}
}

func equalQuery(a, b storage.TraceQuery) bool {
	return a.Service == b.Service && a.Operation == b.Operation && fmt.Sprint(a.Tags) == fmt.Sprint(b.Tags) &&
		a.StartMin.Equal(b.StartMin) && a.StartMax.Equal(b.StartMax) &&
		a.DurationMin == b.DurationMin && a.DurationMax == b.DurationMax && a.Limit == b.Limit
}

func TestJaegerOperationsQuery(t *testing.T) {
	tests := []struct {
		url  string
		want storage.OperationQuery
	}{
		{"/api/services/no%2Fsuch%20service/operations", storage.OperationQuery{Service: "no/such service"}},
		{"/api/services/caf%C3%A9/operations", storage.OperationQuery{Service: "café"}},
		{"/api/operations?service=a+b&spanKind=consumer", storage.OperationQuery{Service: "a b", SpanKind: "consumer"}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			s := newSetup(t)
			rec := httptest.NewRecorder()
			s.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.url, nil))
			if rec.Code != 200 || s.reader.lastOps != tt.want {
				t.Errorf("status %d, reader got %+v, want %+v", rec.Code, s.reader.lastOps, tt.want)
			}
		})
	}
}

func TestJaegerLogsInternalErrors(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantLevel string
	}{
		{name: "internal", err: errors.New("pq: syntax error at or near SELECT"), wantLevel: "level=ERROR"},
		{name: "unavailable", err: storage.ErrUnavailable, wantLevel: "level=WARN"},
		{name: "deadline", err: context.DeadlineExceeded, wantLevel: "level=WARN"},
		{name: "not found", err: storage.ErrNotFound, wantLevel: "level=DEBUG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t)
			s.reader.err = tt.err
			rec := httptest.NewRecorder()
			s.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/traces/"+idCheckout, nil))
			logs := s.logs.String()
			if !strings.Contains(logs, tt.wantLevel) || !strings.Contains(logs, tt.err.Error()) {
				t.Errorf("logs = %q, want %s with the error", logs, tt.wantLevel)
			}
			if !strings.Contains(logs, "component=jaeger_api") {
				t.Errorf("logs = %q, want the component attribute", logs)
			}
		})
	}
}

func TestJaegerMethodNotAllowed(t *testing.T) {
	s := newSetup(t)
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/services", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST status = %d, want 405", rec.Code)
	}
}

func TestNewJaegerNilLogger(t *testing.T) {
	j := New(traces.New(&memReader{err: errors.New("boom")}, traces.Config{}), nil)
	mux := http.NewServeMux()
	j.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/services", nil))
	if rec.Code != 500 {
		t.Errorf("status = %d, want 500", rec.Code)
	}
}
