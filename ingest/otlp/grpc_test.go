package otlp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receivertest"
	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/storage"
)

func TestGRPCErrors(t *testing.T) {
	const limit = 1 << 20
	badName := newRequest("ok", "bad")
	spanOf(badName, 0).SetName("nul\x00")
	spanOf(badName, 1).SetSpanID(pcommon.SpanID{})
	big := newRequest("big")
	spanOf(big, 0).Attributes().PutStr("blob", strings.Repeat("x", limit))
	bomb := newRequest("bomb")
	spanOf(bomb, 0).Attributes().PutStr("blob", strings.Repeat("\x00", 4*limit))

	tests := []struct {
		name     string
		req      ptraceotlp.ExportRequest
		opts     []grpc.CallOption
		wantCode codes.Code
		wantMsg  string
	}{
		{
			name: "all spans rejected", req: badName,
			wantCode: codes.InvalidArgument,
			wantMsg: "all 2 spans rejected: resource_spans[0].scope_spans[0].spans[0]: name contains a NUL byte; " +
				"resource_spans[0].scope_spans[0].spans[1]: span_id is all zeros",
		},
		{
			name: "oversized", req: big,
			wantCode: codes.ResourceExhausted, wantMsg: "grpc: received message larger than max",
		},
		{
			name: "gzip bomb", req: bomb, opts: []grpc.CallOption{grpc.UseCompressor("gzip")},
			wantCode: codes.ResourceExhausted, wantMsg: "grpc: received message after decompression larger than max",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setup(t, func(c *Config, _ *Options) { c.MaxRequestBytes = limit })
			_, err := b.grpcClient(t).Export(t.Context(), tt.req, tt.opts...)
			st, _ := status.FromError(err)
			if st.Code() != tt.wantCode || !strings.HasPrefix(st.Message(), tt.wantMsg) {
				t.Fatalf("got %v %q\nwant %v %q", st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
			}
			if n := b.rec.Calls(); n != 0 {
				t.Fatalf("consumer called %d times", n)
			}
		})
	}
}

