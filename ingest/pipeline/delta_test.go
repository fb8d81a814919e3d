package pipeline

import (
	"errors"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// deltaSum returns a request with one delta sum point per (start, end,
// value, attribute) given.
func deltaSum(points ...[4]int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "svc")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("calls")
	m.SetEmptySum().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	m.Sum().SetIsMonotonic(true)
	for _, p := range points {
		dp := m.Sum().DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.Timestamp(p[0]))
		dp.SetTimestamp(pcommon.Timestamp(p[1]))
		dp.SetIntValue(p[2])
		dp.Attributes().PutInt("shard", p[3])
	}
	return md
}

func sumValues(md pmetric.Metrics) (vals []int64, starts []int64) {
	m := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
	if m.Sum().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
		return nil, nil
	}
	for i := 0; i < m.Sum().DataPoints().Len(); i++ {
		dp := m.Sum().DataPoints().At(i)
		vals = append(vals, dp.IntValue())
		starts = append(starts, int64(dp.StartTimestamp()))
	}
	return vals, starts
}

func TestAccumulatorSums(t *testing.T) {
	a := NewDeltaAccumulator(0, 0)
	md := deltaSum([4]int64{100, 200, 5, 0}, [4]int64{200, 300, 3, 0}, [4]int64{100, 200, 7, 1})
	if n, err := a.Convert(md); n != 0 || err != nil {
		t.Fatalf("convert: %d %v", n, err)
	}
	vals, starts := sumValues(md)
	if !slices.Equal(vals, []int64{5, 8, 7}) || !slices.Equal(starts, []int64{100, 100, 100}) {
		t.Fatalf("values %v starts %v", vals, starts)
	}
	// The next request continues; a retry of an old point is refused and
	// removed, the rest is kept.
	md = deltaSum([4]int64{300, 400, 2, 0}, [4]int64{200, 300, 3, 0}, [4]int64{200, 250, 1, 1})
	n, err := a.Convert(md)
	if n != 1 || !errors.Is(err, errDeltaOutOfOrder) {
		t.Fatalf("retry: %d %v", n, err)
	}
	if vals, _ := sumValues(md); !slices.Equal(vals, []int64{10, 8}) {
		t.Fatalf("values %v", vals)
	}
}

func TestAccumulatorLimitsAndStaleness(t *testing.T) {
	a := NewDeltaAccumulator(2, time.Minute)
	clock := time.Unix(1000, 0)
	a.now = func() time.Time { return clock }
	md := deltaSum([4]int64{1, 2, 1, 0}, [4]int64{1, 2, 1, 1}, [4]int64{1, 2, 1, 2})
	if n, err := a.Convert(md); n != 1 || !errors.Is(err, errDeltaTooManyStreams) {
		t.Fatalf("third stream: %d %v", n, err)
	}
	// After maxStale without points the streams are forgotten: a stream
	// starts again from zero.
	clock = clock.Add(2 * time.Minute)
	md = deltaSum([4]int64{5, 6, 4, 2})
	if n, err := a.Convert(md); n != 0 || err != nil {
		t.Fatalf("after staleness: %d %v", n, err)
	}
	if vals, starts := sumValues(md); !slices.Equal(vals, []int64{4}) || starts[0] != 5 {
		t.Fatalf("values %v starts %v", vals, starts)
	}
}

func TestAccumulatorHistograms(t *testing.T) {
	a := NewDeltaAccumulator(0, 0)
	hist := func(start, end int64, bounds []float64, counts []uint64, sum float64) pmetric.Metrics {
		md := pmetric.NewMetrics()
		m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("latency")
		m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		dp := m.Histogram().DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.Timestamp(start))
		dp.SetTimestamp(pcommon.Timestamp(end))
		dp.ExplicitBounds().FromRaw(bounds)
		dp.BucketCounts().FromRaw(counts)
		var c uint64
		for _, n := range counts {
			c += n
		}
		dp.SetCount(c)
		dp.SetSum(sum)
		return md
	}
	point := func(md pmetric.Metrics) pmetric.HistogramDataPoint {
		return md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Histogram().DataPoints().At(0)
	}
	b := []float64{0.1, 1}
	for _, md := range []pmetric.Metrics{hist(10, 20, b, []uint64{1, 2, 0}, 1.5)} {
		if _, err := a.Convert(md); err != nil {
			t.Fatal(err)
		}
	}
	md := hist(20, 30, b, []uint64{0, 1, 4}, 9)
	if _, err := a.Convert(md); err != nil {
		t.Fatal(err)
	}
	p := point(md)
	if !slices.Equal(p.BucketCounts().AsRaw(), []uint64{1, 3, 4}) || p.Count() != 8 || p.Sum() != 10.5 || p.StartTimestamp() != 10 {
		t.Fatalf("cumulative %v count %d sum %g start %d", p.BucketCounts().AsRaw(), p.Count(), p.Sum(), p.StartTimestamp())
	}
	// New boundaries: a reset.
	md = hist(30, 40, []float64{0.5}, []uint64{2, 2}, 3)
	if _, err := a.Convert(md); err != nil {
		t.Fatal(err)
	}
	if p := point(md); !slices.Equal(p.BucketCounts().AsRaw(), []uint64{2, 2}) || p.StartTimestamp() != 30 {
		t.Fatalf("after reset %v start %d", p.BucketCounts().AsRaw(), p.StartTimestamp())
	}
}

func TestAccumulatorExponentialHistograms(t *testing.T) {
	a := NewDeltaAccumulator(0, 0)
	exp := func(start, end int64, offset int32, counts []uint64) pmetric.Metrics {
		md := pmetric.NewMetrics()
		m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("size")
		m.SetEmptyExponentialHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		dp := m.ExponentialHistogram().DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.Timestamp(start))
		dp.SetTimestamp(pcommon.Timestamp(end))
		dp.SetScale(2)
		dp.Positive().SetOffset(offset)
		dp.Positive().BucketCounts().FromRaw(counts)
		var c uint64
		for _, n := range counts {
			c += n
		}
		dp.SetCount(c)
		return md
	}
	if _, err := a.Convert(exp(1, 2, 5, []uint64{1, 1})); err != nil {
		t.Fatal(err)
	}
	md := exp(2, 3, 3, []uint64{2, 0, 0, 0, 1}) // buckets 3..7
	if _, err := a.Convert(md); err != nil {
		t.Fatal(err)
	}
	p := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).ExponentialHistogram().DataPoints().At(0)
	if p.Positive().Offset() != 3 || !slices.Equal(p.Positive().BucketCounts().AsRaw(), []uint64{2, 0, 1, 1, 1}) || p.Count() != 5 {
		t.Fatalf("offset %d buckets %v count %d", p.Positive().Offset(), p.Positive().BucketCounts().AsRaw(), p.Count())
	}
}
