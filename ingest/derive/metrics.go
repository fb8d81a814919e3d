package derive

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// selfMetrics are the Deriver's own metrics.
type selfMetrics struct {
	spans          prometheus.Counter
	flushFailures  prometheus.Counter
	seriesDropped  prometheus.Counter
	foldedByName   *prometheus.CounterVec
	flushDuration  prometheus.Histogram
	pendingHalves  prometheus.GaugeFunc
	derivedSeries  prometheus.GaugeFunc
	edgeTraceFails prometheus.Counter
	rollupFails    prometheus.Counter
	rollupsDropped prometheus.Counter
}

func newSelfMetrics(reg prometheus.Registerer, d *Deriver) (*selfMetrics, error) {
	m := &selfMetrics{
		spans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_derive_spans_total", Help: "Spans seen by the span-metrics and service-graph deriver."}),
		flushFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_derive_flush_failures_total", Help: "Flushes of derived series that failed (retried with the next flush)."}),
		seriesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_derive_series_dropped_total", Help: "Updates of new derived series dropped because derive.max_series were held."}),
		foldedByName: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_derive_operations_folded_total", Help: "Spans whose name was replaced by __overflow__ because their service had derive.max_operations_per_service names."},
			[]string{"service_name"}),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_derive_flush_duration_seconds", Help: "Duration of flushes of derived series.", Buckets: prometheus.DefBuckets}),
		edgeTraceFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_derive_edge_trace_failures_total", Help: "Writes of example traces of edges that failed (the examples are lost)."}),
		rollupFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_derive_map_rollup_failures_total", Help: "Writes of the service map's rollups that failed (retried with the next flush)."}),
		rollupsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_derive_map_rollups_dropped_total", Help: "Rollups of map keys dropped because too many waited for a write to succeed."}),
	}
	m.pendingHalves = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_derive_pending_halves", Help: "Client and server halves waiting in memory for their partner."},
		func() float64 {
			d.mu.Lock()
			defer d.mu.Unlock()
			return float64(len(d.pending))
		})
	m.derivedSeries = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_derive_series", Help: "Derived series held in memory (one per span-metrics key, edge, or unpaired/dropped counter)."},
		func() float64 {
			d.mu.Lock()
			defer d.mu.Unlock()
			return float64(d.nSeries)
		})
	if reg != nil {
		for _, c := range []prometheus.Collector{m.spans, m.flushFailures, m.seriesDropped, m.foldedByName,
			m.flushDuration, m.pendingHalves, m.derivedSeries, m.edgeTraceFails, m.rollupFails, m.rollupsDropped} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register derive metrics: %w", err)
			}
		}
	}
	return m, nil
}

// folded counts a span whose name became __overflow__.
func (m *selfMetrics) folded(service string) { m.foldedByName.WithLabelValues(service).Inc() }
