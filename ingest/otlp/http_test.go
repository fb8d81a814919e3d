package otlp

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/internal/auth"
)

var (
	protoHeader = http.Header{"Content-Type": {contentTypeProto}}
	jsonHeader  = http.Header{"Content-Type": {contentTypeJSON}}
)

func withHeader(h http.Header, kv ...string) http.Header {
	out := h.Clone()
	for i := 0; i+1 < len(kv); i += 2 {
		out.Set(kv[i], kv[i+1])
	}
	return out
}

func gzipBytes(t *testing.T, b []byte) []byte {
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

func zlibBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// decodeStatus decodes a google.rpc.Status error body in the encoding of
// contentType.
func decodeStatus(t *testing.T, contentType string, body []byte) *spb.Status {
	t.Helper()
	st := &spb.Status{}
	var err error
	switch contentType {
	case contentTypeProto:
		err = proto.Unmarshal(body, st)
	case contentTypeJSON:
		err = protojson.Unmarshal(body, st)
	default:
		t.Fatalf("error body has content type %q", contentType)
	}
	if err != nil {
		t.Fatalf("decode status body %q: %v", body, err)
	}
	return st
}

// badTraceIDRequest is a protobuf request whose only span has a 3-byte
// trace_id.
func badTraceIDRequest() []byte {
	span := protowire.AppendTag(nil, 1, protowire.BytesType)
	span = protowire.AppendBytes(span, []byte{1, 2, 3})
	scope := protowire.AppendTag(nil, 2, protowire.BytesType)
	scope = protowire.AppendBytes(scope, span)
	rs := protowire.AppendTag(nil, 2, protowire.BytesType)
	rs = protowire.AppendBytes(rs, scope)
	req := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(req, rs)
}

func TestHTTPRequests(t *testing.T) {
	const limit = 1 << 20
	valid := newRequest("a", "b")
	validProto, validJSON := mustProto(t, valid), mustJSON(t, valid)

	badName := newRequest("x")
	spanOf(badName, 0).SetName("caf\xe9")
	tooManyAttrs := newRequest("x")
	for i := 0; i < 128; i++ {
		spanOf(tooManyAttrs, 0).Attributes().PutInt(fmt.Sprintf("k%03d", i), int64(i))
	}

	bigAttr := newRequest("big")
	spanOf(bigAttr, 0).Attributes().PutStr("blob", strings.Repeat("x", limit))
	bigProto := mustProto(t, bigAttr)

	tests := []struct {
		name       string
		method     string
		header     http.Header
		body       []byte
		chunked    bool
		wantStatus int
		wantType   string
		wantCode   codes.Code
		wantMsg    string // substring of the message
		wantSpans  int
	}{
		{name: "protobuf", header: protoHeader, body: validProto, wantStatus: 200, wantType: contentTypeProto, wantSpans: 2},
		{name: "json", header: jsonHeader, body: validJSON, wantStatus: 200, wantType: contentTypeJSON, wantSpans: 2},
		{name: "json with charset", header: withHeader(jsonHeader, "Content-Type", "application/json; charset=utf-8"), body: validJSON, wantStatus: 200, wantType: contentTypeJSON, wantSpans: 2},
		{name: "gzip protobuf", header: withHeader(protoHeader, "Content-Encoding", "gzip"), body: gzipBytes(t, validProto), wantStatus: 200, wantType: contentTypeProto, wantSpans: 2},
		{name: "gzip json chunked", header: withHeader(jsonHeader, "Content-Encoding", "gzip"), body: gzipBytes(t, validJSON), chunked: true, wantStatus: 200, wantType: contentTypeJSON, wantSpans: 2},
		{name: "deflate protobuf", header: withHeader(protoHeader, "Content-Encoding", "deflate"), body: zlibBytes(t, validProto), wantStatus: 200, wantType: contentTypeProto, wantSpans: 2},
		{name: "zstd json", header: withHeader(jsonHeader, "Content-Encoding", "zstd"), body: zstdBytes(t, validJSON), wantStatus: 200, wantType: contentTypeJSON, wantSpans: 2},
		{name: "empty protobuf request", header: protoHeader, body: nil, wantStatus: 200, wantType: contentTypeProto},
		{name: "empty json object", header: jsonHeader, body: []byte("{}"), wantStatus: 200, wantType: contentTypeJSON},
		{
			name: "truncated protobuf", header: protoHeader, body: validProto[:len(validProto)-5],
			wantStatus: 400, wantType: contentTypeProto, wantCode: codes.InvalidArgument,
			wantMsg: "decode protobuf ExportTraceServiceRequest: resource_spans[0]: unexpected EOF (byte 1)",
		},
		{
			name: "protobuf trace_id of 3 bytes", header: protoHeader, body: badTraceIDRequest(),
			wantStatus: 400, wantType: contentTypeProto, wantCode: codes.InvalidArgument,
			wantMsg: "decode protobuf ExportTraceServiceRequest: resource_spans[0].scope_spans[0].spans[0].trace_id: 3 bytes, want 16 (byte 8)",
		},
		{
			name: "protobuf garbage", header: protoHeader, body: []byte("not a protobuf"),
			wantStatus: 400, wantType: contentTypeProto, wantCode: codes.InvalidArgument, wantMsg: "decode protobuf ExportTraceServiceRequest: ",
		},
		{
			name: "json wrong type", header: jsonHeader, body: []byte(`{"resourceSpans": 5}`),
			wantStatus: 400, wantType: contentTypeJSON, wantCode: codes.InvalidArgument,
			wantMsg: "decode json ExportTraceServiceRequest: ReadArray: expect [ or , or ] or n, but found 5, after `eSpans\": 5`",
		},
		{
			name: "json bad trace id", header: jsonHeader,
			body:       []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abcd","spanId":"0102030405060708"}]}]}]}`),
			wantStatus: 400, wantType: contentTypeJSON, wantCode: codes.InvalidArgument,
			wantMsg: "decode json ExportTraceServiceRequest: ID.UnmarshalJSONIter: length mismatch, after `Id\":\"abcd\"`",
		},
		{
			name: "json truncated", header: jsonHeader, body: validJSON[:len(validJSON)/2],
			wantStatus: 400, wantType: contentTypeJSON, wantCode: codes.InvalidArgument, wantMsg: "decode json ExportTraceServiceRequest: ",
		},
		{
			name: "json trailing data", header: jsonHeader, body: append(append([]byte{}, validJSON...), " {}"...),
			wantStatus: 400, wantType: contentTypeJSON, wantCode: codes.InvalidArgument,
			wantMsg: fmt.Sprintf("decode json ExportTraceServiceRequest: unexpected data after the top-level object at byte %d", len(validJSON)+1),
		},
		{
			name: "json nested too deep", header: jsonHeader, body: []byte(strings.Repeat("[", 10000)),
			wantStatus: 400, wantType: contentTypeJSON, wantCode: codes.InvalidArgument,
			wantMsg: fmt.Sprintf("decode json ExportTraceServiceRequest: JSON nested deeper than %d levels at byte %d", maxJSONDepth, maxJSONDepth),
		},
		{
			name: "invalid utf8 span name", header: protoHeader, body: mustProto(t, badName),
			wantStatus: 400, wantType: contentTypeProto, wantCode: codes.InvalidArgument,
			wantMsg: "all 1 spans rejected: resource_spans[0].scope_spans[0].spans[0]: name is not valid UTF-8",
		},
		{
			name: "too many attributes json", header: jsonHeader, body: mustJSON(t, tooManyAttrs),
			wantStatus: 400, wantType: contentTypeJSON, wantCode: codes.InvalidArgument,
			wantMsg: "all 1 spans rejected: resource_spans[0].scope_spans[0].spans[0]: attributes has 129 entries, over the limit of 128",
		},
		{
			name: "oversized with length", header: protoHeader, body: bigProto,
			wantStatus: 413, wantType: contentTypeProto, wantCode: codes.ResourceExhausted,
			wantMsg: fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", len(bigProto), limit),
		},
		{
			name: "oversized chunked", header: protoHeader, body: bigProto, chunked: true,
			wantStatus: 413, wantType: contentTypeProto, wantCode: codes.ResourceExhausted,
			wantMsg: fmt.Sprintf("request body exceeds the limit of %d bytes", limit),
		},
		{
			name: "gzip bomb", header: withHeader(protoHeader, "Content-Encoding", "gzip"), body: gzipBytes(t, make([]byte, 64<<20)),
			wantStatus: 413, wantType: contentTypeProto, wantCode: codes.ResourceExhausted,
			wantMsg: fmt.Sprintf("decompressed request body exceeds the limit of %d bytes", limit),
		},
		{
			name: "zstd bomb", header: withHeader(jsonHeader, "Content-Encoding", "zstd"), body: zstdBytes(t, make([]byte, 64<<20)),
			wantStatus: 413, wantType: contentTypeJSON, wantCode: codes.ResourceExhausted,
			wantMsg: fmt.Sprintf("decompressed request body exceeds the limit of %d bytes", limit),
		},
		{
			name: "corrupt gzip", header: withHeader(protoHeader, "Content-Encoding", "gzip"), body: validProto,
			wantStatus: 400, wantType: contentTypeProto, wantCode: codes.InvalidArgument,
			wantMsg: "decompress gzip request body: gzip: invalid header",
		},
		{
			name: "truncated gzip", header: withHeader(protoHeader, "Content-Encoding", "gzip"), body: gzipBytes(t, validProto)[:30],
			wantStatus: 400, wantType: contentTypeProto, wantCode: codes.InvalidArgument,
			wantMsg: "decompress gzip request body: unexpected EOF",
		},
		{
			name: "unsupported encoding", header: withHeader(protoHeader, "Content-Encoding", "br"), body: validProto,
			wantStatus: 415, wantType: contentTypeProto, wantCode: codes.InvalidArgument,
			wantMsg: `unsupported content encoding "br", use gzip, deflate, zstd or none`,
		},
		{
			name: "wrong content type", header: http.Header{"Content-Type": {"text/plain"}}, body: validJSON,
			wantStatus: 415, wantType: "text/plain; charset=utf-8",
			wantMsg: `unsupported content type "text/plain", use application/x-protobuf or application/json`,
		},
		{
			name: "no content type", header: http.Header{}, body: validProto,
			wantStatus: 415, wantType: "text/plain; charset=utf-8",
			wantMsg: `unsupported content type "", use application/x-protobuf or application/json`,
		},
		{
			name: "get", method: http.MethodGet, header: protoHeader,
			wantStatus: 405, wantType: contentTypeProto, wantCode: codes.Unimplemented,
			wantMsg: "method GET not allowed, OTLP/HTTP uses POST",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setup(t, func(c *Config, _ *Options) { c.MaxRequestBytes = limit })
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			var body io.Reader = bytes.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // unknown length: sent chunked
			}
			req, err := http.NewRequest(method, "http://"+b.r.HTTPAddr()+"/v1/traces", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tt.header.Clone()
			resp, err := httpClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			respBody, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tt.wantStatus, respBody)
			}
			ct := resp.Header.Get("Content-Type")
			if ct != tt.wantType {
				t.Fatalf("content type %q, want %q", ct, tt.wantType)
			}
			if got := len(recordedSpans(b.rec)); got != tt.wantSpans {
				t.Fatalf("consumer got %d spans, want %d", got, tt.wantSpans)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != http.MethodPost {
				t.Errorf("Allow = %q, want POST", resp.Header.Get("Allow"))
			}
			if tt.wantStatus == http.StatusOK {
				out := ptraceotlp.NewExportResponse()
				if ct == contentTypeJSON {
					err = out.UnmarshalJSON(respBody)
				} else {
					err = out.UnmarshalProto(respBody)
				}
				if err != nil {
					t.Fatalf("decode response %q: %v", respBody, err)
				}
				if ps := out.PartialSuccess(); ps.RejectedSpans() != 0 || ps.ErrorMessage() != "" {
					t.Fatalf("unexpected partial success %d %q", ps.RejectedSpans(), ps.ErrorMessage())
				}
				return
			}
			msg := strings.TrimSuffix(string(respBody), "\n")
			if ct != "text/plain; charset=utf-8" {
				st := decodeStatus(t, ct, respBody)
				if codes.Code(st.GetCode()) != tt.wantCode {
					t.Errorf("status code %v, want %v", codes.Code(st.GetCode()), tt.wantCode)
				}
				msg = st.GetMessage()
			}
			if !strings.HasPrefix(msg, tt.wantMsg) {
				t.Errorf("message %q\nwant prefix %q", msg, tt.wantMsg)
			}
		})
	}
}

