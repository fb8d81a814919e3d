package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/vigil-obs/vigil/ingest"
)

// Fuzz input kinds: the body is sent as protobuf or JSON, as is or gzipped
// by the test (so that the decoders behind decompression are fuzzed too).
const (
	fuzzProto uint8 = iota
	fuzzJSON
	fuzzGzipProto
	fuzzGzipJSON
	fuzzKinds
)

const fuzzMaxBody = 16 << 10

var fuzzNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// fuzzSeeds returns valid and almost valid requests.
func fuzzSeeds() []ptraceotlp.ExportRequest {
	at := func(d time.Duration) pcommon.Timestamp { return pcommon.NewTimestampFromTime(fuzzNow.Add(d)) }
	full := ptrace.NewTraces()
	rs := full.ResourceSpans().AppendEmpty()
	rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("lib")
	ss.Scope().SetVersion("1.0")
	ss.Scope().Attributes().PutBool("scope", true)
	sp := ss.Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	sp.SetParentSpanID(pcommon.SpanID{8, 7, 6, 5, 4, 3, 2, 1})
	sp.TraceState().FromRaw("vendor=value")
	sp.SetName("GET /cart")
	sp.SetKind(ptrace.SpanKindServer)
	sp.SetStartTimestamp(at(-time.Second))
	sp.SetEndTimestamp(at(0))
	sp.Attributes().PutStr("http.method", "GET")
	sp.Attributes().PutInt("http.status_code", 200)
	sp.Attributes().PutDouble("ratio", 0.5)
	sp.Attributes().PutEmptyBytes("raw").FromRaw([]byte{0, 1, 2})
	sl := sp.Attributes().PutEmptySlice("list")
	sl.AppendEmpty().SetStr("a")
	sl.AppendEmpty().SetEmptyMap().PutStr("k", "v")
	ev := sp.Events().AppendEmpty()
	ev.SetName("exception")
	ev.SetTimestamp(at(-time.Millisecond))
	ev.Attributes().PutStr("exception.message", "boom")
	l := sp.Links().AppendEmpty()
	l.SetTraceID(pcommon.TraceID{9})
	l.SetSpanID(pcommon.SpanID{9})
	l.Attributes().PutStr("k", "v")
	sp.Status().SetCode(ptrace.StatusCodeError)
	sp.Status().SetMessage("boom")

	partial := ptrace.NewTraces()
	full.CopyTo(partial)
	bad := partial.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty()
	sp.CopyTo(bad)
	bad.SetTraceID(pcommon.TraceID{})
	old := partial.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty()
	sp.CopyTo(old)
	old.SetStartTimestamp(at(-30 * 24 * time.Hour))

	return []ptraceotlp.ExportRequest{
		ptraceotlp.NewExportRequestFromTraces(full),
		ptraceotlp.NewExportRequestFromTraces(partial),
		ptraceotlp.NewExportRequest(),
	}
}

// countingConsumer accepts everything and keeps what it got.
type countingConsumer struct {
	mu  sync.Mutex
	got []ptrace.Traces
}

func (c *countingConsumer) ConsumeTraces(_ context.Context, td ptrace.Traces) error {
	cp := ptrace.NewTraces()
	td.CopyTo(cp)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, cp)
	return nil
}

// FuzzHTTPTraces sends arbitrary bodies through the OTLP/HTTP handler and
// checks that it never panics, answers only with the expected statuses in
// the request's encoding, and that what reaches the consumer is valid and
// accounts, with the rejected count, for every decoded span.
func FuzzHTTPTraces(f *testing.F) {
	for _, req := range fuzzSeeds() {
		pb, err := req.MarshalProto()
		if err != nil {
			f.Fatal(err)
		}
		js, err := req.MarshalJSON()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fuzzProto, pb)
		f.Add(fuzzJSON, js)
		f.Add(fuzzGzipProto, pb)
		f.Add(fuzzGzipJSON, js)
	}
	f.Add(fuzzJSON, []byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"n","kind":2,"startTimeUnixNano":"1748779199000000000","endTimeUnixNano":"1748779200000000000","attributes":[{"key":"k","value":{"arrayValue":{"values":[{"kvlistValue":{"values":[{"key":"x","value":{"intValue":"1"}}]}}]}}}]}]}]}]}`))
	f.Add(fuzzJSON, []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`))
	f.Add(fuzzProto, []byte{0x0a, 0x05, 0x01})

	limits := ingest.DefaultLimits()
	limits.Now = func() time.Time { return fuzzNow }
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		if len(body) > fuzzMaxBody {
			t.Skip("body over the fuzzing size cap")
		}
		kind %= fuzzKinds
		consumer := &countingConsumer{}
		cfg := Config{HTTPAddr: "unused", MaxRequestBytes: 1 << 20, Limits: limits}.withDefaults()
		logger := slog.New(slog.DiscardHandler)
		tr := newTraces(consumer, cfg.Limits, cfg.RetryAfter, logger)
		mux := newHTTPMux(cfg, Options{Traces: consumer}, tr, nil, nil, logger)

		ct, payload := contentTypeProto, body
		if kind == fuzzJSON || kind == fuzzGzipJSON {
			ct = contentTypeJSON
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/traces", nil)
		req.Header.Set("Content-Type", ct)
		if kind == fuzzGzipProto || kind == fuzzGzipJSON {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(body)
			_ = zw.Close()
			payload = buf.Bytes()
			req.Header.Set("Content-Encoding", "gzip")
		}
		req.Body = http.NoBody
		if len(payload) > 0 {
			req.Body = readCloser{bytes.NewReader(payload)}
		}
		req.ContentLength = int64(len(payload))
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)

		if got := rec.Header().Get("Content-Type"); got != ct {
			t.Fatalf("content type %q, want %q", got, ct)
		}
		enc := encProto
		if ct == contentTypeJSON {
			enc = encJSON
		}
		consumed := 0
		for _, td := range consumer.got {
			consumed += td.SpanCount()
			if r := ingest.ValidateTracesReport(td, limits); r.Rejected != 0 {
				t.Fatalf("consumer got %d invalid spans: %s", r.Rejected, r.Message)
			}
		}
		switch rec.Code {
		case http.StatusOK:
			resp := ptraceotlp.NewExportResponse()
			var err error
			if enc == encJSON {
				err = resp.UnmarshalJSON(rec.Body.Bytes())
			} else {
				err = resp.UnmarshalProto(rec.Body.Bytes())
			}
			if err != nil {
				t.Fatalf("decode 200 response %q: %v", rec.Body.Bytes(), err)
			}
			ps := resp.PartialSuccess()
			if !utf8.ValidString(ps.ErrorMessage()) {
				t.Fatalf("partial success message is not UTF-8: %q", ps.ErrorMessage())
			}
			// Every decoded span was either consumed or rejected.
			decoded := ptraceotlp.NewExportRequest()
			if err := enc.unmarshal(decoded, traceRequestDescriptor, body); err != nil {
				t.Fatalf("handler accepted a body the decoder refuses: %v", err)
			}
			if want := decoded.Traces().SpanCount(); consumed+int(ps.RejectedSpans()) != want {
				t.Fatalf("consumed %d + rejected %d != decoded %d", consumed, ps.RejectedSpans(), want)
			}
			if (ps.RejectedSpans() == 0) != (ps.ErrorMessage() == "") {
				t.Fatalf("partial success %d with message %q", ps.RejectedSpans(), ps.ErrorMessage())
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if consumed != 0 {
				t.Fatalf("status %d after the consumer got %d spans", rec.Code, consumed)
			}
			st := decodeStatus(t, ct, rec.Body.Bytes())
			if st.GetMessage() == "" || !utf8.ValidString(st.GetMessage()) {
				t.Fatalf("bad status message %q", st.GetMessage())
			}
			if rec.Code == http.StatusBadRequest && !strings.Contains(st.GetMessage(), "decode") && !strings.Contains(st.GetMessage(), "rejected") {
				t.Fatalf("400 message does not say what failed: %q", st.GetMessage())
			}
		default:
			t.Fatalf("unexpected status %d: %q", rec.Code, rec.Body.Bytes())
		}
	})
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
