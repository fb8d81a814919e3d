package receiver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/golang/snappy"
	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receivertest"
	"github.com/vigil-obs/vigil/ingest/jaeger"
	"github.com/vigil-obs/vigil/ingest/otlp"
	"github.com/vigil-obs/vigil/ingest/pipeline"
	"github.com/vigil-obs/vigil/ingest/promremote"
	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/internal/inflight"
	"github.com/vigil-obs/vigil/storage"
)

const (
	testToken       = "s3cret"
	maxRequestBytes = 1 << 20
	budgetBytes     = 4 << 20
)

// consumer fails every call with err (nil: success). It is the trace
// consumer of the OTLP and Jaeger receivers and the AppendableV2 of
// remote_write, whose Commit returns err.
type consumer struct {
	mu  sync.Mutex
	err error
}

func (c *consumer) set(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

func (c *consumer) get() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *consumer) ConsumeTraces(context.Context, ptrace.Traces) error { return c.get() }

func (c *consumer) AppenderV2(context.Context) promstorage.AppenderV2 { return appender{c} }

type appender struct{ c *consumer }

func (appender) Append(promstorage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, promstorage.AOptions) (promstorage.SeriesRef, error) {
	return 0, nil
}
func (a appender) Commit() error { return a.c.get() }
func (appender) Rollback() error { return nil }

// receivers is every receiver that answers its senders, on loopback, over
// one consumer, one in-flight budget and one ingest token.
type receivers struct {
	consumer    *consumer
	budget      *inflight.Budget
	otlp        *otlp.Receiver
	jaeger      *jaeger.Receiver
	remoteWrite string // URL of POST /api/v1/write
}

func setup(t *testing.T) *receivers {
	t.Helper()
	c := &consumer{}
	budget, err := inflight.New(budgetBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]string{testToken})
	if err != nil {
		t.Fatal(err)
	}
	o, err := otlp.New(otlp.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", MaxRequestBytes: maxRequestBytes},
		otlp.Options{Traces: c, Auth: tokens, Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	receivertest.Run(t, o, 10*time.Second)
	j, err := jaeger.New(jaeger.Config{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", ZipkinAddr: "127.0.0.1:0", MaxRequestBytes: maxRequestBytes},
		jaeger.Options{Traces: c, Auth: tokens, Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	receivertest.Run(t, j, 10*time.Second)
	rw, err := promremote.New(c, promremote.Config{MaxRequestBytes: maxRequestBytes}, promremote.Options{Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	// Mounted behind the ingest tokens as web.Server mounts it.
	srv := httptest.NewServer(tokens.Middleware(rw))
	t.Cleanup(srv.Close)
	return &receivers{consumer: c, budget: budget, otlp: o, jaeger: j, remoteWrite: srv.URL + "/api/v1/write"}
}

// answer is what a sender got: the gRPC code or HTTP status, and the retry
// hint (RetryInfo, Retry-After) when there is one.
type answer struct {
	grpc       codes.Code
	http       int
	retryAfter time.Duration // 0: no hint
	challenge  bool          // WWW-Authenticate set
}

func (a answer) String() string {
	if a.http != 0 {
		return fmt.Sprintf("HTTP %d retry %v challenge %v", a.http, a.retryAfter, a.challenge)
	}
	return fmt.Sprintf("gRPC %v retry %v", a.grpc, a.retryAfter)
}

// protocol sends one request of valid (or, with invalid, wholly invalid)
// data to one receiver, with the token unless noToken.
type protocol struct {
	name    string
	success answer
	send    func(t *testing.T, r *receivers, invalid, noToken bool) answer
}

func grpcAnswer(err error) answer {
	st := status.Convert(err)
	a := answer{grpc: st.Code()}
	if d, ok := receivertest.RetryDelay(st.Details()); ok {
		a.retryAfter = d
	}
	return a
}

func grpcConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func grpcContext(t *testing.T, noToken bool) context.Context {
	if noToken {
		return t.Context()
	}
	return metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+testToken)
}

func post(t *testing.T, url, contentType string, header http.Header, body []byte, noToken bool) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header[k] = v
	}
	if !noToken {
		req.Header.Set("Authorization", "Bearer "+testToken)
	}
	resp, err := receivertest.HTTPClient(t).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	a := answer{http: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate") != ""}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		var secs int
		if _, err := fmt.Sscan(ra, &secs); err != nil {
			t.Fatalf("Retry-After %q: %v", ra, err)
		}
		a.retryAfter = time.Duration(secs) * time.Second
	}
	return a
}

func otlpTraces(invalid bool) ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	if !invalid {
		sp.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	}
	sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	sp.SetName("op")
	now := time.Now()
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Second)))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
	return ptraceotlp.NewExportRequestFromTraces(td)
}

