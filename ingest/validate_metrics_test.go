package ingest

import (
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

func TestValidateMetricsReport(t *testing.T) {
	md := pmetric.NewMetrics()
	ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	good := ms.AppendEmpty()
	good.SetName("requests")
	good.SetEmptySum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	good.Sum().DataPoints().AppendEmpty().SetIntValue(1)
	delta := ms.AppendEmpty()
	delta.SetName("bytes")
	delta.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	delta.Histogram().DataPoints().AppendEmpty()
	delta.Histogram().DataPoints().AppendEmpty()
	noName := ms.AppendEmpty()
	noName.SetEmptyGauge().DataPoints().AppendEmpty()

	r := ValidateMetricsReport(md, Limits{})
	if r.Rejected != 3 || r.Reasons[ReasonDeltaTemporality] != 2 || r.Reasons[ReasonInvalidMetricName] != 1 {
		t.Fatalf("report %+v", r)
	}
	if !strings.Contains(r.Message, `resource_metrics[0].scope_metrics[0].metrics[1]: "bytes" has delta aggregation temporality`) ||
		!strings.Contains(r.Message, "metrics[2]: name is empty") {
		t.Fatalf("message %q", r.Message)
	}
	if md.DataPointCount() != 1 || ms.At(0).Name() != "requests" {
		t.Fatalf("kept %d points", md.DataPointCount())
	}
}
