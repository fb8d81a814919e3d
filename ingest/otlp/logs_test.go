package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/ingest"
)

// logRecorder is a LogConsumer keeping copies of what it got.
type logRecorder struct {
	mu  sync.Mutex
	got []plog.Logs
}

func (c *logRecorder) ConsumeLogs(_ context.Context, ld plog.Logs) error {
	cp := plog.NewLogs()
	ld.CopyTo(cp)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, cp)
	return nil
}

func (c *logRecorder) bodies() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ld := range c.got {
		rls := ld.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			sls := rls.At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					out = append(out, lrs.At(k).Body().AsString())
				}
			}
		}
	}
	return out
}

// newLogRequest returns one record per body, timestamped now.
func newLogRequest(bodies ...string) plogotlp.ExportRequest {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	sl := rl.ScopeLogs().AppendEmpty()
	for _, b := range bodies {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.Body().SetStr(b)
	}
	return plogotlp.NewExportRequestFromLogs(ld)
}

func recordOf(req plogotlp.ExportRequest, i int) plog.LogRecord {
	return req.Logs().ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(i)
}

func setupLogsOnly(t *testing.T, mutate func(*Config)) (*bundle, *logRecorder) {
	t.Helper()
	lr := &logRecorder{}
	b := setup(t, func(c *Config, o *Options) {
		o.Traces = nil
		o.Logs = lr
		c.Limits.MaxAttributes = 4
		c.Limits.MaxValueBytes = 1024
		if mutate != nil {
			mutate(c)
		}
	})
	return b, lr
}

