package jaeger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/internal/auth"
)

var errBoom = errors.New("boom")

// newCompactSerializer encodes thrift structs in compact thrift.
func newCompactSerializer() *thrift.TSerializer {
	s := thrift.NewTSerializer()
	s.Protocol = thrift.NewTCompactProtocolConf(s.Transport, nil)
	return s
}

func TestGRPC(t *testing.T) {
	b := setup(t, nil)
	client := collectorClient(t, b.r.GRPCAddr())
	ctx := context.Background()

	// A large batch checks the gogo-generated types through grpc's
	// default codec beyond a toy message.
	big := simpleModelBatch("svc", "big", 1, 5000)
	if _, err := client.PostSpans(ctx, &api_v2.PostSpansRequest{Batch: big}); err != nil {
		t.Fatalf("PostSpans(5000 spans): %v", err)
	}
	if got := len(b.rec.SpanNames()); got != 5000 {
		t.Fatalf("stored %d spans, want 5000", got)
	}

	bad := simpleModelBatch("svc", "bad", 0, 2) // trace id all zeros
	_, err := client.PostSpans(ctx, &api_v2.PostSpansRequest{Batch: bad})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() == "" {
		t.Errorf("all invalid: %v, want InvalidArgument naming the problem", err)
	} else if want := "all 2 spans rejected: resource_spans[0].scope_spans[0].spans[0]: trace_id is all zeros"; st.Message()[:len(want)] != want {
		t.Errorf("message %q, want prefix %q", st.Message(), want)
	}

	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{ingest.ErrQueueFull, codes.ResourceExhausted},
		{ingest.ErrShuttingDown, codes.Unavailable},
		{errBoom, codes.Internal},
	} {
		b.rec.SetErr(tc.err)
		_, err := client.PostSpans(ctx, &api_v2.PostSpansRequest{Batch: simpleModelBatch("svc", "x", 2, 1)})
		st := status.Convert(err)
		if st.Code() != tc.code {
			t.Errorf("consumer %v: %v, want %v", tc.err, err, tc.code)
		}
		if tc.code != codes.Internal {
			var delay time.Duration
			for _, d := range st.Details() {
				if ri, ok := d.(*errdetails.RetryInfo); ok {
					delay = ri.GetRetryDelay().AsDuration()
				}
			}
			if delay != DefaultRetryAfter {
				t.Errorf("consumer %v: retry delay %v, want %v", tc.err, delay, DefaultRetryAfter)
			}
		}
	}
	if got := b.counter(t, "vigil_ingest_spans_stored_total", map[string]string{"protocol": ingest.ProtocolJaegerGRPC}); got != 5000 {
		t.Errorf("jaeger_grpc stored = %v", got)
	}
}

func TestGRPCAuthAndSize(t *testing.T) {
	tokens, err := auth.NewTokens([]string{"s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, func(c *Config, o *Options) { o.Auth = tokens; c.MaxRequestBytes = 4 << 10 })
	client := collectorClient(t, b.r.GRPCAddr())
	req := &api_v2.PostSpansRequest{Batch: simpleModelBatch("svc", "x", 1, 1)}
	if _, err := client.PostSpans(context.Background(), req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("without token: %v", err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer s3cret")
	if _, err := client.PostSpans(ctx, req); err != nil {
		t.Errorf("with token: %v", err)
	}
	big := &api_v2.PostSpansRequest{Batch: simpleModelBatch("svc", "x", 1, 200)}
	if _, err := client.PostSpans(ctx, big); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("oversized message: %v, want ResourceExhausted", err)
	}
}
