package servicemap_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/query/servicemap"
)

func TestMonitor(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	base := servicemap.MonitorQuery{Services: []string{"user-service", "gateway"}, End: b.fx.end, Lookback: 10 * time.Minute, Step: time.Minute, RatePer: 10 * time.Minute}
	last := func(m servicemap.Metric) float64 { return m.Points[len(m.Points)-1].V }
	labelsOf := func(m servicemap.Metric) string { return fmt.Sprint(m.Labels) }

	calls, err := b.svc.CallRates(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if calls.Name != "service_call_rate" || len(calls.Metrics) != 2 {
		t.Fatalf("calls: %+v", calls)
	}
	// Sorted by labels: gateway 1 call per flush, user-service 4.
	if got := labelsOf(calls.Metrics[1]); got != "[{service_name user-service}]" {
		t.Errorf("labels %s", got)
	}
	if len(calls.Metrics[1].Points) != 11 || !near(last(calls.Metrics[1]), 4.0/15) || !near(last(calls.Metrics[0]), 1.0/15) {
		t.Errorf("call rates %+v", calls.Metrics)
	}

	byOp := base
	byOp.GroupByOperation = true
	byOp.Services = []string{"user-service"}
	calls, err = b.svc.CallRates(ctx, byOp)
	if err != nil {
		t.Fatal(err)
	}
	if calls.Name != "service_operation_call_rate" || len(calls.Metrics) != 1 || labelsOf(calls.Metrics[0]) != "[{operation GET /users} {service_name user-service}]" {
		t.Errorf("calls by operation: %+v", calls)
	}

	errs, err := b.svc.ErrorRates(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs.Metrics) != 1 || !near(last(errs.Metrics[0]), 0.25) {
		t.Errorf("error rates %+v", errs)
	}
	gw := base
	gw.Services = []string{"gateway"}
	errs, err = b.svc.ErrorRates(ctx, gw)
	if err != nil {
		t.Fatal(err)
	}
	if errs.Name != "service_error_rate" || len(errs.Metrics) != 1 || last(errs.Metrics[0]) != 0 {
		t.Errorf("error rates without errors: %+v, want zeros", errs)
	}

	lat := base
	lat.Quantile = 0.95
	lats, err := b.svc.Latencies(ctx, lat)
	if err != nil {
		t.Fatal(err)
	}
	want := b.promScalar(t, `histogram_quantile(0.95, sum(rate(traces_span_metrics_duration_bucket{service_name="user-service", span_kind="SPAN_KIND_SERVER"}[10m])) by (service_name, le))`)
	if lats.Help != "0.95th quantile latency, grouped by service" || len(lats.Metrics) != 1 || !near(last(lats.Metrics[0]), want) || math.IsNaN(want) {
		t.Errorf("latencies %+v, want last %v", lats, want)
	}

	client := base
	client.SpanKinds = []string{"SPAN_KIND_CLIENT"}
	calls, err = b.svc.CallRates(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls.Metrics) != 1 || !near(last(calls.Metrics[0]), 7.0/15) {
		t.Errorf("client call rates %+v", calls)
	}

	var qe *servicemap.QueryError
	for _, q := range []servicemap.MonitorQuery{
		{},
		{Services: []string{"("}},
		{Services: []string{"a"}, Lookback: 100 * 24 * time.Hour, Step: time.Second},
		{Services: []string{"a"}, Step: -time.Second},
	} {
		if _, err := b.svc.CallRates(ctx, q); !errors.As(err, &qe) {
			t.Errorf("%+v: got %v, want a QueryError", q, err)
		}
	}
}
