package ingest

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// ValidateTraces is ValidateTracesReport returning the count and the
// message alone.
func ValidateTraces(td ptrace.Traces, lim Limits) (rejected int, msg string) {
	r := ValidateTracesReport(td, lim)
	return r.Rejected, r.Message
}

func testLimits() Limits {
	l := DefaultLimits()
	l.Now = func() time.Time { return testNow }
	return l
}

// goodSpan fills sp with a span that passes DefaultLimits at testNow.
func goodSpan(sp ptrace.Span, i int) {
	sp.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, byte(i)})
	sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, byte(i + 1)})
	sp.SetName(fmt.Sprintf("GET /api/%d", i))
	sp.SetKind(ptrace.SpanKindServer)
	start := testNow.Add(-time.Minute)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(20 * time.Millisecond)))
	sp.Attributes().PutStr("http.method", "GET")
	sp.Attributes().PutInt("http.status_code", 200)
	ev := sp.Events().AppendEmpty()
	ev.SetName("exception")
	ev.Attributes().PutStr("exception.message", "boom")
	l := sp.Links().AppendEmpty()
	l.SetTraceID(pcommon.TraceID{9})
	l.SetSpanID(pcommon.SpanID{9})
	sp.Status().SetCode(ptrace.StatusCodeOk)
}

// newTraces builds resources x scopes x spans good spans.
func newTraces(resources, scopes, spans int) ptrace.Traces {
	td := ptrace.NewTraces()
	for r := 0; r < resources; r++ {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", r))
		for s := 0; s < scopes; s++ {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName("lib")
			ss.Scope().SetVersion("1.0")
			for i := 0; i < spans; i++ {
				goodSpan(ss.Spans().AppendEmpty(), r*100+s*10+i)
			}
		}
	}
	return td
}

func firstSpan(td ptrace.Traces) ptrace.Span {
	return td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
}

