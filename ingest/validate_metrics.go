package ingest

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Rejection reasons of metric validation.
const (
	// ReasonInvalidMetricName: an empty metric name or one that is not
	// valid UTF-8.
	ReasonInvalidMetricName = "invalid_metric_name"
)

// ValidateMetricsReport removes the metrics that cannot be stored from md
// in place and reports how many data points went with them: metrics
// without a valid name. (Delta temporality is accumulated into cumulative
// series by the metric consumer.)
// Everything else (naming, label translation) is left to Prometheus's OTLP
// translation, which reports its own refusals.
func ValidateMetricsReport(md pmetric.Metrics, _ Limits) ValidationReport {
	var r ValidationReport
	var problems []string
	reject := func(path string, n int, reason, msg string) {
		if r.Reasons == nil {
			r.Reasons = map[string]int{}
		}
		r.Rejected += n
		r.Reasons[reason] += n
		if len(problems) < maxReportedProblems {
			problems = append(problems, path+": "+msg)
		}
	}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			k := 0
			sms.At(j).Metrics().RemoveIf(func(m pmetric.Metric) bool {
				path := fmt.Sprintf("resource_metrics[%d].scope_metrics[%d].metrics[%d]", i, j, k)
				k++
				if m.Name() == "" || !utf8.ValidString(m.Name()) {
					reject(path, dataPoints(m), ReasonInvalidMetricName, "name is empty or not valid UTF-8")
					return true
				}
				return false
			})
		}
	}
	if r.Rejected > 0 {
		r.Message = strings.Join(problems, problemSeparator)
	}
	return r
}

// dataPoints counts the data points of one metric.
func dataPoints(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	}
	return 0
}
