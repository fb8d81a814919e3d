package jaeger

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/agent"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receivertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a TraceConsumer that keeps copies of what it got, or fails
// with the error set by SetErr; after Hold, calls wait for Release.
type recorder = receivertest.Traces

func eachSpan(td ptrace.Traces, f func(ptrace.ResourceSpans, ptrace.Span)) {
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				f(rs, ss.Spans().At(k))
			}
		}
	}
}

// bundle is a running Receiver on loopback with its consumer and metrics.
type bundle struct {
	r   *Receiver
	rec *recorder
	reg *prometheus.Registry
}

// loopbackConfig enables every transport on 127.0.0.1 with free ports.
func loopbackConfig() Config {
	return Config{
		UDPCompactAddr: "127.0.0.1:0", UDPBinaryAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", ZipkinAddr: "127.0.0.1:0",
		ShutdownTimeout: 5 * time.Second,
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// setup starts a Receiver with every transport on loopback over a
// recorder (or over opts.Traces when mutate sets it); mutate may change
// the config and options first. The receiver stops, and Run's result is
// checked, when the test ends.
func setup(t testing.TB, mutate func(*Config, *Options)) *bundle {
	t.Helper()
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	metrics, err := ingest.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := loopbackConfig()
	opts := Options{Traces: rec, Logger: testLogger(t), Metrics: metrics, Registerer: reg}
	if mutate != nil {
		mutate(&cfg, &opts)
	}
	r, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	receivertest.Run(t, r, 15*time.Second)
	return &bundle{r: r, rec: rec, reg: reg}
}

// counter returns the value of a counter of b's registry with exactly
// these labels, 0 when absent.
func (b *bundle) counter(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	return receivertest.Counter(t, b.reg, name, labels)
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sendUDP sends each datagram to addr from one socket.
func sendUDP(t testing.TB, addr string, datagrams ...[]byte) {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, d := range datagrams {
		if _, err := conn.Write(d); err != nil {
			t.Fatalf("send %d-byte datagram: %v", len(d), err)
		}
	}
}

// agentMessage encodes an Agent.emitBatch call as a Jaeger client does.
func agentMessage(t testing.TB, batch *jaegerthrift.Batch, compact bool) []byte {
	t.Helper()
	buf := thrift.NewTMemoryBufferLen(1024)
	var pf thrift.TProtocolFactory = thrift.NewTBinaryProtocolFactoryConf(nil)
	if compact {
		pf = thrift.NewTCompactProtocolFactoryConf(nil)
	}
	if err := agent.NewAgentClientFactory(buf, pf).EmitBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// thriftBody encodes a Batch as the body of the collector's HTTP API.
func thriftBody(t testing.TB, batch *jaegerthrift.Batch) []byte {
	t.Helper()
	b, err := thrift.NewTSerializer().Write(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body to url with a Content-Type and extra headers, returns
// the status, headers and body.
func post(t testing.TB, url, contentType string, body []byte, header http.Header) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(out)
}

// collectorClient returns a Jaeger gRPC collector client for addr.
func collectorClient(t testing.TB, addr string, opts ...grpc.DialOption) api_v2.CollectorServiceClient {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return api_v2.NewCollectorServiceClient(cc)
}

// simpleBatch returns a thrift batch of n valid spans named name-i of
// service svc, with trace id low word traceLow.
func simpleBatch(svc, name string, traceLow int64, n int) *jaegerthrift.Batch {
	start := time.Now().Add(-time.Second).UnixMicro()
	b := &jaegerthrift.Batch{Process: &jaegerthrift.Process{ServiceName: svc}}
	for i := range n {
		op := name
		if n > 1 {
			op = name + "-" + string(rune('a'+i%26))
		}
		b.Spans = append(b.Spans, &jaegerthrift.Span{
			TraceIdLow: traceLow, SpanId: int64(i + 1), OperationName: op,
			Flags: 1, StartTime: start, Duration: 1000,
			Tags: []*jaegerthrift.Tag{{Key: "i", VType: jaegerthrift.TagType_LONG, VLong: new(int64(i))}},
		})
	}
	return b
}

// simpleModelBatch is simpleBatch in the Jaeger protobuf model.
func simpleModelBatch(svc, name string, traceLow uint64, n int) model.Batch {
	start := time.Now().Add(-time.Second)
	b := model.Batch{Process: &model.Process{ServiceName: svc}}
	for i := range n {
		b.Spans = append(b.Spans, &model.Span{
			TraceID: model.NewTraceID(0, traceLow), SpanID: model.NewSpanID(uint64(i + 1)), OperationName: name,
			StartTime: start, Duration: time.Millisecond,
			Tags: []model.KeyValue{model.Int64("i", int64(i))},
		})
	}
	return b
}

// nowMicros is a second ago in Unix microseconds, a valid span start.
func nowMicros() int64 { return time.Now().Add(-time.Second).UnixMicro() }
