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
	if r.Rejected != 1 || r.Reasons[ReasonInvalidMetricName] != 1 {
		t.Fatalf("report %+v", r)
	}
	if !strings.Contains(r.Message, "metrics[2]: name is empty") {
		t.Fatalf("message %q", r.Message)
	}
	// Delta metrics are kept: the metric consumer accumulates them.
	if md.DataPointCount() != 3 || ms.At(0).Name() != "requests" || ms.At(1).Name() != "bytes" {
		t.Fatalf("kept %d points", md.DataPointCount())
	}
}