func TestGRPCAuth(t *testing.T) {
	tokens, err := auth.NewTokens([]string{"tok"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		md       metadata.MD
		wantCode codes.Code
		wantMsg  string
	}{
		{name: "missing", md: metadata.MD{}, wantCode: codes.Unauthenticated, wantMsg: "missing bearer token"},
		{name: "wrong", md: metadata.Pairs("authorization", "Bearer nope"), wantCode: codes.Unauthenticated, wantMsg: "invalid bearer token"},
		{name: "right", md: metadata.Pairs("authorization", "Bearer tok"), wantCode: codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setup(t, func(_ *Config, o *Options) { o.Auth = tokens })
			ctx := metadata.NewOutgoingContext(t.Context(), tt.md)
			_, err := b.grpcClient(t).Export(ctx, newRequest("a"))
			st, _ := status.FromError(err)
			if st.Code() != tt.wantCode || st.Message() != tt.wantMsg {
				t.Fatalf("got %v %q, want %v %q", st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
			}
			wantCalls := 0
			if tt.wantCode == codes.OK {
				wantCalls = 1
			}
			if n := b.rec.Calls(); n != wantCalls {
				t.Fatalf("consumer called %d times, want %d", n, wantCalls)
			}
		})
	}
}

// TestConsumerErrors checks how both transports answer each consumer
// failure: status, retry hints, and the rejected counter.
func TestConsumerErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantCode   codes.Code
		wantHTTP   int
		wantMsg    string
		wantRetry  bool
		wantReason string
	}{
		{
			name: "queue full", err: fmt.Errorf("enqueue: %w", ingest.ErrQueueFull),
			wantCode: codes.ResourceExhausted, wantHTTP: http.StatusTooManyRequests,
			wantMsg: "ingest queue full, retry later", wantRetry: true, wantReason: ingest.ReasonQueueFull,
		},
		{
			name: "shutting down", err: ingest.ErrShuttingDown,
			wantCode: codes.Unavailable, wantHTTP: http.StatusServiceUnavailable,
			wantMsg: "ingest pipeline shutting down, retry later", wantRetry: true, wantReason: ingest.ReasonUnavailable,
		},
		{
			name: "storage unavailable", err: fmt.Errorf("copy spans: dial tcp 10.0.0.5:5432: %w", storage.ErrUnavailable),
			wantCode: codes.Unavailable, wantHTTP: http.StatusServiceUnavailable,
			wantMsg: "storage unavailable, retry later", wantRetry: true, wantReason: ingest.ReasonUnavailable,
		},
		{
			name: "deadline", err: fmt.Errorf("wait commit: %w", context.DeadlineExceeded),
			wantCode: codes.DeadlineExceeded, wantHTTP: http.StatusGatewayTimeout,
			wantMsg: "deadline exceeded before the spans were stored", wantReason: ingest.ReasonCanceled,
		},
		{
			name: "canceled", err: context.Canceled,
			wantCode: codes.Canceled, wantHTTP: 499,
			wantMsg: "request canceled before the spans were stored", wantReason: ingest.ReasonCanceled,
		},
		{
			name: "other", err: errors.New("pq: relation \"spans\" does not exist"),
			wantCode: codes.Internal, wantHTTP: http.StatusInternalServerError,
			wantMsg: "internal error storing spans", wantReason: ingest.ReasonError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setup(t, nil)
			b.rec.SetErr(tt.err)

			// gRPC
			_, err := b.grpcClient(t).Export(t.Context(), newRequest("a", "b"))
			st, _ := status.FromError(err)
			if st.Code() != tt.wantCode || st.Message() != tt.wantMsg {
				t.Errorf("grpc: got %v %q, want %v %q", st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
			}
			delay, hasRetry := receivertest.RetryDelay(st.Details())
			if hasRetry != tt.wantRetry || (hasRetry && delay != DefaultRetryAfter) {
				t.Errorf("grpc: retry info %v %v, want %v %v", hasRetry, delay, tt.wantRetry, DefaultRetryAfter)
			}

			// HTTP, both encodings
			for _, h := range []http.Header{protoHeader, jsonHeader} {
				ct := h.Get("Content-Type")
				body := mustProto(t, newRequest("a", "b"))
				if ct == contentTypeJSON {
					body = mustJSON(t, newRequest("a", "b"))
				}
				resp, respBody := b.post(t, body, h)
				if resp.StatusCode != tt.wantHTTP {
					t.Errorf("http %s: status %d, want %d", ct, resp.StatusCode, tt.wantHTTP)
				}
				if got, want := resp.Header.Get("Retry-After") != "", tt.wantRetry; got != want {
					t.Errorf("http %s: Retry-After %q, want present=%v", ct, resp.Header.Get("Retry-After"), want)
				} else if got && resp.Header.Get("Retry-After") != "1" {
					t.Errorf("http %s: Retry-After %q, want 1", ct, resp.Header.Get("Retry-After"))
				}
				if got := resp.Header.Get("Content-Type"); got != ct {
					t.Errorf("http %s: content type %q", ct, got)
				}
				hst := decodeStatus(t, ct, respBody)
				if codes.Code(hst.GetCode()) != tt.wantCode || hst.GetMessage() != tt.wantMsg {
					t.Errorf("http %s: status body %v %q, want %v %q", ct, codes.Code(hst.GetCode()), hst.GetMessage(), tt.wantCode, tt.wantMsg)
				}
				if got := len(hst.GetDetails()) > 0; got != tt.wantRetry {
					t.Errorf("http %s: status details %v, want RetryInfo=%v", ct, hst.GetDetails(), tt.wantRetry)
				}
			}

			for protocol, want := range map[string]float64{ingest.ProtocolOTLPGRPC: 2, ingest.ProtocolOTLPHTTP: 4} {
				labels := map[string]string{"protocol": protocol, "reason": tt.wantReason}
				if got := b.counter(t, "vigil_ingest_spans_rejected_total", labels); got != want {
					t.Errorf("rejected%v = %v, want %v", labels, got, want)
				}
				if got := b.counter(t, "vigil_ingest_spans_stored_total", map[string]string{"protocol": protocol}); got != 0 {
					t.Errorf("stored{%s} = %v, want 0", protocol, got)
				}
			}
		})
	}
}