var protocols = []protocol{
	{
		name: "otlp grpc", success: answer{grpc: codes.OK},
		send: func(t *testing.T, r *receivers, invalid, noToken bool) answer {
			_, err := ptraceotlp.NewGRPCClient(grpcConn(t, r.otlp.GRPCAddr())).Export(grpcContext(t, noToken), otlpTraces(invalid))
			return grpcAnswer(err)
		},
	},
	{
		name: "otlp http", success: answer{http: http.StatusOK},
		send: func(t *testing.T, r *receivers, invalid, noToken bool) answer {
			body, err := otlpTraces(invalid).MarshalProto()
			if err != nil {
				t.Fatal(err)
			}
			return post(t, "http://"+r.otlp.HTTPAddr()+"/v1/traces", "application/x-protobuf", nil, body, noToken)
		},
	},
	{
		name: "jaeger http", success: answer{http: http.StatusAccepted},
		send: func(t *testing.T, r *receivers, invalid, noToken bool) answer {
			var traceLow int64 = 7
			if invalid {
				traceLow = 0
			}
			batch := &jaegerthrift.Batch{Process: &jaegerthrift.Process{ServiceName: "svc"}, Spans: []*jaegerthrift.Span{{
				TraceIdLow: traceLow, SpanId: 1, OperationName: "op", StartTime: time.Now().Add(-time.Second).UnixMicro(), Duration: 1000,
			}}}
			body, err := thrift.NewTSerializer().Write(context.Background(), batch)
			if err != nil {
				t.Fatal(err)
			}
			return post(t, "http://"+r.jaeger.HTTPAddr()+"/api/traces", "application/x-thrift", nil, body, noToken)
		},
	},
	{
		name: "jaeger grpc", success: answer{grpc: codes.OK},
		send: func(t *testing.T, r *receivers, invalid, noToken bool) answer {
			var traceLow uint64 = 7
			if invalid {
				traceLow = 0
			}
			batch := model.Batch{Process: &model.Process{ServiceName: "svc"}, Spans: []*model.Span{{
				TraceID: model.NewTraceID(0, traceLow), SpanID: 1, OperationName: "op",
				StartTime: time.Now().Add(-time.Second), Duration: time.Millisecond,
			}}}
			_, err := api_v2.NewCollectorServiceClient(grpcConn(t, r.jaeger.GRPCAddr())).PostSpans(grpcContext(t, noToken), &api_v2.PostSpansRequest{Batch: batch})
			return grpcAnswer(err)
		},
	},
	{
		name: "zipkin http", success: answer{http: http.StatusAccepted},
		send: func(t *testing.T, r *receivers, invalid, noToken bool) answer {
			traceID := "0000000000000007"
			if invalid {
				traceID = "0000000000000000"
			}
			body, err := json.Marshal([]map[string]any{{
				"traceId": traceID, "id": "0000000000000001", "name": "op",
				"timestamp": time.Now().Add(-time.Second).UnixMicro(), "duration": 10, "localEndpoint": map[string]any{"serviceName": "svc"},
			}})
			if err != nil {
				t.Fatal(err)
			}
			return post(t, "http://"+r.jaeger.ZipkinAddr()+"/api/v2/spans", "application/json", nil, body, noToken)
		},
	},
	{
		name: "remote_write", success: answer{http: http.StatusNoContent},
		send: func(t *testing.T, r *receivers, invalid, noToken bool) answer {
			ls := []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "x"}}
			if invalid {
				ls = ls[1:] // no metric name
			}
			req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: ls, Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}}}}}
			raw, err := req.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			return post(t, r.remoteWrite, "application/x-protobuf", http.Header{"Content-Encoding": {"snappy"}}, snappy.Encode(nil, raw), noToken)
		},
	},
}