func TestPartialSuccess(t *testing.T) {
	const wantMsg = "resource_spans[0].scope_spans[0].spans[1]: trace_id is all zeros; " +
		`resource_spans[0].scope_spans[0].spans[3]: attributes["http.url"] value is not valid UTF-8`
	newPartial := func() ptraceotlp.ExportRequest {
		req := newRequest("a", "zero-trace", "c", "bad-utf8")
		spanOf(req, 1).SetTraceID(pcommon.TraceID{})
		spanOf(req, 3).Attributes().PutStr("http.url", "/caf\xe9")
		return req
	}
	tests := []struct {
		name     string
		protocol string
		export   func(t *testing.T, b *bundle) ptraceotlp.ExportResponse
	}{
		{
			name: "grpc", protocol: ingest.ProtocolOTLPGRPC,
			export: func(t *testing.T, b *bundle) ptraceotlp.ExportResponse {
				resp, err := b.grpcClient(t).Export(t.Context(), newPartial())
				if err != nil {
					t.Fatalf("Export: %v", err)
				}
				return resp
			},
		},
		{
			name: "http protobuf", protocol: ingest.ProtocolOTLPHTTP,
			export: func(t *testing.T, b *bundle) ptraceotlp.ExportResponse {
				resp, body := b.post(t, mustProto(t, newPartial()), protoHeader)
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != contentTypeProto {
					t.Fatalf("status %d %q: %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
				out := ptraceotlp.NewExportResponse()
				if err := out.UnmarshalProto(body); err != nil {
					t.Fatal(err)
				}
				return out
			},
		},
		{
			name: "http json", protocol: ingest.ProtocolOTLPHTTP,
			export: func(t *testing.T, b *bundle) ptraceotlp.ExportResponse {
				resp, body := b.post(t, mustJSON(t, newPartial()), jsonHeader)
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != contentTypeJSON {
					t.Fatalf("status %d %q: %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
				out := ptraceotlp.NewExportResponse()
				if err := out.UnmarshalJSON(body); err != nil {
					t.Fatal(err)
				}
				return out
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setup(t, nil)
			resp := tt.export(t, b)
			ps := resp.PartialSuccess()
			if ps.RejectedSpans() != 2 || ps.ErrorMessage() != wantMsg {
				t.Fatalf("partial success %d %q\nwant 2 %q", ps.RejectedSpans(), ps.ErrorMessage(), wantMsg)
			}
			if got := strings.Join(b.rec.SpanNames(), ","); got != "a,c" {
				t.Fatalf("consumer got spans %s, want a,c", got)
			}
			for _, c := range []struct {
				name   string
				labels map[string]string
				want   float64
			}{
				{"vigil_ingest_spans_received_total", map[string]string{"protocol": tt.protocol}, 4},
				{"vigil_ingest_spans_stored_total", map[string]string{"protocol": tt.protocol}, 2},
				{"vigil_ingest_spans_rejected_total", map[string]string{"protocol": tt.protocol, "reason": ingest.ReasonInvalidID}, 1},
				{"vigil_ingest_spans_rejected_total", map[string]string{"protocol": tt.protocol, "reason": ingest.ReasonInvalidUTF8}, 1},
			} {
				if got := b.counter(t, c.name, c.labels); got != c.want {
					t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
				}
			}
		})
	}
}

func TestHTTPAuth(t *testing.T) {
	tokens, err := auth.NewTokens([]string{"tok"})
	if err != nil {
		t.Fatal(err)
	}
	body := mustProto(t, newRequest("a"))
	tests := []struct {
		name       string
		header     http.Header
		wantStatus int
		wantChall  string
		wantMsg    string
	}{
		{name: "missing", header: protoHeader, wantStatus: 401, wantChall: `Bearer realm="vigil"`, wantMsg: "missing bearer token"},
		{name: "wrong", header: withHeader(protoHeader, "Authorization", "Bearer tak"), wantStatus: 401, wantChall: `Bearer realm="vigil", error="invalid_token"`, wantMsg: "invalid bearer token"},
		{name: "other scheme", header: withHeader(protoHeader, "Authorization", "Basic dG9rOg=="), wantStatus: 401, wantChall: `Bearer realm="vigil"`, wantMsg: "missing bearer token"},
		{name: "right", header: withHeader(protoHeader, "Authorization", "Bearer tok"), wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setup(t, func(_ *Config, o *Options) { o.Auth = tokens })
			resp, respBody := b.post(t, body, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %q", resp.StatusCode, tt.wantStatus, respBody)
			}
			if tt.wantStatus == 200 {
				if n := len(recordedSpans(b.rec)); n != 1 {
					t.Fatalf("consumer got %d spans, want 1", n)
				}
				return
			}
			if n := b.rec.Calls(); n != 0 {
				t.Fatalf("consumer called %d times", n)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wantChall {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.wantChall)
			}
			st := decodeStatus(t, resp.Header.Get("Content-Type"), respBody)
			if codes.Code(st.GetCode()) != codes.Unauthenticated || st.GetMessage() != tt.wantMsg {
				t.Errorf("status %v %q, want Unauthenticated %q", codes.Code(st.GetCode()), st.GetMessage(), tt.wantMsg)
			}
		})
	}
}

func TestHTTPNotFound(t *testing.T) {
	b := setup(t, nil)
	req, err := http.NewRequest(http.MethodPost, "http://"+b.r.HTTPAddr()+"/v1/logs", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404 for a signal without consumer", resp.StatusCode)
	}
}

func TestTidyJSONError(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"plain error", "plain error"},
		{"Op: msg, error found in #3 byte of ...|abcdef|..., bigger context ...|xxabcdefyy|...", "Op: msg, after `abc`"},
		{"Op: msg, error found in #0 byte of ...||..., bigger context ...||...", "Op: msg, at the start of the body"},
		{"Op: msg, error found in #99 byte of ...|ab|...", "Op: msg"},
		{"Op: msg, error found in #x byte of", "Op: msg"},
		{"Op: msg, error found in #", "Op: msg"},
	}
	for _, tt := range tests {
		if got := tidyJSONError(errors.New(tt.in)); got != tt.want {
			t.Errorf("tidyJSONError(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRetryAfterRounding(t *testing.T) {
	b := setup(t, func(c *Config, _ *Options) {
		c.GRPCAddr = ""
		c.RetryAfter = 1500 * time.Millisecond
	})
	b.rec.SetErr(ingest.ErrQueueFull)
	resp, _ := b.post(t, mustProto(t, newRequest("a")), protoHeader)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("status %d Retry-After %q, want 429 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestCheckJSONShape(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{in: `{}`},
		{in: " \n{\"a\":[1,{\"b\":2}]}\r\n\t "},
		{in: `{"s":"[[[[\"}}}}"}`}, // brackets and escaped quotes inside strings
		{in: `{"s":"\\"}`},         // escaped backslash ends before the quote
		{in: `[[[]]]`},             // not an object: left to the decoder
		{in: `{"a":1`},             // unterminated: left to the decoder
		{in: `{"a":[[[[1]]]]}`, wantErr: "JSON nested deeper than 4 levels at byte 8"},
		{in: `{} {}`, wantErr: "unexpected data after the top-level object at byte 3"},
		{in: `{"s":"}"}x`, wantErr: "unexpected data after the top-level object at byte 9"},
	}
	for _, tt := range tests {
		err := checkJSONShape([]byte(tt.in), 4)
		if (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
			t.Errorf("checkJSONShape(%q) = %v, want %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestDeepAttributeValues(t *testing.T) {
	req := newRequest("deep")
	v := spanOf(req, 0).Attributes().PutEmpty("v")
	for i := 0; i < ingest.MaxAttributeValueDepth+1; i++ {
		v = v.SetEmptySlice().AppendEmpty()
	}
	v.SetStr("leaf")
	b := setup(t, nil)
	resp, body := b.post(t, mustJSON(t, req), jsonHeader)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	st := decodeStatus(t, contentTypeJSON, body)
	want := "all 1 spans rejected: resource_spans[0].scope_spans[0].spans[0]: " +
		`attributes["v"]` + strings.Repeat("[0]", ingest.MaxAttributeValueDepth-1) + " value is nested deeper than 32 levels"
	if st.GetMessage() != want {
		t.Fatalf("json message %q\nwant %q", st.GetMessage(), want)
	}
	// Protobuf: pdata's decoder stops first; the walker names the place.
	for _, depth := range []int{ingest.MaxAttributeValueDepth + 1, 60} {
		req := newRequest("deep")
		v := spanOf(req, 0).Attributes().PutEmpty("v")
		for i := 1; i < depth; i++ {
			v = v.SetEmptyMap().PutEmpty("k")
		}
		v.SetStr("leaf")
		resp, body = b.post(t, mustProto(t, req), protoHeader)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("protobuf depth %d: status %d: %s", depth, resp.StatusCode, body)
		}
		msg := decodeStatus(t, contentTypeProto, body).GetMessage()
		if !strings.Contains(msg, "nested deeper than 32 levels") || !strings.Contains(msg, "spans[0]") {
			t.Fatalf("protobuf depth %d: message %q", depth, msg)
		}
	}
}