func (b *bundle) postLogs(t *testing.T, body []byte, contentType string) (*http.Response, []byte) {
	t.Helper()
	resp, err := httpClient(t).Post("http://"+b.r.HTTPAddr()+"/v1/logs", contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func TestLogsPartialSuccess(t *testing.T) {
	b, rec := setupLogsOnly(t, nil)
	req := newLogRequest("ok 1", "nul\x00byte", "ok 2", "too many attrs", "bad severity", "long body", "ok 3")
	for i := range 5 {
		recordOf(req, 3).Attributes().PutInt(string(rune('a'+i)), int64(i))
	}
	recordOf(req, 4).SetSeverityNumber(99)
	recordOf(req, 5).Body().SetStr(strings.Repeat("x", 2000))
	const wantMsg = "resource_logs[0].scope_logs[0].log_records[1]: body contains a NUL byte; " +
		"resource_logs[0].scope_logs[0].log_records[3]: attributes has 5 entries, over the limit of 4; " +
		"resource_logs[0].scope_logs[0].log_records[4]: severity_number 99 is outside 0..24; " +
		"resource_logs[0].scope_logs[0].log_records[5]: body value is 2000 bytes, over the limit of 1024"

	// gRPC
	conn, err := grpc.NewClient(b.r.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := plogotlp.NewGRPCClient(conn).Export(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedLogRecords() != 4 || ps.ErrorMessage() != wantMsg {
		t.Fatalf("partial success %d %q\nwant 4 %q", ps.RejectedLogRecords(), ps.ErrorMessage(), wantMsg)
	}
	if got := strings.Join(rec.bodies(), ","); got != "ok 1,ok 2,ok 3" {
		t.Fatalf("consumer got %s", got)
	}

	// HTTP JSON: everything invalid is a 400 naming the problem.
	bad := newLogRequest("x")
	recordOf(bad, 0).SetSeverityNumber(-1)
	js, _ := bad.MarshalJSON()
	hresp, body := b.postLogs(t, js, contentTypeJSON)
	if hresp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "all 1 log records rejected: resource_logs[0].scope_logs[0].log_records[0]: severity_number -1 is outside 0..24") {
		t.Fatalf("all invalid: %d %s", hresp.StatusCode, body)
	}
	// Malformed protobuf names the field.
	hresp, body = b.postLogs(t, []byte{0x0a, 0x05, 0x01}, contentTypeProto)
	if hresp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "ExportLogsServiceRequest") {
		t.Fatalf("malformed: %d %q", hresp.StatusCode, body)
	}
	// Valid JSON with a span context.
	okReq := newLogRequest("json ok")
	recordOf(okReq, 0).SetTraceID(pcommon.TraceID{1, 2, 3})
	js, _ = okReq.MarshalJSON()
	if hresp, body = b.postLogs(t, js, contentTypeJSON); hresp.StatusCode != http.StatusOK {
		t.Fatalf("json: %d %s", hresp.StatusCode, body)
	}
	// Traces are not served by a logs-only receiver.
	if hresp, _ = b.post(t, mustProto(t, newRequest("a")), protoHeader); hresp.StatusCode != http.StatusNotFound {
		t.Fatalf("/v1/traces on a logs-only receiver: %d", hresp.StatusCode)
	}
	if got := b.counter(t, "vigil_ingest_log_records_rejected_total", map[string]string{"protocol": ingest.ProtocolOTLPGRPC, "reason": ingest.ReasonInvalidSeverity}); got != 1 {
		t.Fatalf("rejected invalid_severity = %v", got)
	}
}

func TestLogsRequestTooLarge(t *testing.T) {
	b, _ := setupLogsOnly(t, func(c *Config) { c.MaxRequestBytes = 512 })
	pb, _ := newLogRequest(strings.Repeat("y", 600)).MarshalProto()
	if resp, body := b.postLogs(t, pb, contentTypeProto); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d %q", resp.StatusCode, body)
	}
	conn, err := grpc.NewClient(b.r.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = plogotlp.NewGRPCClient(conn).Export(t.Context(), newLogRequest(strings.Repeat("y", 600)))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("grpc: %v", err)
	}
}

// FuzzHTTPLogs sends arbitrary bodies to /v1/logs: never a panic, only the
// expected statuses, and every decoded record either consumed (valid) or
// counted as rejected.
func FuzzHTTPLogs(f *testing.F) {
	seed := newLogRequest("hello", "用户登录失败", `{"requestId":"r1","statusCode":500}`)
	recordOf(seed, 0).SetTraceID(pcommon.TraceID{1})
	recordOf(seed, 1).Attributes().PutStr("k", "v")
	recordOf(seed, 2).SetSeverityNumber(99)
	for _, r := range []plogotlp.ExportRequest{seed, newLogRequest()} {
		pb, _ := r.MarshalProto()
		js, _ := r.MarshalJSON()
		f.Add(fuzzProto, pb)
		f.Add(fuzzJSON, js)
		f.Add(fuzzGzipJSON, js)
	}
	f.Add(fuzzJSON, []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz","body":{"kvlistValue":{"values":[]}}}]}]}]}`))
	limits := ingest.DefaultLimits()
	limits.Now = func() time.Time { return fuzzNow }
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		if len(body) > fuzzMaxBody {
			t.Skip("body over the fuzzing size cap")
		}
		kind %= fuzzKinds
		rec := &logRecorder{}
		cfg := Config{HTTPAddr: "unused", MaxRequestBytes: 1 << 20, Limits: limits}.withDefaults()
		logger := slog.New(slog.DiscardHandler)
		lg := newLogs(rec, cfg.Limits, cfg.RetryAfter, logger)
		mux := newHTTPMux(cfg, Options{Logs: rec}, nil, lg, nil, logger)
		ct, payload := contentTypeProto, body
		if kind == fuzzJSON || kind == fuzzGzipJSON {
			ct = contentTypeJSON
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/logs", nil)
		req.Header.Set("Content-Type", ct)
		if kind == fuzzGzipProto || kind == fuzzGzipJSON {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(body)
			_ = zw.Close()
			payload = buf.Bytes()
			req.Header.Set("Content-Encoding", "gzip")
		}
		req.Body = readCloser{bytes.NewReader(payload)}
		req.ContentLength = int64(len(payload))
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		consumed := 0
		for _, ld := range rec.got {
			consumed += ld.LogRecordCount()
			if r := ingest.ValidateLogsReport(ld, limits); r.Rejected != 0 {
				t.Fatalf("consumer got %d invalid records: %s", r.Rejected, r.Message)
			}
		}
		switch w.Code {
		case http.StatusOK:
			resp := plogotlp.NewExportResponse()
			var err error
			if ct == contentTypeJSON {
				err = resp.UnmarshalJSON(w.Body.Bytes())
			} else {
				err = resp.UnmarshalProto(w.Body.Bytes())
			}
			if err != nil {
				t.Fatalf("decode 200 response: %v", err)
			}
			ps := resp.PartialSuccess()
			if !utf8.ValidString(ps.ErrorMessage()) {
				t.Fatalf("partial success message is not UTF-8")
			}
			decoded := plogotlp.NewExportRequest()
			enc := encProto
			if ct == contentTypeJSON {
				enc = encJSON
			}
			if err := enc.unmarshal(decoded, logsRequestDescriptor, body); err != nil {
				t.Fatalf("handler accepted a body the decoder refuses: %v", err)
			}
			if want := decoded.Logs().LogRecordCount(); consumed+int(ps.RejectedLogRecords()) != want {
				t.Fatalf("consumed %d + rejected %d != decoded %d", consumed, ps.RejectedLogRecords(), want)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if consumed != 0 {
				t.Fatalf("status %d after the consumer got %d records", w.Code, consumed)
			}
		default:
			t.Fatalf("unexpected status %d: %q", w.Code, w.Body.Bytes())
		}
	})
}
