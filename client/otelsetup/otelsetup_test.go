package otelsetup_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/vigil-obs/vigil/client"
	"github.com/vigil-obs/vigil/client/balance"
	"github.com/vigil-obs/vigil/client/otelsetup"
	"github.com/vigil-obs/vigil/client/retry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// receiver is an in-test OTLP gRPC endpoint, as Vigil's ingest would be.
type receiver struct {
	ptraceotlp.UnimplementedGRPCServer
	metrics metricsServer
	logs    logsServer

	mu     sync.Mutex
	traces []ptrace.Traces
}

type metricsServer struct {
	pmetricotlp.UnimplementedGRPCServer
	mu  sync.Mutex
	got []pmetric.Metrics
}

type logsServer struct {
	plogotlp.UnimplementedGRPCServer
	mu     sync.Mutex
	bodies []string
	traced int
}

func (r *receiver) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := ptrace.NewTraces()
	req.Traces().CopyTo(t)
	r.traces = append(r.traces, t)
	return ptraceotlp.NewExportResponse(), nil
}

func (m *metricsServer) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	md := pmetric.NewMetrics()
	req.Metrics().CopyTo(md)
	m.got = append(m.got, md)
	return pmetricotlp.NewExportResponse(), nil
}

func (l *logsServer) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rls := req.Logs().ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		sls := rls.At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				l.bodies = append(l.bodies, lrs.At(k).Body().AsString())
				if !lrs.At(k).TraceID().IsEmpty() {
					l.traced++
				}
			}
		}
	}
	return plogotlp.NewExportResponse(), nil
}

func startReceiver(t *testing.T) (*receiver, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, r)
	pmetricotlp.RegisterGRPCServer(srv, &r.metrics)
	plogotlp.RegisterGRPCServer(srv, &r.logs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return r, ln.Addr().String()
}

// TestExportToVigil runs client calls with the exporters pointed at an
// in-test OTLP receiver and checks what arrives: the logical and attempt
// spans with their attributes, the client's metrics, and logs with trace
// context.
func TestExportToVigil(t *testing.T) {
	rcv, addr := startReceiver(t)
	ctx := context.Background()
	p, err := otelsetup.Start(ctx, otelsetup.Config{Endpoint: addr, ServiceName: "gateway", InstanceID: "gw-1", MetricInterval: time.Hour}, otelsetup.Options{})
	if err != nil {
		t.Fatal(err)
	}

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer bad.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok") // a failed write fails the call under test
	}))
	defer good.Close()
	first, second := bad.Listener.Addr().String(), good.Listener.Addr().String()
	if second < first {
		// Round robin starts at the lowest address: make it the bad one.
		bad.Config.Handler, good.Config.Handler = good.Config.Handler, bad.Config.Handler
	}
	c, err := client.New(client.Config{Services: map[string]client.ServiceConfig{
		"user-service": {
			Target:   "static:///" + first + "," + second,
			Balancer: balance.Config{Policy: balance.RoundRobin},
			Retry:    client.RetryConfig{MaxAttempts: 2, Backoff: retry.Backoff{Base: time.Millisecond, Max: time.Millisecond}},
		},
	}}, client.Options{TracerProvider: p.TracerProvider, MeterProvider: p.MeterProvider})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(runCtx) }()

	logger := slog.New(otelsetup.NewSlogHandler(p.LoggerProvider, "test"))
	tracer := p.TracerProvider.Tracer("test")
	for i := range 3 {
		sctx, span := tracer.Start(ctx, "handle")
		req, _ := http.NewRequestWithContext(sctx, http.MethodGet, "http://user-service/users/1", nil)
		resp, err := c.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		logger.InfoContext(sctx, "user fetched", "i", i, "status", resp.StatusCode)
		span.End()
	}
	stop()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()

	rcv.mu.Lock()
	names := map[string]int{}
	var retried bool
	var serviceName string
	for _, td := range rcv.traces {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			if v, ok := rss.At(i).Resource().Attributes().Get("service.name"); ok {
				serviceName = v.Str()
			}
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				spans := sss.At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					s := spans.At(k)
					names[s.Name()]++
					if v, ok := s.Attributes().Get("vigil.retry.reason"); ok && v.Str() == "status_503" {
						if _, ok := s.Attributes().Get("vigil.instance"); ok {
							retried = true
						}
					}
				}
			}
		}
	}
	rcv.mu.Unlock()
	if serviceName != "gateway" {
		t.Fatalf("service.name = %q", serviceName)
	}
	if names["GET user-service"] != 3 || names["GET"] < 4 || names["handle"] != 3 {
		t.Fatalf("span names = %v", names)
	}
	if !retried {
		t.Fatal("no attempt span carries vigil.retry.reason=status_503")
	}

	rcv.metrics.mu.Lock()
	metricNames := map[string]bool{}
	for _, md := range rcv.metrics.got {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			sms := rms.At(i).ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				ms := sms.At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					metricNames[ms.At(k).Name()] = true
				}
			}
		}
	}
	rcv.metrics.mu.Unlock()
	for _, want := range []string{"vigil.client.requests", "vigil.client.attempts", "vigil.client.retries", "vigil.client.endpoint.latency.ewma", "vigil.client.breaker.state", "http.client.request.duration"} {
		if !metricNames[want] {
			t.Errorf("metric %s not exported (got %v)", want, metricNames)
		}
	}

	rcv.logs.mu.Lock()
	defer rcv.logs.mu.Unlock()
	if len(rcv.logs.bodies) != 3 || rcv.logs.traced != 3 {
		t.Fatalf("logs = %v (%d with trace context)", rcv.logs.bodies, rcv.logs.traced)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (otelsetup.Config{}).Validate(); err == nil {
		t.Fatal("missing service name accepted")
	}
	if err := (otelsetup.Config{ServiceName: "x", MetricInterval: -time.Second}).Validate(); err == nil {
		t.Fatal("negative interval accepted")
	}
	if err := (otelsetup.Config{ServiceName: "x"}).Validate(); err != nil {
		t.Fatal(err)
	}
}