func TestValidateTracesSingleProblem(t *testing.T) {
	const at = "resource_spans[0].scope_spans[0].spans[0]: "
	bad := string([]byte{'a', 0xff, 'b'})
	long := strings.Repeat("x", DefaultMaxValueBytes+1)
	tests := []struct {
		name    string
		mutate  func(td ptrace.Traces)
		lim     func(*Limits)
		reason  string
		message string
	}{
		{
			name:    "zero trace id",
			mutate:  func(td ptrace.Traces) { firstSpan(td).SetTraceID(pcommon.TraceID{}) },
			reason:  ReasonInvalidID,
			message: at + "trace_id is all zeros",
		},
		{
			name:    "zero span id",
			mutate:  func(td ptrace.Traces) { firstSpan(td).SetSpanID(pcommon.SpanID{}) },
			reason:  ReasonInvalidID,
			message: at + "span_id is all zeros",
		},
		{
			name:    "invalid utf8 name",
			mutate:  func(td ptrace.Traces) { firstSpan(td).SetName(bad) },
			reason:  ReasonInvalidUTF8,
			message: at + "name is not valid UTF-8",
		},
		{
			name:    "nul in name",
			mutate:  func(td ptrace.Traces) { firstSpan(td).SetName("a\x00b") },
			reason:  ReasonNULByte,
			message: at + "name contains a NUL byte",
		},
		{
			name:    "nul in attribute key",
			mutate:  func(td ptrace.Traces) { firstSpan(td).Attributes().PutStr("a\x00b", "v") },
			reason:  ReasonNULByte,
			message: at + `attributes["a\x00b"] key contains a NUL byte`,
		},
		{
			name: "end before start",
			mutate: func(td ptrace.Traces) {
				sp := firstSpan(td)
				sp.SetEndTimestamp(sp.StartTimestamp() - 1)
			},
			reason:  ReasonEndBeforeStart,
			message: at + "end_time_unix_nano 2025-06-01T11:58:59.999999999Z is before start_time_unix_nano 2025-06-01T11:59:00Z",
		},
		{
			name: "missing end",
			mutate: func(td ptrace.Traces) {
				firstSpan(td).SetEndTimestamp(0)
			},
			reason:  ReasonEndBeforeStart,
			message: at + "end_time_unix_nano 1970-01-01T00:00:00Z is before start_time_unix_nano 2025-06-01T11:59:00Z",
		},
		{
			name: "too old",
			mutate: func(td ptrace.Traces) {
				sp := firstSpan(td)
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(testNow.Add(-8 * 24 * time.Hour)))
			},
			reason:  ReasonTooOld,
			message: at + "start_time_unix_nano 2025-05-24T12:00:00Z is older than the maximum age of 168h0m0s",
		},
		{
			name: "in the future",
			mutate: func(td ptrace.Traces) {
				sp := firstSpan(td)
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(testNow.Add(2 * time.Hour)))
				sp.SetEndTimestamp(pcommon.NewTimestampFromTime(testNow.Add(3 * time.Hour)))
			},
			reason:  ReasonInFuture,
			message: at + "start_time_unix_nano 2025-06-01T14:00:00Z is more than 1h0m0s in the future",
		},
		{
			name: "timestamp beyond int64",
			mutate: func(td ptrace.Traces) {
				sp := firstSpan(td)
				sp.SetStartTimestamp(1 << 63)
				sp.SetEndTimestamp(1 << 63)
			},
			reason:  ReasonInFuture,
			message: at + "start_time_unix_nano 9223372036854775808 is more than 1h0m0s in the future",
		},
		{
			name:    "invalid utf8 status message",
			mutate:  func(td ptrace.Traces) { firstSpan(td).Status().SetMessage(bad) },
			reason:  ReasonInvalidUTF8,
			message: at + "status.message is not valid UTF-8",
		},
		{
			name:    "invalid utf8 trace state",
			mutate:  func(td ptrace.Traces) { firstSpan(td).TraceState().FromRaw("k=" + bad) },
			reason:  ReasonInvalidUTF8,
			message: at + "trace_state is not valid UTF-8",
		},
		{
			name: "too many attributes",
			mutate: func(td ptrace.Traces) {
				for i := 0; i < 200; i++ {
					firstSpan(td).Attributes().PutInt(fmt.Sprintf("k%d", i), int64(i))
				}
			},
			reason:  ReasonTooManyAttributes,
			message: at + "attributes has 202 entries, over the limit of 128",
		},
		{
			name:    "invalid utf8 attribute value",
			mutate:  func(td ptrace.Traces) { firstSpan(td).Attributes().PutStr("http.url", bad) },
			reason:  ReasonInvalidUTF8,
			message: at + `attributes["http.url"] value is not valid UTF-8`,
		},
		{
			name:    "invalid utf8 attribute key",
			mutate:  func(td ptrace.Traces) { firstSpan(td).Attributes().PutStr(bad, "v") },
			reason:  ReasonInvalidUTF8,
			message: at + `attributes["a\xffb"] key is not valid UTF-8`,
		},
		{
			name:    "value too long",
			mutate:  func(td ptrace.Traces) { firstSpan(td).Attributes().PutStr("body", long) },
			reason:  ReasonValueTooLong,
			message: at + `attributes["body"] value is 65537 bytes, over the limit of 65536`,
		},
		{
			name:    "key too long",
			mutate:  func(td ptrace.Traces) { firstSpan(td).Attributes().PutStr(long, "v") },
			reason:  ReasonValueTooLong,
			message: at + `attributes["` + strings.Repeat("x", maxQuotedLen) + `"...] key is 65537 bytes, over the limit of 65536`,
		},
		{
			name: "bytes value too long",
			mutate: func(td ptrace.Traces) {
				firstSpan(td).Attributes().PutEmptyBytes("blob").FromRaw(make([]byte, DefaultMaxValueBytes+1))
			},
			reason:  ReasonValueTooLong,
			message: at + `attributes["blob"] value is 65537 bytes, over the limit of 65536`,
		},
		{
			name: "nested invalid utf8",
			mutate: func(td ptrace.Traces) {
				sl := firstSpan(td).Attributes().PutEmptySlice("list")
				sl.AppendEmpty().SetStr("ok")
				m := sl.AppendEmpty().SetEmptyMap()
				m.PutStr("inner", bad)
			},
			reason:  ReasonInvalidUTF8,
			message: at + `attributes["list"][1]["inner"] value is not valid UTF-8`,
		},
		{
			name: "nested too deep",
			mutate: func(td ptrace.Traces) {
				v := firstSpan(td).Attributes().PutEmpty("deep")
				for i := 0; i < MaxAttributeValueDepth+5; i++ {
					v = v.SetEmptySlice().AppendEmpty()
				}
			},
			reason:  ReasonValueTooDeep,
			message: at + `attributes["deep"]` + strings.Repeat("[0]", MaxAttributeValueDepth-1) + " value is nested deeper than 32 levels",
		},
		{
			name: "deep path of long keys",
			mutate: func(td ptrace.Traces) {
				key := strings.Repeat("k", 100)
				m := firstSpan(td).Attributes().PutEmptyMap("top")
				for i := 0; i < 20; i++ {
					m = m.PutEmptyMap(key)
				}
				m.PutStr("leaf", bad)
			},
			reason: ReasonInvalidUTF8,
			message: at + `attributes["top"]...` + strings.Repeat(`["`+strings.Repeat("k", maxQuotedLen)+`"...]`, 7) +
				`["leaf"] value is not valid UTF-8`,
		},
		{
			name: "too many events",
			mutate: func(td ptrace.Traces) {
				for i := 0; i < 129; i++ {
					firstSpan(td).Events().AppendEmpty().SetName("e")
				}
			},
			reason:  ReasonTooManyEvents,
			message: at + "events has 130 entries, over the limit of 128",
		},
		{
			name:    "invalid utf8 event name",
			mutate:  func(td ptrace.Traces) { firstSpan(td).Events().AppendEmpty().SetName(bad) },
			reason:  ReasonInvalidUTF8,
			message: at + "events[1].name is not valid UTF-8",
		},
		{
			name: "event attribute",
			mutate: func(td ptrace.Traces) {
				firstSpan(td).Events().At(0).Attributes().PutStr("exception.stacktrace", bad)
			},
			reason:  ReasonInvalidUTF8,
			message: at + `events[0].attributes["exception.stacktrace"] value is not valid UTF-8`,
		},
		{
			name: "too many links",
			mutate: func(td ptrace.Traces) {
				for i := 0; i < 128; i++ {
					firstSpan(td).Links().AppendEmpty()
				}
			},
			reason:  ReasonTooManyLinks,
			message: at + "links has 129 entries, over the limit of 128",
		},
		{
			name: "link attributes over limit",
			mutate: func(td ptrace.Traces) {
				for i := 0; i < 3; i++ {
					firstSpan(td).Links().At(0).Attributes().PutInt(fmt.Sprint(i), 1)
				}
			},
			lim:     func(l *Limits) { l.MaxAttributes = 2 },
			reason:  ReasonTooManyAttributes,
			message: at + "links[0].attributes has 3 entries, over the limit of 2",
		},
		{
			name:    "invalid utf8 link trace state",
			mutate:  func(td ptrace.Traces) { firstSpan(td).Links().At(0).TraceState().FromRaw(bad) },
			reason:  ReasonInvalidUTF8,
			message: at + "links[0].trace_state is not valid UTF-8",
		},
		{
			name: "nul in service.name",
			mutate: func(td ptrace.Traces) {
				td.ResourceSpans().At(0).Resource().Attributes().PutStr("service.name", "svc\x00")
			},
			reason:  ReasonNULByte,
			message: `resource_spans[0]: resource.attributes["service.name"] contains a NUL byte (1 span rejected)`,
		},
		{
			name: "invalid utf8 service.name",
			mutate: func(td ptrace.Traces) {
				td.ResourceSpans().At(0).Resource().Attributes().PutStr("service.name", bad)
			},
			reason:  ReasonInvalidUTF8,
			message: `resource_spans[0]: resource.attributes["service.name"] value is not valid UTF-8 (1 span rejected)`,
		},
		{
			name: "resource schema url",
			mutate: func(td ptrace.Traces) {
				td.ResourceSpans().At(0).SetSchemaUrl(bad)
			},
			reason:  ReasonInvalidUTF8,
			message: `resource_spans[0]: schema_url is not valid UTF-8 (1 span rejected)`,
		},
		{
			name: "scope name",
			mutate: func(td ptrace.Traces) {
				td.ResourceSpans().At(0).ScopeSpans().At(0).Scope().SetName(bad)
			},
			reason:  ReasonInvalidUTF8,
			message: `resource_spans[0].scope_spans[0]: scope.name is not valid UTF-8 (1 span rejected)`,
		},
		{
			name: "scope version",
			mutate: func(td ptrace.Traces) {
				td.ResourceSpans().At(0).ScopeSpans().At(0).Scope().SetVersion(bad)
			},
			reason:  ReasonInvalidUTF8,
			message: `resource_spans[0].scope_spans[0]: scope.version is not valid UTF-8 (1 span rejected)`,
		},
		{
			name: "scope attributes",
			mutate: func(td ptrace.Traces) {
				td.ResourceSpans().At(0).ScopeSpans().At(0).Scope().Attributes().PutStr("k", long)
			},
			reason:  ReasonValueTooLong,
			message: `resource_spans[0].scope_spans[0]: scope.attributes["k"] value is 65537 bytes, over the limit of 65536 (1 span rejected)`,
		},
		{
			name: "scope schema url",
			mutate: func(td ptrace.Traces) {
				td.ResourceSpans().At(0).ScopeSpans().At(0).SetSchemaUrl(bad)
			},
			reason:  ReasonInvalidUTF8,
			message: `resource_spans[0].scope_spans[0]: schema_url is not valid UTF-8 (1 span rejected)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			td := newTraces(1, 1, 1)
			tt.mutate(td)
			lim := testLimits()
			if tt.lim != nil {
				tt.lim(&lim)
			}
			r := ValidateTracesReport(td, lim)
			if r.Rejected != 1 || r.Message != tt.message {
				t.Fatalf("got %d %q\nwant 1 %q", r.Rejected, r.Message, tt.message)
			}
			if want := map[string]int{tt.reason: 1}; !maps.Equal(r.Reasons, want) {
				t.Fatalf("reasons %v, want %v", r.Reasons, want)
			}
			if !utf8.ValidString(r.Message) {
				t.Fatalf("message is not valid UTF-8: %q", r.Message)
			}
			if n := td.ResourceSpans().Len(); n != 0 {
				t.Fatalf("%d resource spans left, want the empty ones removed", n)
			}
		})
	}
}

func TestValidateTracesKeepsValid(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(td ptrace.Traces)
		lim    func(*Limits)
	}{
		{name: "default span", mutate: func(ptrace.Traces) {}},
		{
			name: "limits at the boundary",
			mutate: func(td ptrace.Traces) {
				sp := firstSpan(td)
				for i := sp.Attributes().Len(); i < DefaultMaxAttributes; i++ {
					sp.Attributes().PutBool(fmt.Sprint(i), true)
				}
				for sp.Events().Len() < DefaultMaxEvents {
					sp.Events().AppendEmpty()
				}
				for sp.Links().Len() < DefaultMaxLinks {
					sp.Links().AppendEmpty()
				}
				sp.Attributes().PutStr("2", strings.Repeat("é", DefaultMaxValueBytes/2))
			},
		},
		{
			name: "zero duration and zero parent",
			mutate: func(td ptrace.Traces) {
				sp := firstSpan(td)
				sp.SetEndTimestamp(sp.StartTimestamp())
				sp.SetParentSpanID(pcommon.SpanID{})
			},
		},
		{
			name: "start exactly max age ago",
			mutate: func(td ptrace.Traces) {
				sp := firstSpan(td)
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(testNow.Add(-DefaultMaxAge)))
			},
		},
		{
			name: "nul outside name and service.name",
			mutate: func(td ptrace.Traces) {
				firstSpan(td).Attributes().PutStr("k", "a\x00b")
			},
		},
		{
			name: "unicode everywhere",
			mutate: func(td ptrace.Traces) {
				sp := firstSpan(td)
				sp.SetName("获取用户 🚀")
				sp.Status().SetMessage("état")
				td.ResourceSpans().At(0).Resource().Attributes().PutStr("service.name", "用户服务")
			},
		},
		{
			name: "limits disabled",
			mutate: func(td ptrace.Traces) {
				sp := firstSpan(td)
				for i := 0; i < 300; i++ {
					sp.Attributes().PutInt(fmt.Sprint(i), 1)
					sp.Events().AppendEmpty()
					sp.Links().AppendEmpty()
				}
				sp.Attributes().PutStr("big", strings.Repeat("x", 1<<20))
				sp.SetStartTimestamp(1)
			},
			lim: func(l *Limits) {
				l.MaxAttributes, l.MaxEvents, l.MaxLinks, l.MaxValueBytes = -1, -1, -1, -1
				l.MaxAge, l.MaxFutureSkew = -1, -1
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			td := newTraces(1, 1, 1)
			tt.mutate(td)
			lim := testLimits()
			if tt.lim != nil {
				tt.lim(&lim)
			}
			n, msg := ValidateTraces(td, lim)
			if n != 0 || msg != "" {
				t.Fatalf("rejected %d: %s", n, msg)
			}
			if td.SpanCount() != 1 {
				t.Fatalf("span count %d, want 1", td.SpanCount())
			}
		})
	}
}

func TestValidateTracesPartial(t *testing.T) {
	td := newTraces(2, 2, 3) // 12 spans
	// Break spans at known positions of the request as received.
	rs0 := td.ResourceSpans().At(0)
	rs0.ScopeSpans().At(1).Spans().At(2).SetTraceID(pcommon.TraceID{})
	rs0.ScopeSpans().At(1).Spans().At(0).SetName("x\x00")
	rs1 := td.ResourceSpans().At(1)
	for i := 0; i < 3; i++ { // the whole of one scope, which must disappear
		rs1.ScopeSpans().At(0).Spans().At(i).SetSpanID(pcommon.SpanID{})
	}
	keep := map[string]bool{}
	for _, name := range []string{"GET /api/0", "GET /api/1", "GET /api/2", "GET /api/11", "GET /api/110", "GET /api/111", "GET /api/112"} {
		keep[name] = true
	}

	r := ValidateTracesReport(td, testLimits())
	want := "resource_spans[0].scope_spans[1].spans[0]: name contains a NUL byte; " +
		"resource_spans[0].scope_spans[1].spans[2]: trace_id is all zeros; " +
		"resource_spans[1].scope_spans[0].spans[0]: span_id is all zeros; " +
		"resource_spans[1].scope_spans[0].spans[1]: span_id is all zeros; " +
		"resource_spans[1].scope_spans[0].spans[2]: span_id is all zeros"
	if r.Rejected != 5 || r.Message != want {
		t.Fatalf("got %d %q\nwant 5 %q", r.Rejected, r.Message, want)
	}
	if want := map[string]int{ReasonNULByte: 1, ReasonInvalidID: 4}; !maps.Equal(r.Reasons, want) {
		t.Fatalf("reasons %v, want %v", r.Reasons, want)
	}
	if got := td.SpanCount(); got != 7 {
		t.Fatalf("span count %d, want 7", got)
	}
	if got := rs1.ScopeSpans().Len(); got != 1 {
		t.Fatalf("resource 1 has %d scopes, want the emptied one removed", got)
	}
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		sss := td.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			for k := 0; k < sss.At(j).Spans().Len(); k++ {
				if name := sss.At(j).Spans().At(k).Name(); !keep[name] {
					t.Errorf("unexpected span %q kept", name)
				}
			}
		}
	}
}

func TestValidateTracesMessageIsBounded(t *testing.T) {
	td := newTraces(1, 1, 20)
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i := 0; i < spans.Len(); i++ {
		spans.At(i).SetTraceID(pcommon.TraceID{})
	}
	r := ValidateTracesReport(td, testLimits())
	if r.Rejected != 20 {
		t.Fatalf("rejected %d, want 20", r.Rejected)
	}
	if got := strings.Count(r.Message, "trace_id is all zeros"); got != maxReportedProblems {
		t.Fatalf("message names %d problems, want %d: %s", got, maxReportedProblems, r.Message)
	}
	if !strings.HasSuffix(r.Message, "; and 15 more rejected spans") {
		t.Fatalf("message %q lacks the count of the rest", r.Message)
	}
}

func TestValidateTracesEmpty(t *testing.T) {
	td := ptrace.NewTraces()
	td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	td.ResourceSpans().AppendEmpty()
	n, msg := ValidateTraces(td, Limits{})
	if n != 0 || msg != "" || td.ResourceSpans().Len() != 0 {
		t.Fatalf("got %d %q with %d resources", n, msg, td.ResourceSpans().Len())
	}
}

func TestLimitsWithDefaults(t *testing.T) {
	got := Limits{MaxEvents: 5, MaxAge: -1}.WithDefaults()
	if got.MaxAttributes != DefaultMaxAttributes || got.MaxEvents != 5 || got.MaxLinks != DefaultMaxLinks ||
		got.MaxValueBytes != DefaultMaxValueBytes || got.MaxAge != -1 || got.MaxFutureSkew != DefaultMaxFutureSkew || got.Now == nil {
		t.Fatalf("WithDefaults = %+v", got)
	}
}

func BenchmarkValidateTraces(b *testing.B) {
	lim := testLimits()
	src := newTraces(4, 2, 64)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		td := ptrace.NewTraces()
		src.CopyTo(td)
		b.StartTimer()
		if n, msg := ValidateTraces(td, lim); n != 0 {
			b.Fatal(msg)
		}
	}
}
