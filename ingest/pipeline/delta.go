package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Reasons a delta point is dropped by the accumulator.
var (
	// errDeltaOutOfOrder: the point ends at or before the last point of its
	// stream, or starts before that point ended (a retry or an overlap).
	errDeltaOutOfOrder = errors.New("delta point out of order or already counted")
	// errDeltaTooManyStreams: the accumulator holds its maximum of streams.
	errDeltaTooManyStreams = errors.New("too many delta streams")
)

// deltaStream is the running total of one delta stream (resource, scope,
// metric, attributes).
type deltaStream struct {
	start pcommon.Timestamp // start of the first point: the cumulative start time
	last  pcommon.Timestamp // end of the last point added
	seen  time.Time         // when the stream last received a point

	sum      float64 // sums (ints are kept exact below)
	intSum   int64
	isInt    bool
	count    uint64 // histograms
	hsum     float64
	hasSum   bool
	hasMin   bool
	hasMax   bool
	min, max float64
	bounds   []float64
	buckets  []uint64
	// exponential histograms
	scale                 int32
	zeroThreshold         float64
	zeroCount             uint64
	posOffset, negOffset  int32
	posBuckets, negBucket []uint64
}

// DeltaAccumulator turns delta sums, histograms and exponential histograms into
// cumulative ones, stream by stream, as Prometheus stores only cumulative
// series (the OpenTelemetry Collector's deltatocumulative processor does
// the same). Its state is in memory: after a restart, or on another
// replica, a stream starts again from zero with a new start time, which
// PromQL's rate() reads as a counter reset. Safe for concurrent use.
type DeltaAccumulator struct {
	maxStreams int
	maxStale   time.Duration
	now        func() time.Time

	mu      sync.Mutex
	streams map[uint64]*deltaStream
	swept   time.Time
}

// NewDeltaAccumulator returns an accumulator holding at most maxStreams streams
// (default 100,000) and forgetting a stream that got no point for maxStale
// (default 1 h).
func NewDeltaAccumulator(maxStreams int, maxStale time.Duration) *DeltaAccumulator {
	if maxStreams <= 0 {
		maxStreams = 100_000
	}
	if maxStale <= 0 {
		maxStale = time.Hour
	}
	return &DeltaAccumulator{maxStreams: maxStreams, maxStale: maxStale, now: time.Now, streams: map[uint64]*deltaStream{}}
}

// Convert rewrites every delta metric of md in place into a cumulative
// one. Points that cannot be accumulated (out of order, duplicates, over
// the stream limit) are removed; Convert returns how many and the first
// reason, naming the metric.
func (a *DeltaAccumulator) Convert(md pmetric.Metrics) (dropped int, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if now.Sub(a.swept) > a.maxStale/4 {
		for k, s := range a.streams {
			if now.Sub(s.seen) > a.maxStale {
				delete(a.streams, k)
			}
		}
		a.swept = now
	}
	var h xxhash.Digest
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			sm := sms.At(j)
			ms := sm.Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if !isDelta(m) {
					continue
				}
				// Only delta metrics pay for hashing their stream.
				resHash := hashMap(&h, rm.Resource().Attributes(), 0)
				h.Reset()
				_, _ = h.WriteString(sm.Scope().Name() + "\x00" + sm.Scope().Version() + "\x00")
				_, _ = h.WriteString(m.Name() + "\x00" + m.Unit() + "\x00" + m.Type().String())
				c := pointConverter{a: a, h: &h, metricHash: h.Sum64() ^ resHash*31, now: now, fail: func(e error) {
					dropped++
					if err == nil {
						err = fmt.Errorf("metric %q: %w", m.Name(), e)
					}
				}}
				switch m.Type() {
				case pmetric.MetricTypeSum:
					convertPoints(c, m.Sum().DataPoints().RemoveIf, (*deltaStream).addNumber)
					m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
				case pmetric.MetricTypeHistogram:
					convertPoints(c, m.Histogram().DataPoints().RemoveIf, (*deltaStream).addHistogram)
					m.Histogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
				case pmetric.MetricTypeExponentialHistogram:
					convertPoints(c, m.ExponentialHistogram().DataPoints().RemoveIf, (*deltaStream).addExponential)
					m.ExponentialHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
				}
			}
		}
	}
	return dropped, err
}

