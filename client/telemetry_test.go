package client

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-obs/vigil/client/balance"
	"github.com/vigil-obs/vigil/client/discovery"
	"github.com/vigil-obs/vigil/client/outlier"
	"github.com/vigil-obs/vigil/client/retry"
)

func spanAttr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// TestSpansAndPropagation: a call with one retry yields a logical span and
// two attempt spans under it, with the attempt number, instance and retry
// reason; each attempt carries its own span's W3C traceparent.
func TestSpansAndPropagation(t *testing.T) {
	fleet := startFleet(t, 2)
	first := fleet[0]
	if fleet[1].addr < first.addr {
		first = fleet[1]
	}
	first.status.Store(http.StatusBadGateway)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	sc := quietHealth(ServiceConfig{Target: fleetTarget(fleet), Balancer: balance.Config{Policy: balance.RoundRobin},
		Retry: RetryConfig{MaxAttempts: 2, Backoff: fastRetry}})
	c := startClient(t, sc, Options{TracerProvider: tp})

	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/users/1", nil)
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.End()

	var logical sdktrace.ReadOnlySpan
	var attempts []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.SpanKind() {
		case trace.SpanKindInternal:
			if s.Name() == "GET svc" {
				logical = s
			}
		case trace.SpanKindClient:
			attempts = append(attempts, s)
		}
	}
	if logical == nil || len(attempts) != 2 {
		t.Fatalf("logical %v, %d attempt spans", logical, len(attempts))
	}
	if logical.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatal("logical span is not a child of the caller's span")
	}
	if v, _ := spanAttr(logical, attrAttempts); v.AsInt64() != 2 {
		t.Fatalf("vigil.attempts = %v", v)
	}
	for i, a := range attempts {
		if a.Parent().SpanID() != logical.SpanContext().SpanID() {
			t.Fatalf("attempt %d is not a child of the logical span", i)
		}
		if v, _ := spanAttr(a, attrAttempt); v.AsInt64() != int64(i+1) {
			t.Fatalf("attempt %d: vigil.attempt = %v", i, v)
		}
		if a.Name() != http.MethodGet {
			t.Fatalf("attempt span name %q", a.Name())
		}
		for _, key := range []string{attrInstance, "server.address", "server.port", "url.full", "http.response.status_code", "http.request.method"} {
			if _, ok := spanAttr(a, key); !ok {
				t.Fatalf("attempt %d lacks %s", i, key)
			}
		}
	}
	if v, _ := spanAttr(attempts[0], "http.response.status_code"); v.AsInt64() != 502 {
		t.Fatalf("first attempt status %v", v)
	}
	if v, ok := spanAttr(attempts[1], attrRetryReason); !ok || v.AsString() != "status_502" {
		t.Fatalf("retry reason = %v", v)
	}
	if v, _ := spanAttr(attempts[1], "http.request.resend_count"); v.AsInt64() != 1 {
		t.Fatalf("resend count = %v", v)
	}
	// Each instance saw the traceparent of the attempt span that called it.
	for _, a := range attempts {
		inst, _ := spanAttr(a, attrInstance)
		for _, f := range fleet {
			if f.addr != inst.AsString() {
				continue
			}
			want := "00-" + a.SpanContext().TraceID().String() + "-" + a.SpanContext().SpanID().String() + "-01"
			if got := f.lastHeader().Get("Traceparent"); got != want {
				t.Fatalf("instance %s saw traceparent %q, want %q", f.addr, got, want)
			}
		}
	}
}

type metricSet map[string]metricdata.Aggregation

