package jaeger

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/storage"
)

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestJaegerHTTP(t *testing.T) {
	b := setup(t, func(c *Config, _ *Options) { c.MaxRequestBytes = 64 << 10 })
	url := "http://" + b.r.HTTPAddr() + "/api/traces"
	body := thriftBody(t, simpleBatch("svc", "op", 1, 1))
	mixed := simpleBatch("svc", "kept", 2, 2)
	mixed.Spans[1].TraceIdLow = 0
	allBad := simpleBatch("svc", "bad", 0, 1)
	huge := simpleBatch("svc", strings.Repeat("x", 70<<10), 3, 1)

	cases := []struct {
		name        string
		contentType string
		header      http.Header
		body        []byte
		wantCode    int
		wantMsg     string
	}{
		{"binary thrift", "application/x-thrift", nil, body, http.StatusAccepted, ""},
		{"vnd binary thrift", "application/vnd.apache.thrift.binary", nil, body, http.StatusAccepted, ""},
		{"compact thrift", "application/vnd.apache.thrift.compact", nil, func() []byte {
			b, err := newCompactSerializer().Write(t.Context(), simpleBatch("svc", "op", 1, 1))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}(), http.StatusAccepted, ""},
		{"gzip", "application/x-thrift", http.Header{"Content-Encoding": {"gzip"}}, gzipped(t, body), http.StatusAccepted, ""},
		{"partly invalid", "application/x-thrift", nil, thriftBody(t, mixed), http.StatusAccepted, "1 spans rejected: resource_spans[0].scope_spans[0].spans[1]: trace_id is all zeros"},
		{"all invalid", "application/x-thrift", nil, thriftBody(t, allBad), http.StatusBadRequest, "all 1 spans rejected"},
		{"garbage", "application/x-thrift", nil, []byte("not thrift at all"), http.StatusBadRequest, "decode thrift Batch"},
		{"truncated", "application/x-thrift", nil, body[:len(body)-3], http.StatusBadRequest, "decode thrift Batch"},
		{"empty body", "application/x-thrift", nil, nil, http.StatusBadRequest, "decode thrift Batch"},
		{"json", "application/json", nil, []byte("{}"), http.StatusUnsupportedMediaType, "unsupported content type"},
		{"no content type", "", nil, body, http.StatusUnsupportedMediaType, "unsupported content type"},
		{"bad gzip", "application/x-thrift", http.Header{"Content-Encoding": {"gzip"}}, body, http.StatusBadRequest, "decompress gzip"},
		{"brotli", "application/x-thrift", http.Header{"Content-Encoding": {"br"}}, body, http.StatusUnsupportedMediaType, "unsupported content encoding"},
		{"oversized", "application/x-thrift", nil, thriftBody(t, huge), http.StatusRequestEntityTooLarge, "exceeds the limit of 65536 bytes"},
		{"oversized after gunzip", "application/x-thrift", http.Header{"Content-Encoding": {"gzip"}}, gzipped(t, thriftBody(t, huge)), http.StatusRequestEntityTooLarge, "decompressed request body exceeds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, msg := post(t, url, tc.contentType, tc.body, tc.header)
			if code != tc.wantCode || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("got %d %q, want %d containing %q", code, msg, tc.wantCode, tc.wantMsg)
			}
		})
	}
	if names := b.rec.SpanNames(); !slices.Contains(names, "kept-a") || len(names) != 5 {
		t.Errorf("stored spans %v, want 4 × op and kept", names)
	}

	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestHTTPConsumerErrors(t *testing.T) {
	b := setup(t, nil)
	cases := []struct {
		err        error
		code       int
		retryAfter string
	}{
		{ingest.ErrQueueFull, http.StatusTooManyRequests, "1"},
		{ingest.ErrShuttingDown, http.StatusServiceUnavailable, "1"},
		{storage.ErrUnavailable, http.StatusServiceUnavailable, "1"},
		{errBoom, http.StatusInternalServerError, ""},
	}
	for _, tc := range cases {
		b.rec.SetErr(tc.err)
		for _, target := range []struct{ url, ct string }{
			{"http://" + b.r.HTTPAddr() + "/api/traces", "application/x-thrift"},
			{"http://" + b.r.ZipkinAddr() + "/api/v2/spans", "application/json"},
		} {
			body := thriftBody(t, simpleBatch("svc", "op", 1, 1))
			if target.ct == "application/json" {
				body = zipkinJSON(t)
			}
			code, hdr, msg := post(t, target.url, target.ct, body, nil)
			if code != tc.code || hdr.Get("Retry-After") != tc.retryAfter {
				t.Errorf("%s with %v: %d Retry-After %q (%s), want %d %q", target.url, tc.err, code, hdr.Get("Retry-After"), msg, tc.code, tc.retryAfter)
			}
		}
	}
	if got := b.counter(t, "vigil_ingest_spans_rejected_total", map[string]string{"protocol": ingest.ProtocolJaegerHTTP, "reason": ingest.ReasonQueueFull}); got != 1 {
		t.Errorf("jaeger_http rejected{queue_full} = %v, want 1", got)
	}
}