// isDelta reports whether m is a sum, histogram or exponential histogram
// with delta temporality.
func isDelta(m pmetric.Metric) bool {
	switch m.Type() {
	case pmetric.MetricTypeSum:
		return m.Sum().AggregationTemporality() == pmetric.AggregationTemporalityDelta
	case pmetric.MetricTypeHistogram:
		return m.Histogram().AggregationTemporality() == pmetric.AggregationTemporalityDelta
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().AggregationTemporality() == pmetric.AggregationTemporalityDelta
	}
	return false
}

// deltaPoint is what the points of delta metrics share.
type deltaPoint interface {
	Attributes() pcommon.Map
	StartTimestamp() pcommon.Timestamp
	Timestamp() pcommon.Timestamp
}

// pointConverter holds what converting the points of one metric needs.
type pointConverter struct {
	a          *DeltaAccumulator
	h          *xxhash.Digest
	metricHash uint64
	now        time.Time
	fail       func(error)
}

// convertPoints adds every point of one delta metric to its stream and
// rewrites it as the running total (add), removing the points that cannot
// be accumulated.
func convertPoints[P deltaPoint](c pointConverter, removeIf func(func(P) bool), add func(*deltaStream, P)) {
	removeIf(func(p P) bool {
		s, err := c.a.stream(c.h, c.metricHash, p.Attributes(), p.StartTimestamp(), p.Timestamp(), c.now)
		if err != nil {
			c.fail(err)
			return true
		}
		add(s, p)
		return false
	})
}

// stream returns the stream of a point, checking that the point follows
// the stream's last one.
func (a *DeltaAccumulator) stream(h *xxhash.Digest, metricHash uint64, attrs pcommon.Map, start, end pcommon.Timestamp, now time.Time) (*deltaStream, error) {
	key := hashMap(h, attrs, metricHash)
	s, ok := a.streams[key]
	if !ok {
		if len(a.streams) >= a.maxStreams {
			return nil, errDeltaTooManyStreams
		}
		if start == 0 || start > end {
			start = end
		}
		s = &deltaStream{start: start}
		a.streams[key] = s
	} else if end <= s.last || (start != 0 && start < s.last) {
		return nil, errDeltaOutOfOrder
	}
	s.last, s.seen = end, now
	return s, nil
}

// hashMap hashes the attributes of m, in key order, into seed.
func hashMap(h *xxhash.Digest, m pcommon.Map, seed uint64) uint64 {
	keys := make([]string, 0, m.Len())
	for k := range m.All() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h.Reset()
	for _, k := range keys {
		v, _ := m.Get(k)
		_, _ = h.WriteString(k)
		_, _ = h.WriteString("\x00" + v.Type().String() + "\x00" + v.AsString() + "\x00")
	}
	return h.Sum64() ^ (seed * 0x9e3779b97f4a7c15)
}

// addNumber adds a delta sum point and rewrites it as the running total.
// A stream that starts with integers stays exact until a float point
// arrives.
func (s *deltaStream) addNumber(p pmetric.NumberDataPoint) {
	isInt := p.ValueType() == pmetric.NumberDataPointValueTypeInt
	if s.count == 0 {
		s.isInt = isInt
	}
	s.count++
	switch {
	case isInt && s.isInt:
		s.intSum += p.IntValue()
		p.SetIntValue(s.intSum)
	case isInt:
		s.sum += float64(p.IntValue())
		p.SetDoubleValue(s.sum)
	default:
		if s.isInt {
			s.sum, s.isInt = float64(s.intSum), false
		}
		s.sum += p.DoubleValue()
		p.SetDoubleValue(s.sum)
	}
	p.SetStartTimestamp(s.start)
}