func collect(t *testing.T, r *sdkmetric.ManualReader) metricSet {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := metricSet{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// sum adds the int64 points of a counter or gauge whose attributes include
// every given pair.
func (m metricSet) sum(name string, match ...attribute.KeyValue) int64 {
	var points []metricdata.DataPoint[int64]
	switch d := m[name].(type) {
	case metricdata.Sum[int64]:
		points = d.DataPoints
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	}
	var n int64
next:
	for _, p := range points {
		for _, kv := range match {
			if v, ok := p.Attributes.Value(kv.Key); !ok || v != kv.Value {
				continue next
			}
		}
		n += p.Value
	}
	return n
}

func (m metricSet) float(name string, match ...attribute.KeyValue) float64 {
	d, _ := m[name].(metricdata.Gauge[float64])
	var v float64
next:
	for _, p := range d.DataPoints {
		for _, kv := range match {
			if got, ok := p.Attributes.Value(kv.Key); !ok || got != kv.Value {
				continue next
			}
		}
		v += p.Value
	}
	return v
}

// TestMetrics checks the instruments a dashboard would chart.
func TestMetrics(t *testing.T) {
	fleet := startFleet(t, 3)
	fleet[0].status.Store(http.StatusServiceUnavailable)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() {
		if err := mp.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()

	// Discovery answers once, then fails: the set is kept and the staleness
	// gauge grows.
	static, _ := discovery.ParseStatic(fleetTarget(fleet)[len("static:///"):])
	calls := 0
	flaky := discovery.BuilderFunc(func(discovery.Target) (discovery.Resolver, error) {
		return discovery.ResolverFunc(func(ctx context.Context, _ discovery.Snapshot) (discovery.Snapshot, error) {
			calls++
			if calls == 1 {
				return discovery.Snapshot{Instances: static, TTL: time.Millisecond}, nil
			}
			return discovery.Snapshot{}, errors.New("registry down")
		}), nil
	})
	sc := ServiceConfig{
		Target:   "flaky:///svc",
		Balancer: balance.Config{Policy: balance.RoundRobin},
		Outlier:  outlier.Config{ConsecutiveServerErrors: 2},
		Retry:    RetryConfig{MaxAttempts: 2, Backoff: fastRetry, Budget: retry.BudgetConfig{Ratio: 0.01, MinPerSecond: 0.1}},
	}
	c := startClient(t, sc, Options{MeterProvider: mp, Resolvers: map[string]discovery.Builder{"flaky": flaky}})
	for range 12 {
		mustGet(t, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.services["svc"].watcher.Staleness() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	m := collect(t, reader)
	svc := attribute.String(attrService, "svc")
	if got := m.sum("vigil.client.requests", svc); got != 12 {
		t.Fatalf("requests = %d, want 12", got)
	}
	if got := m.sum("vigil.client.attempts", svc); got < 13 {
		t.Fatalf("attempts = %d, want > 12", got)
	}
	if got := m.sum("vigil.client.retries", svc); got < 1 {
		t.Fatalf("retries = %d", got)
	}
	if got := m.sum("vigil.client.retry_budget.exhausted", svc); got < 1 {
		t.Fatalf("budget exhaustions = %d", got)
	}
	if got := m.sum("vigil.client.outlier.ejections", svc, attribute.String(attrInstance, fleet[0].addr)); got != 1 {
		t.Fatalf("ejections = %d", got)
	}
	if got := m.sum("vigil.client.endpoint.ejected", svc, attribute.String(attrInstance, fleet[0].addr), attribute.String(attrReason, "consecutive_5xx")); got != 1 {
		t.Fatalf("ejected gauge {reason=consecutive_5xx} = %d", got)
	}
	if got := m.sum("vigil.client.breaker.state", svc, attribute.String(attrScope, "instance")); got != 0 {
		t.Fatalf("instance breaker states sum = %d, want all closed", got)
	}
	if got := m.sum("vigil.client.discovery.instances", svc); got != 3 {
		t.Fatalf("instances gauge = %d", got)
	}
	if got := m.float("vigil.client.discovery.staleness", svc); got <= 0 {
		t.Fatalf("staleness = %v, want > 0 while discovery fails", got)
	}
	if got := m.float("vigil.client.endpoint.latency.ewma", svc, attribute.String(attrInstance, fleet[1].addr)); got <= 0 {
		t.Fatalf("ewma = %v", got)
	}
	if _, ok := m["http.client.request.duration"].(metricdata.Histogram[float64]); !ok {
		t.Fatal("no http.client.request.duration histogram")
	}
}
