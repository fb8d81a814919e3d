package servicemap

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Breaker states as the reference client reports them.
const (
	breakerHalfOpen = 1
	breakerOpen     = 2
)

// markSeries is one mark and the edge it is about.
type markSeries struct {
	client, server string
	mark           Mark
}

// readMarks reads the reference client's breaker, ejection and retry
// budget series of the window and returns the marks they make at its end,
// sorted by edge, kind and instance.
func (s *Service) readMarks(ctx context.Context, start, end time.Time) ([]markSeries, error) {
	var out []markSeries
	smin, smax := start.UnixMilli(), end.UnixMilli()
	err := s.selectSeries(ctx, start, end, func(name string, lset labelsGetter, it sampleIterator) {
		ms := markSeries{client: lset.Get(labelJob), server: lset.Get(labelVigilService)}
		ms.mark.Instance = lset.Get(labelVigilInst)
		if ms.client == "" || ms.server == "" {
			return
		}
		switch name {
		case metricRetryExhausted:
			inc, first := increase(it, smin, smax)
			if inc <= 0 {
				return
			}
			ms.mark.Kind, ms.mark.Value, ms.mark.Since = MarkRetryBudgetExhausted, inc, time.UnixMilli(first).UTC()
		case metricBreakerState, metricEndpointEjected:
			v, since, ok := lastRun(it, smin, smax)
			if !ok {
				return
			}
			switch {
			case name == metricEndpointEjected && v == 1:
				ms.mark.Kind = MarkEjected
			case name == metricBreakerState && v == breakerOpen:
				ms.mark.Kind = MarkBreakerOpen
			case name == metricBreakerState && v == breakerHalfOpen:
				ms.mark.Kind = MarkBreakerHalfOpen
			default:
				return
			}
			ms.mark.Value, ms.mark.Since = v, time.UnixMilli(since).UTC()
		default:
			return
		}
		out = append(out, ms)
	}, oneOf(metricNameLabel, metricBreakerState, metricEndpointEjected, metricRetryExhausted))
	if err != nil {
		return nil, fmt.Errorf("client decision series: %w", err)
	}
	slices.SortFunc(out, func(a, b markSeries) int {
		return cmpStrings(a.client, b.client, a.server, b.server, a.mark.Kind, b.mark.Kind, a.mark.Instance, b.mark.Instance)
	})
	return out, nil
}

// lastRun returns a gauge's value at end (its last sample at or before
// end, no older than counterLookback and not a stale marker) and when the
// run of that value began: its first sample in the current run, or start
// when the run began earlier.
func lastRun(it sampleIterator, start, end int64) (v float64, since int64, ok bool) {
	var lastT int64
	for it.Next() != chunkenc.ValNone {
		t, x := it.At()
		if t > end {
			break
		}
		if value.IsStaleNaN(x) || math.IsNaN(x) {
			ok = false
			continue
		}
		if !ok || x != v {
			v, since, ok = x, t, true
		}
		lastT = t
	}
	if !ok || lastT < end-counterLookback.Milliseconds() {
		return 0, 0, false
	}
	return v, max(since, start), true
}

// cmpStrings compares pairs (a1, b1), (a2, b2), … in order.
func cmpStrings(pairs ...string) int {
	for i := 0; i+1 < len(pairs); i += 2 {
		if c := strings.Compare(pairs[i], pairs[i+1]); c != 0 {
			return c
		}
	}
	return 0
}