// TestSameFailureSameAnswer sends the same failure to every receiver that
// answers its senders and checks that each answers it alike: the status
// of its protocol (gRPC code; HTTP status, where remote_write's push-back
// is 503 because Prometheus retries only 5xx by default) and the same
// retry hint (RetryInfo for gRPC, Retry-After for HTTP).
func TestSameFailureSameAnswer(t *testing.T) {
	const retry = time.Second // the receivers' default retry_after
	tests := []struct {
		name    string
		err     error // returned by the consumer
		invalid bool  // every item of the request is invalid
		noToken bool  // the request has no bearer token
		spent   bool  // the in-flight budget is spent
		// Expected answers; a zero want means each protocol's success.
		grpc              codes.Code
		http, remoteWrite int
		retry             bool
		challenge         bool
	}{
		{name: "stored"},
		{name: "queue full", err: fmt.Errorf("enqueue: %w", ingest.ErrQueueFull),
			grpc: codes.ResourceExhausted, http: http.StatusTooManyRequests, remoteWrite: http.StatusServiceUnavailable, retry: true},
		{name: "shutting down", err: ingest.ErrShuttingDown,
			grpc: codes.Unavailable, http: http.StatusServiceUnavailable, remoteWrite: http.StatusServiceUnavailable, retry: true},
		{name: "storage unavailable", err: fmt.Errorf("copy: dial tcp 10.0.0.5:5432: %w", storage.ErrUnavailable),
			grpc: codes.Unavailable, http: http.StatusServiceUnavailable, remoteWrite: http.StatusServiceUnavailable, retry: true},
		{name: "timeout", err: fmt.Errorf("wait for commit: %w", context.DeadlineExceeded),
			grpc: codes.DeadlineExceeded, http: http.StatusGatewayTimeout, remoteWrite: http.StatusGatewayTimeout},
		{name: "internal", err: fmt.Errorf("relation %q does not exist", "spans"),
			grpc: codes.Internal, http: http.StatusInternalServerError, remoteWrite: http.StatusInternalServerError},
		{name: "invalid", invalid: true,
			grpc: codes.InvalidArgument, http: http.StatusBadRequest, remoteWrite: http.StatusBadRequest},
		{name: "unauthenticated", noToken: true,
			grpc: codes.Unauthenticated, http: http.StatusUnauthorized, remoteWrite: http.StatusUnauthorized, challenge: true},
		{name: "budget spent", spent: true,
			grpc: codes.ResourceExhausted, http: http.StatusTooManyRequests, remoteWrite: http.StatusServiceUnavailable, retry: true},
	}
	r := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.consumer.set(tt.err)
			defer r.consumer.set(nil)
			if tt.spent {
				held := r.budget.Limit() - 1
				if !r.budget.TryAcquire(held) {
					t.Fatal("budget busy")
				}
				defer r.budget.Release(held)
			}
			for _, p := range protocols {
				want := p.success
				if tt.grpc != codes.OK {
					want = answer{grpc: tt.grpc, challenge: tt.challenge && p.success.http != 0}
					if p.success.http != 0 {
						want = answer{http: tt.http, challenge: tt.challenge}
						if p.name == "remote_write" {
							want.http = tt.remoteWrite
						}
					}
					if tt.retry {
						want.retryAfter = retry
					}
				}
				if got := p.send(t, r, tt.invalid, tt.noToken); got != want {
					t.Errorf("%s: %v, want %v", p.name, got, want)
				}
			}
		})
	}
}

// heldStore is a metric store whose commits wait until release is
// closed; entered receives one value per commit waiting.
type heldStore struct {
	entered chan struct{}
	release chan struct{}
}

func (s *heldStore) AppenderV2(context.Context) promstorage.AppenderV2 { return heldAppender{s} }

type heldAppender struct{ s *heldStore }

func (heldAppender) Append(promstorage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, promstorage.AOptions) (promstorage.SeriesRef, error) {
	return 0, nil
}

func (a heldAppender) Commit() error {
	a.s.entered <- struct{}{}
	<-a.s.release
	return nil
}
func (heldAppender) Rollback() error { return nil }

// TestMetricPushBack fills the metric pipeline's queue and checks that
// OTLP metrics (both transports) and remote_write are refused with a
// retryable answer, then that the held request is acknowledged once
// committed.
func TestMetricPushBack(t *testing.T) {
	store := &heldStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
	pipe, err := pipeline.NewMetrics(pipeline.MetricConfig{MaxQueueSamples: 1, MaxBatchSamples: 1, Writers: 1, WriteTimeout: time.Minute},
		pipeline.MetricOptions{Writer: store})
	if err != nil {
		t.Fatal(err)
	}
	receivertest.Run(t, pipe, 10*time.Second)
	o, err := otlp.New(otlp.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"},
		otlp.Options{MetricPoints: pipeline.NewOTLPMetrics(pipe, pipeline.OTLPMetricsConfig{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	receivertest.Run(t, o, 10*time.Second)
	rw, err := promremote.New(pipe, promremote.Config{}, promremote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rw)
	t.Cleanup(srv.Close)
	r := &receivers{remoteWrite: srv.URL + "/api/v1/write"}
	remoteWrite := protocols[len(protocols)-1]

	held := make(chan answer, 1)
	go func() { held <- remoteWrite.send(t, r, false, true) }()
	<-store.entered

	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("queue.depth")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	dp.SetIntValue(3)
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	_, err = pmetricotlp.NewGRPCClient(grpcConn(t, o.GRPCAddr())).Export(t.Context(), req)
	if got, want := grpcAnswer(err), (answer{grpc: codes.ResourceExhausted, retryAfter: time.Second}); got != want {
		t.Errorf("otlp grpc metrics: %v, want %v", got, want)
	}
	body, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := post(t, "http://"+o.HTTPAddr()+"/v1/metrics", "application/x-protobuf", nil, body, true),
		(answer{http: http.StatusTooManyRequests, retryAfter: time.Second}); got != want {
		t.Errorf("otlp http metrics: %v, want %v", got, want)
	}
	if got, want := remoteWrite.send(t, r, false, true), (answer{http: http.StatusServiceUnavailable, retryAfter: time.Second}); got != want {
		t.Errorf("remote_write: %v, want %v", got, want)
	}
	close(store.release)
	if got := <-held; got != remoteWrite.success {
		t.Errorf("held remote_write: %v, want %v", got, remoteWrite.success)
	}
}
