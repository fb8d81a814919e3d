package otlp

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
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
// with the error set by SetErr.
type recorder = receivertest.Traces

// recordedSpan is a span with the resource and scope it came with.
type recordedSpan struct {
	span     ptrace.Span
	scope    pcommon.InstrumentationScope
	resource pcommon.Resource
}

// recordedSpans returns the spans c stored, with their resource and
// scope.
func recordedSpans(c *recorder) []recordedSpan {
	var out []recordedSpan
	for _, td := range c.Got() {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			rs := td.ResourceSpans().At(i)
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				ss := rs.ScopeSpans().At(j)
				for k := 0; k < ss.Spans().Len(); k++ {
					out = append(out, recordedSpan{ss.Spans().At(k), ss.Scope(), rs.Resource()})
				}
			}
		}
	}
	return out
}

// bundle is a running Receiver on loopback with its consumer and metrics.
type bundle struct {
	r   *Receiver
	rec *recorder
	reg *prometheus.Registry
}

// setup starts a Receiver on 127.0.0.1:0 for both transports; mutate may
// change the config and options first. The receiver stops, and Run's
// result is checked, when the test ends.
func setup(t *testing.T, mutate func(*Config, *Options)) *bundle {
	t.Helper()
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	metrics, err := ingest.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}
	opts := Options{
		Traces:  rec,
		Logger:  slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: metrics,
	}
	if mutate != nil {
		mutate(&cfg, &opts)
	}
	r, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	receivertest.Run(t, r, 10*time.Second)
	return &bundle{r: r, rec: rec, reg: reg}
}

// httpClient returns a client whose idle connections close with the test.
func httpClient(t *testing.T) *http.Client { return receivertest.HTTPClient(t) }

// post sends body to /v1/traces with the given headers and returns the
// response with its body read.
func (b *bundle) post(t *testing.T, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	return b.do(t, http.MethodPost, body, header)
}

func (b *bundle) do(t *testing.T, method string, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+b.r.HTTPAddr()+"/v1/traces", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := httpClient(t).Do(req)
	if err != nil {
		t.Fatalf("%s /v1/traces: %v", method, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

// grpcClient returns an OTLP trace client connected to the receiver.
func (b *bundle) grpcClient(t *testing.T, opts ...grpc.DialOption) ptraceotlp.GRPCClient {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	cc, err := grpc.NewClient(b.r.GRPCAddr(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return ptraceotlp.NewGRPCClient(cc)
}

// counter returns the value of a counter of b's registry, 0 when absent.
func (b *bundle) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return receivertest.Counter(t, b.reg, name, labels)
}

// newSpan fills sp with a valid span named name.
func newSpan(sp ptrace.Span, name string, i byte) {
	sp.SetTraceID(pcommon.TraceID{0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, i})
	sp.SetSpanID(pcommon.SpanID{0xbb, 1, 2, 3, 4, 5, 6, i})
	sp.SetName(name)
	sp.SetKind(ptrace.SpanKindServer)
	now := time.Now()
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Second)))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
	sp.Attributes().PutStr("http.method", "GET")
}

// newRequest builds a request with one resource (service "svc") and one
// scope holding spans named names, all valid.
func newRequest(names ...string) ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("test")
	for i, name := range names {
		newSpan(ss.Spans().AppendEmpty(), name, byte(i+1))
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

// spanOf returns the i-th span of the only scope of req.
func spanOf(req ptraceotlp.ExportRequest, i int) ptrace.Span {
	return req.Traces().ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(i)
}

func mustProto(t *testing.T, req ptraceotlp.ExportRequest) []byte {
	t.Helper()
	b, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJSON(t *testing.T, req ptraceotlp.ExportRequest) []byte {
	t.Helper()
	b, err := req.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