func zipkinJSON(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal([]map[string]any{{
		"traceId": "0000000000000001", "id": "0000000000000002", "name": "zop",
		"timestamp": nowMicros(), "duration": 10, "localEndpoint": map[string]any{"serviceName": "zsvc"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestZipkinHTTP(t *testing.T) {
	b := setup(t, nil)
	url := "http://" + b.r.ZipkinAddr() + "/api/v2/spans"
	cases := []struct {
		name, contentType string
		header            http.Header
		body              []byte
		wantCode          int
		wantMsg           string
	}{
		{"json", "application/json", nil, zipkinJSON(t), http.StatusAccepted, ""},
		{"json without content type", "", nil, zipkinJSON(t), http.StatusAccepted, ""},
		{"json gzip", "application/json; charset=utf-8", http.Header{"Content-Encoding": {"gzip"}}, gzipped(t, zipkinJSON(t)), http.StatusAccepted, ""},
		{"empty list", "application/json", nil, []byte("[]"), http.StatusAccepted, ""},
		{"bad json", "application/json", nil, []byte(`[{"traceId": 12`), http.StatusBadRequest, "decode zipkin json spans"},
		{"bad trace id", "application/json", nil, []byte(`[{"traceId":"zz","id":"0000000000000002"}]`), http.StatusBadRequest, "decode zipkin json spans"},
		{"bad protobuf", "application/x-protobuf", nil, []byte{0x0a, 0xff, 0xff}, http.StatusBadRequest, "decode zipkin protobuf spans"},
		{"thrift", "application/x-thrift", nil, []byte{1}, http.StatusUnsupportedMediaType, "application/json, application/x-protobuf"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, msg := post(t, url, tc.contentType, tc.body, tc.header)
			if code != tc.wantCode || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("got %d %q, want %d containing %q", code, msg, tc.wantCode, tc.wantMsg)
			}
		})
	}
	if got := len(b.rec.SpanNames()); got != 3 {
		t.Errorf("stored %d spans, want 3", got)
	}
}

func TestHTTPAuth(t *testing.T) {
	tokens, err := auth.NewTokens([]string{"s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, func(_ *Config, o *Options) { o.Auth = tokens })
	for _, target := range []struct {
		url, ct string
		body    []byte
	}{
		{"http://" + b.r.HTTPAddr() + "/api/traces", "application/x-thrift", thriftBody(t, simpleBatch("svc", "op", 1, 1))},
		{"http://" + b.r.ZipkinAddr() + "/api/v2/spans", "application/json", zipkinJSON(t)},
	} {
		if code, hdr, _ := post(t, target.url, target.ct, target.body, nil); code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without token: %d", target.url, code)
		}
		if code, _, _ := post(t, target.url, target.ct, target.body, http.Header{"Authorization": {"Bearer wrong"}}); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d", target.url, code)
		}
		if code, _, msg := post(t, target.url, target.ct, target.body, http.Header{"Authorization": {"Bearer s3cret"}}); code != http.StatusAccepted {
			t.Errorf("%s with the token: %d %s", target.url, code, msg)
		}
	}
	// UDP is never authenticated.
	sendUDP(t, b.r.UDPCompactAddr(), agentMessage(t, simpleBatch("svc", "udp", 9, 1), true))
	waitFor(t, "udp span", func() bool { return len(b.rec.SpanNames()) == 3 })
}
