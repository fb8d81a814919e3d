package metricstore

import (
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// metricSample is one stored sample; it implements chunks.Sample.
type metricSample struct {
	t  int64
	st int64
	f  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

func (s metricSample) T() int64   { return s.t }
func (s metricSample) ST() int64  { return s.st }
func (s metricSample) F() float64 { return s.f }
func (s metricSample) H() *histogram.Histogram {
	return s.h
}

func (s metricSample) FH() *histogram.FloatHistogram {
	if s.fh == nil && s.h != nil {
		return s.h.ToFloat(nil)
	}
	return s.fh
}

func (s metricSample) Type() chunkenc.ValueType {
	switch {
	case s.h != nil:
		return chunkenc.ValHistogram
	case s.fh != nil:
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

func (s metricSample) Copy() chunks.Sample {
	c := s
	if s.h != nil {
		c.h = s.h.Copy()
	}
	if s.fh != nil {
		c.fh = s.fh.Copy()
	}
	return c
}

// sampleList is the samples of one series in time order; it implements
// storage.Samples.
type sampleList struct{ s []metricSample }

// Get returns a pointer into the list: boxing a pointer into the
// interface allocates nothing, where boxing the sample would allocate
// once per sample read.
func (l *sampleList) Get(i int) chunks.Sample { return &l.s[i] }
func (l *sampleList) Len() int                { return len(l.s) }

// storedSeries is one selected series. Its iterators are Prometheus's list
// iterators (storage.NewListSeriesIteratorWithCopy), which implement
// chunkenc.Iterator, Seek and AtST included, and hand out copies of
// histograms so the engine may modify them.
type storedSeries struct {
	lset    labels.Labels
	samples *sampleList
}

func (s *storedSeries) Labels() labels.Labels { return s.lset }

func (s *storedSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return promstorage.NewListSeriesIteratorWithCopy(s.samples)
}

// seriesSet is a sorted, fully read list of series.
type seriesSet struct {
	series []promstorage.Series
	idx    int
}

func (s *seriesSet) Next() bool {
	if s.idx+1 >= len(s.series) {
		s.idx = len(s.series)
		return false
	}
	s.idx++
	return true
}

func (s *seriesSet) At() promstorage.Series            { return s.series[s.idx] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }
