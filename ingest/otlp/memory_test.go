package otlp

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receivertest"
	"github.com/vigil-obs/vigil/internal/inflight"
	"github.com/vigil-obs/vigil/internal/inflight/inflighttest"
)

// Sizes of the memory-pressure tests: 64 requests of about 1 MiB against
// a budget of 8 MiB, with requests of up to 2 MiB allowed.
const (
	pressureRequests = 64
	pressureBudget   = 8 << 20
	pressureMaxBytes = 2 << 20
	pressureSpans    = 100
	pressureBlob     = 10 << 10 // bytes of one attribute of each span
)

// gate holds consumer calls until it is opened.
type gate struct {
	open chan struct{}
	held atomic.Int32 // calls waiting
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

// wrap returns a consumer that waits for the gate, then passes td on.
func (g *gate) wrap(next ingest.TraceConsumer) ingest.TraceConsumer {
	return ingest.TraceConsumerFunc(func(ctx context.Context, td ptrace.Traces) error {
		g.held.Add(1)
		select {
		case <-g.open:
		case <-ctx.Done():
			return ctx.Err()
		}
		return next.ConsumeTraces(ctx, td)
	})
}

// pressureSetup starts a receiver with a budget of pressureBudget over
// the recorder, wrapped by wrap when it is not nil.
func pressureSetup(t *testing.T, mutate func(*Config), wrap func(ingest.TraceConsumer) ingest.TraceConsumer) (*bundle, *inflight.Budget) {
	t.Helper()
	var budget *inflight.Budget
	b := setup(t, func(c *Config, o *Options) {
		c.MaxRequestBytes = pressureMaxBytes
		if mutate != nil {
			mutate(c)
		}
		reg := prometheus.NewRegistry()
		var err error
		if budget, err = inflight.New(pressureBudget, reg); err != nil {
			t.Fatal(err)
		}
		o.Budget = budget
		if wrap != nil {
			o.Traces = wrap(o.Traces)
		}
		t.Cleanup(func() {
			if n := testutilGauge(t, reg, "vigil_ingest_inflight_bytes"); n != 0 {
				t.Errorf("vigil_ingest_inflight_bytes = %v once every request was answered", n)
			}
		})
	})
	return b, budget
}

// testutilGauge returns the value of a gauge or counter of reg.
func testutilGauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			m := f.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// bigRequest is request i of a pressure test: pressureSpans spans named
// "r<i>-<j>", each with a pressureBlob attribute, about 1 MiB in all.
func bigRequest(i int) ptraceotlp.ExportRequest {
	names := make([]string, pressureSpans)
	for j := range names {
		names[j] = fmt.Sprintf("r%d-%d", i, j)
	}
	req := newRequest(names...)
	spans := req.Traces().ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	blob := strings.Repeat("m", pressureBlob)
	for j := range spans.Len() {
		spans.At(j).SetSpanID([8]byte{0xbb, byte(i), byte(j >> 8), byte(j), 1, 2, 3, 4})
		spans.At(j).Attributes().PutStr("blob", blob)
	}
	return req
}

// waitUntil polls cond until it holds or 30 s pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIngestUnderMemoryPressure sends 64 requests of about 1 MiB at once
// against a budget of 8 MiB while the pipeline holds every request it
// gets: the requests the budget cannot cover are refused with a retryable
// answer, the others are held, the budget never goes over its limit, and
// exactly the acknowledged requests are stored.
func TestIngestUnderMemoryPressure(t *testing.T) {
	tests := []struct {
		name string
		// sender returns the function that sends one request.
		sender func(t *testing.T, b *bundle) func(body []byte, req ptraceotlp.ExportRequest) outcome
	}{
		{
			name: "http",
			sender: func(t *testing.T, b *bundle) func([]byte, ptraceotlp.ExportRequest) outcome {
				client := httpClient(t)
				return func(body []byte, _ ptraceotlp.ExportRequest) outcome {
					return sendHTTP(client, "http://"+b.r.HTTPAddr()+"/v1/traces", body)
				}
			},
		},
		{
			name: "grpc",
			sender: func(t *testing.T, b *bundle) func([]byte, ptraceotlp.ExportRequest) outcome {
				client := b.grpcClient(t)
				return func(_ []byte, req ptraceotlp.ExportRequest) outcome {
					_, err := client.Export(context.Background(), req)
					if err == nil {
						return outcome{ok: true}
					}
					st := status.Convert(err)
					if d, ok := receivertest.RetryDelay(st.Details()); st.Code() == codes.ResourceExhausted && ok && d == time.Second {
						return outcome{refused: true}
					}
					return outcome{problem: err.Error()}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate()
			b, budget := pressureSetup(t, nil, g.wrap)
			send := tt.sender(t, b)
			reqs := make([]ptraceotlp.ExportRequest, pressureRequests)
			bodies := make([][]byte, pressureRequests)
			for i := range reqs {
				reqs[i] = bigRequest(i)
				bodies[i] = mustProto(t, reqs[i])
			}
			outcomes := make([]outcome, pressureRequests)
			var refused atomic.Int32
			var wg sync.WaitGroup
			for i := range pressureRequests {
				wg.Go(func() {
					outcomes[i] = send(bodies[i], reqs[i])
					if outcomes[i].refused {
						refused.Add(1)
					}
				})
			}
			// Every request is either held by the pipeline or refused:
			// the held ones keep their charge until the gate opens.
			waitUntil(t, "every request held or refused", func() bool {
				return int(g.held.Load()+refused.Load()) == pressureRequests
			})
			held := int(g.held.Load())
			close(g.open)
			wg.Wait()
			checkPressureOutcome(t, b, budget, outcomes, held, int(refused.Load()), len(bodies[0]))
		})
	}
}

// outcome is what became of one request of a pressure test.
type outcome struct {
	ok, refused bool
	problem     string
}

// sendHTTP posts body and classifies the answer: a 429 must carry
// Retry-After and a RESOURCE_EXHAUSTED status.
func sendHTTP(client *http.Client, url string, body []byte) outcome {
	resp, err := client.Post(url, contentTypeProto, bytes.NewReader(body))
	if err != nil {
		return outcome{problem: err.Error()}
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		return outcome{ok: true}
	case http.StatusTooManyRequests:
		if resp.Header.Get("Retry-After") != "1" {
			return outcome{problem: "429 without Retry-After: 1"}
		}
		st := &spb.Status{}
		if err := proto.Unmarshal(buf.Bytes(), st); err != nil || codes.Code(st.GetCode()) != codes.ResourceExhausted {
			return outcome{problem: fmt.Sprintf("429 with status %v (%v)", st, err)}
		}
		return outcome{refused: true}
	}
	return outcome{problem: fmt.Sprintf("status %d: %s", resp.StatusCode, buf.String())}
}

// checkPressureOutcome checks that exactly the acknowledged requests of a
// pressure test were stored and that the budget stayed within its limit.
func checkPressureOutcome(t *testing.T, b *bundle, budget *inflight.Budget, outcomes []outcome, held, refused, size int) {
	t.Helper()
	want := map[string]bool{}
	acked := 0
	for i, o := range outcomes {
		switch {
		case o.problem != "":
			t.Errorf("request %d: %s", i, o.problem)
		case o.ok:
			acked++
			for j := range pressureSpans {
				want[fmt.Sprintf("r%d-%d", i, j)] = true
			}
		}
	}
	t.Logf("%d requests acknowledged, %d refused; budget peak %d of %d", acked, refused, budget.Peak(), budget.Limit())
	if acked != held || acked == 0 || refused == 0 {
		t.Errorf("%d acknowledged, %d held by the pipeline, %d refused: want some of each, acknowledged = held", acked, held, refused)
	}
	got := b.rec.SpanNames()
	if len(got) != len(want) {
		t.Errorf("stored %d spans, acknowledged %d", len(got), len(want))
	}
	for _, name := range got {
		if !want[name] {
			t.Errorf("stored span %s of a request that was refused", name)
		}
	}
	if budget.Peak() > budget.Limit() || budget.Peak() < int64(size) {
		t.Errorf("budget peak %d, want between one request (%d) and the limit %d", budget.Peak(), size, budget.Limit())
	}
	waitUntil(t, "the budget to be given back", func() bool { return budget.InUse() == 0 })
}

// sdkStubs returns pressureSpans spans of about pressureBlob bytes each
// for exporter i, named "e<i>-<j>".
func sdkStubs(i int) tracetest.SpanStubs {
	res := resource.NewSchemaless(attribute.String("service.name", "pressure"))
	blob := strings.Repeat("s", pressureBlob)
	now := time.Now()
	stubs := make(tracetest.SpanStubs, pressureSpans)
	for j := range stubs {
		stubs[j] = tracetest.SpanStub{
			Name: fmt.Sprintf("e%d-%d", i, j),
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{0xee, byte(i), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
				SpanID:  trace.SpanID{0xee, byte(i), byte(j), 1, 2, 3, 4, 5},
			}),
			SpanKind:   trace.SpanKindServer,
			StartTime:  now.Add(-time.Second),
			EndTime:    now,
			Attributes: []attribute.KeyValue{attribute.String("blob", blob)},
			Resource:   res,
		}
	}
	return stubs
}

// TestSDKExportersUnderMemoryPressure has 64 real OTel SDK exporters send
// about 1 MiB each at once against a budget of 8 MiB: the exporters retry
// what the budget refuses, so every export succeeds and every span is
// stored, and the budget never goes over its limit. The exporters' own
// timeout (10 s by default, retries included) is raised: on a loaded
// machine the 64 exports, about eight at a time with a retry delay of a
// second, can take longer.
func TestSDKExportersUnderMemoryPressure(t *testing.T) {
	tests := []struct {
		name     string
		exporter func(ctx context.Context, b *bundle) (sdktrace.SpanExporter, error)
	}{
		{
			name: "grpc",
			exporter: func(ctx context.Context, b *bundle) (sdktrace.SpanExporter, error) {
				return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(b.r.GRPCAddr()), otlptracegrpc.WithInsecure(),
					otlptracegrpc.WithTimeout(time.Minute), otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 50 * time.Millisecond,
						MaxInterval: time.Second, MaxElapsedTime: time.Minute}))
			},
		},
		{
			name: "http",
			exporter: func(ctx context.Context, b *bundle) (sdktrace.SpanExporter, error) {
				return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(b.r.HTTPAddr()), otlptracehttp.WithInsecure(),
					otlptracehttp.WithTimeout(time.Minute), otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: true, InitialInterval: 50 * time.Millisecond,
						MaxInterval: time.Second, MaxElapsedTime: time.Minute}))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The pipeline takes 20 ms per request, so requests overlap.
			b, budget := pressureSetup(t, nil, func(next ingest.TraceConsumer) ingest.TraceConsumer {
				return ingest.TraceConsumerFunc(func(ctx context.Context, td ptrace.Traces) error {
					time.Sleep(20 * time.Millisecond)
					return next.ConsumeTraces(ctx, td)
				})
			})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			for i := range pressureRequests {
				wg.Go(func() {
					exp, err := tt.exporter(ctx, b)
					if err != nil {
						t.Errorf("exporter %d: %v", i, err)
						return
					}
					if err := exp.ExportSpans(ctx, sdkStubs(i).Snapshots()); err != nil {
						t.Errorf("exporter %d: ExportSpans: %v", i, err)
					}
					if err := exp.Shutdown(ctx); err != nil {
						t.Errorf("exporter %d: shutdown: %v", i, err)
					}
				})
			}
			wg.Wait()
			stored := map[string]bool{}
			for _, name := range b.rec.SpanNames() {
				stored[name] = true
			}
			for i := range pressureRequests {
				for j := range pressureSpans {
					if name := fmt.Sprintf("e%d-%d", i, j); !stored[name] {
						t.Fatalf("span %s of an acknowledged export is not stored", name)
					}
				}
			}
			t.Logf("budget peak %d of %d", budget.Peak(), budget.Limit())
			if budget.Peak() > budget.Limit() {
				t.Errorf("budget peak %d over its limit %d", budget.Peak(), budget.Limit())
			}
		})
	}
}

// TestSlowBodiesAreCut opens connections that declare a large body and
// send it a few bytes at a time: while they trickle they hold only the
// first buffer step each, and the read timeout cuts them with a 408.
func TestSlowBodiesAreCut(t *testing.T) {
	b, budget := pressureSetup(t, func(c *Config) { c.ReadTimeout = 500 * time.Millisecond }, nil)
	inflighttest.CheckSlowBodies(t, budget, 32, inflighttest.Target{
		Addr: b.r.HTTPAddr(), Fill: 0x0a,
		Head: inflighttest.Head("/v1/traces", pressureMaxBytes, "Content-Type: "+contentTypeProto),
	})
}
