package servicemap_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigil-obs/vigil/ingest/pipeline"
)

// TestClientSeriesNames sends the reference client's decision metrics
// (client/telemetry.go: names, units, attributes) through the OTLP metric
// path and checks the series names and labels the map reads.
func TestClientSeriesNames(t *testing.T) {
	store := newStore(t)
	now := time.Now().Truncate(time.Second)
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "gateway")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("github.com/vigil-obs/vigil/client")
	ts := pcommon.NewTimestampFromTime(now)
	gauge := func(name string, v int64, attrs map[string]string) {
		m := sm.Metrics().AppendEmpty()
		m.SetName(name)
		m.SetUnit("1")
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetIntValue(v)
		for k, v := range attrs {
			dp.Attributes().PutStr(k, v)
		}
	}
	counter := func(name, unit string, v int64, attrs map[string]string) {
		m := sm.Metrics().AppendEmpty()
		m.SetName(name)
		m.SetUnit(unit)
		sum := m.SetEmptySum()
		sum.SetIsMonotonic(true)
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := sum.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Minute)))
		dp.SetTimestamp(ts)
		dp.SetIntValue(v)
		for k, v := range attrs {
			dp.Attributes().PutStr(k, v)
		}
	}
	gauge("vigil.client.breaker.state", 2, map[string]string{"vigil.service": "user-service", "vigil.instance": "127.0.0.1:3003", "vigil.breaker.scope": "instance"})
	gauge("vigil.client.endpoint.ejected", 1, map[string]string{"vigil.service": "user-service", "vigil.instance": "127.0.0.1:3004"})
	counter("vigil.client.retry_budget.exhausted", "{retry}", 3, map[string]string{"vigil.service": "user-service"})
	counter("vigil.client.outlier.ejections", "{ejection}", 1, map[string]string{"vigil.service": "user-service", "vigil.instance": "127.0.0.1:3004"})

	c := pipeline.NewOTLPMetrics(store, pipeline.OTLPMetricsConfig{}, nil)
	if err := c.ConsumeMetrics(context.Background(), md); err != nil {
		t.Fatalf("consume: %v", err)
	}
	q, err := store.Querier(now.Add(-time.Hour).UnixMilli(), now.Add(time.Hour).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labelsMatcher(t, `{job="gateway"}`)...)
	var got []string
	for set.Next() {
		got = append(got, set.At().Labels().String())
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{__name__="vigil_client_breaker_state_ratio", job="gateway", vigil_breaker_scope="instance", vigil_instance="127.0.0.1:3003", vigil_service="user-service"}`,
		`{__name__="vigil_client_endpoint_ejected_ratio", job="gateway", vigil_instance="127.0.0.1:3004", vigil_service="user-service"}`,
		`{__name__="vigil_client_outlier_ejections_total", job="gateway", vigil_instance="127.0.0.1:3004", vigil_service="user-service"}`,
		`{__name__="vigil_client_retry_budget_exhausted_total", job="gateway", vigil_service="user-service"}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("stored series:\n%s\nwant:\n%s", joinLines(got), joinLines(want))
	}
}