// addHistogram adds a delta histogram point and rewrites it as the
// running histogram. A change of bucket boundaries starts the stream again
// (a reset).
func (s *deltaStream) addHistogram(p pmetric.HistogramDataPoint) {
	bounds := p.ExplicitBounds().AsRaw()
	if s.buckets == nil || !slices.Equal(bounds, s.bounds) || len(s.buckets) != p.BucketCounts().Len() {
		*s = deltaStream{start: p.StartTimestamp(), last: s.last, seen: s.seen, bounds: bounds,
			buckets: make([]uint64, p.BucketCounts().Len())}
		if s.start == 0 || s.start > s.last {
			s.start = s.last
		}
	}
	for i := range s.buckets {
		s.buckets[i] += p.BucketCounts().At(i)
	}
	s.addCounts(p)
	p.BucketCounts().FromRaw(s.buckets)
	s.writeCounts(p)
}

// addExponential adds a delta exponential histogram point and rewrites it
// as the running histogram. Points of another scale or zero threshold than
// the running total start the stream again (a reset).
func (s *deltaStream) addExponential(p pmetric.ExponentialHistogramDataPoint) {
	if s.posBuckets == nil || p.Scale() != s.scale || p.ZeroThreshold() != s.zeroThreshold {
		*s = deltaStream{start: p.StartTimestamp(), last: s.last, seen: s.seen, scale: p.Scale(),
			zeroThreshold: p.ZeroThreshold(), posBuckets: []uint64{}, negBucket: []uint64{},
			posOffset: p.Positive().Offset(), negOffset: p.Negative().Offset()}
		if s.start == 0 || s.start > s.last {
			s.start = s.last
		}
	}
	s.posOffset, s.posBuckets = addBuckets(s.posOffset, s.posBuckets, p.Positive())
	s.negOffset, s.negBucket = addBuckets(s.negOffset, s.negBucket, p.Negative())
	s.zeroCount += p.ZeroCount()
	s.addCounts(p)
	p.Positive().SetOffset(s.posOffset)
	p.Positive().BucketCounts().FromRaw(s.posBuckets)
	p.Negative().SetOffset(s.negOffset)
	p.Negative().BucketCounts().FromRaw(s.negBucket)
	p.SetZeroCount(s.zeroCount)
	s.writeCounts(p)
}

// addBuckets adds the buckets of b to the running buckets starting at
// index offset, widening them as needed.
func addBuckets(offset int32, buckets []uint64, b pmetric.ExponentialHistogramDataPointBuckets) (int32, []uint64) {
	n := b.BucketCounts().Len()
	if n == 0 {
		return offset, buckets
	}
	lo := b.Offset()
	if len(buckets) == 0 {
		offset = lo
	}
	if lo < offset {
		buckets = append(make([]uint64, offset-lo), buckets...)
		offset = lo
	}
	if need := int(lo-offset) + n; need > len(buckets) {
		buckets = append(buckets, make([]uint64, need-len(buckets))...)
	}
	for i := 0; i < n; i++ {
		buckets[int(lo-offset)+i] += b.BucketCounts().At(i)
	}
	return offset, buckets
}

// histogramPoint is what histogram and exponential histogram points share.
type histogramPoint interface {
	Count() uint64
	SetCount(uint64)
	HasSum() bool
	Sum() float64
	SetSum(float64)
	HasMin() bool
	Min() float64
	SetMin(float64)
	HasMax() bool
	Max() float64
	SetMax(float64)
	SetStartTimestamp(pcommon.Timestamp)
}

// addCounts adds the count, sum, min and max of a delta histogram point to
// the running totals.
func (s *deltaStream) addCounts(p histogramPoint) {
	s.count += p.Count()
	if p.HasSum() {
		s.hsum += p.Sum()
		s.hasSum = true
	}
	if p.HasMin() && (!s.hasMin || p.Min() < s.min) {
		s.min, s.hasMin = p.Min(), true
	}
	if p.HasMax() && (!s.hasMax || p.Max() > s.max) {
		s.max, s.hasMax = p.Max(), true
	}
}

// writeCounts rewrites a point's count, sum, min, max and start time as the
// running totals'.
func (s *deltaStream) writeCounts(p histogramPoint) {
	p.SetCount(s.count)
	if s.hasSum {
		p.SetSum(s.hsum)
	}
	if p.HasMin() {
		p.SetMin(s.min)
	}
	if p.HasMax() {
		p.SetMax(s.max)
	}
	p.SetStartTimestamp(s.start)
}
