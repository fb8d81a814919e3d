package servicemap

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// The span-metrics series the Monitor's PromQL reads (see the deriver in
// ingest/derive).
const (
	metricNameLabel = model.MetricNameLabel

	metricSpanCalls    = "traces_span_metrics_calls"
	metricSpanDuration = "traces_span_metrics_duration"

	labelServiceName = "service_name"
	labelSpanName    = "span_name"
	labelLe          = "le"

	spanKindServer = "SPAN_KIND_SERVER"
)

// The reference client's series (client/telemetry.go) as Prometheus's
// OTLP translation stores them: gauges of unit "1" get _ratio, counters
// _total; resource service.name becomes job, dotted attributes
// underscored. TestClientSeriesNames checks them against the real OTLP
// path.
const (
	metricBreakerState    = "vigil_client_breaker_state_ratio"
	metricEndpointEjected = "vigil_client_endpoint_ejected_ratio"
	metricRetryExhausted  = "vigil_client_retry_budget_exhausted_total"

	labelJob          = "job"
	labelVigilService = "vigil_service"
	labelVigilInst    = "vigil_instance"
)

// Connection types of the service graph's edges.
const (
	ConnectionDatabase  = "database"
	ConnectionMessaging = "messaging_system"
	ConnectionVirtual   = "virtual_node"
)

// labelsGetter is the one method of labels.Labels the marks use.
type labelsGetter interface{ Get(name string) string }

// sampleIterator is the part of chunkenc.Iterator the marks use.
type sampleIterator interface {
	Next() chunkenc.ValueType
	At() (int64, float64)
}

func oneOf(name string, vs ...string) *labels.Matcher {
	re := ""
	for i, v := range vs {
		if i > 0 {
			re += "|"
		}
		re += regexpQuote(v)
	}
	return labels.MustNewMatcher(labels.MatchRegexp, name, re)
}

// regexpQuote escapes what a regular expression would read as syntax; the
// names passed here are metric names and enum values, so only the dot and
// the plus matter, but every metacharacter is escaped.
func regexpQuote(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$':
			out = append(out, '\\', c)
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

// selectSeries reads the series matching ms with their float samples in
// [start−counterLookback, end] and calls fn for each, one at a time, in
// the calling goroutine. name is the series' metric name.
func (s *Service) selectSeries(ctx context.Context, start, end time.Time, fn func(name string, lset labelsGetter, it sampleIterator), ms ...*labels.Matcher) error {
	mint, maxt := start.Add(-counterLookback).UnixMilli(), end.UnixMilli()
	q, err := s.opts.Metrics.Querier(mint, maxt)
	if err != nil {
		return fmt.Errorf("querier: %w", err)
	}
	defer q.Close()
	set := q.Select(ctx, false, &promstorage.SelectHints{Start: mint, End: maxt, Func: "servicemap"}, ms...)
	var it chunkenc.Iterator
	for set.Next() {
		sr := set.At()
		lset := sr.Labels()
		it = sr.Iterator(it)
		fn(lset.Get(metricNameLabel), lset, floatIterator{it})
	}
	if err := set.Err(); err != nil {
		return err
	}
	return ctx.Err()
}

// floatIterator skips the samples that are not floats (a series never
// mixes them, but a stray native histogram must not be read as 0).
type floatIterator struct{ it chunkenc.Iterator }

func (f floatIterator) Next() chunkenc.ValueType {
	for {
		switch vt := f.it.Next(); vt {
		case chunkenc.ValNone, chunkenc.ValFloat:
			return vt
		}
	}
}

func (f floatIterator) At() (int64, float64) { return f.it.At() }

// increase returns the reset-aware increase of a counter's samples in
// (start, end], measured from the last sample at or before start, or from
// the first sample after start when there is none (a series written for
// the first time starts with 0), and the time of the first sample that
// increased it (0 when none did). A stale marker ends a run: the next
// sample starts a new one and is measured from, as a first sample is.
func increase(it sampleIterator, start, end int64) (inc float64, firstUp int64) {
	var prev float64
	have := false
	for it.Next() != chunkenc.ValNone {
		t, v := it.At()
		if t > end {
			break
		}
		if value.IsStaleNaN(v) || math.IsNaN(v) {
			have = false
			continue
		}
		if t <= start || !have {
			prev, have = v, true
			continue
		}
		d := v - prev
		if v < prev {
			d = v // a reset: the counter started again from 0
		}
		if d > 0 {
			inc += d
			if firstUp == 0 {
				firstUp = t
			}
		}
		prev = v
	}
	return inc, firstUp
}
