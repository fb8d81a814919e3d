package metricstore

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// Vigil's encoding of one native histogram sample (the h column of
// metric_samples): a kind byte, then the fields of the histogram in
// declaration order, integers as varints and floats as their IEEE-754 bits,
// so a sample reads back bit for bit as it was written, counter-reset hint
// included. The encoding is private to the raw table; compacted chunks use
// Prometheus's own chunk encodings.
const (
	histKindInt   byte = 1 // histogram.Histogram
	histKindFloat byte = 2 // histogram.FloatHistogram
)

// errCorruptHistogram is returned when an h value cannot be decoded.
var errCorruptHistogram = fmt.Errorf("%w: histogram sample", pgcore.ErrCorrupt)

// appendHistogram appends the encoding of h (when not nil) or fh.
func appendHistogram(b []byte, h *histogram.Histogram, fh *histogram.FloatHistogram) []byte {
	f64 := func(v float64) { b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v)) }
	spans := func(ss []histogram.Span) {
		b = binary.AppendUvarint(b, uint64(len(ss)))
		for _, s := range ss {
			b = binary.AppendVarint(b, int64(s.Offset))
			b = binary.AppendUvarint(b, uint64(s.Length))
		}
	}
	floats := func(fs []float64) {
		b = binary.AppendUvarint(b, uint64(len(fs)))
		for _, f := range fs {
			f64(f)
		}
	}
	ints := func(is []int64) {
		b = binary.AppendUvarint(b, uint64(len(is)))
		for _, i := range is {
			b = binary.AppendVarint(b, i)
		}
	}
	if h != nil {
		b = append(b, histKindInt, byte(h.CounterResetHint))
		b = binary.AppendVarint(b, int64(h.Schema))
		f64(h.ZeroThreshold)
		b = binary.AppendUvarint(b, h.ZeroCount)
		b = binary.AppendUvarint(b, h.Count)
		f64(h.Sum)
		spans(h.PositiveSpans)
		spans(h.NegativeSpans)
		ints(h.PositiveBuckets)
		ints(h.NegativeBuckets)
		floats(h.CustomValues)
		return b
	}
	b = append(b, histKindFloat, byte(fh.CounterResetHint))
	b = binary.AppendVarint(b, int64(fh.Schema))
	f64(fh.ZeroThreshold)
	f64(fh.ZeroCount)
	f64(fh.Count)
	f64(fh.Sum)
	spans(fh.PositiveSpans)
	spans(fh.NegativeSpans)
	floats(fh.PositiveBuckets)
	floats(fh.NegativeBuckets)
	floats(fh.CustomValues)
	return b
}

// histDecoder reads an encoding written by appendHistogram.
type histDecoder struct{ pgcore.Decoder }

func (d *histDecoder) spans() []histogram.Span {
	n := d.Count()
	if n == 0 {
		return nil
	}
	out := make([]histogram.Span, n)
	for i := range out {
		out[i] = histogram.Span{Offset: int32(d.Varint()), Length: uint32(d.Uvarint())}
	}
	return out
}

func (d *histDecoder) floats() []float64 {
	n := d.Count()
	if n == 0 {
		return nil
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = d.Float64()
	}
	return out
}

func (d *histDecoder) ints() []int64 {
	n := d.Count()
	if n == 0 {
		return nil
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = d.Varint()
	}
	return out
}

// decodeHistogram decodes b into exactly one of h and fh.
func decodeHistogram(b []byte) (*histogram.Histogram, *histogram.FloatHistogram, error) {
	d := &histDecoder{pgcore.NewDecoder(b)}
	kind := d.Byte()
	hint := histogram.CounterResetHint(d.Byte())
	schema := int32(d.Varint())
	switch kind {
	case histKindInt:
		h := &histogram.Histogram{CounterResetHint: hint, Schema: schema}
		h.ZeroThreshold = d.Float64()
		h.ZeroCount = d.Uvarint()
		h.Count = d.Uvarint()
		h.Sum = d.Float64()
		h.PositiveSpans = d.spans()
		h.NegativeSpans = d.spans()
		h.PositiveBuckets = d.ints()
		h.NegativeBuckets = d.ints()
		h.CustomValues = d.floats()
		if d.Finish() != nil {
			return nil, nil, fmt.Errorf("decode histogram: %w", errCorruptHistogram)
		}
		return h, nil, nil
	case histKindFloat:
		fh := &histogram.FloatHistogram{CounterResetHint: hint, Schema: schema}
		fh.ZeroThreshold = d.Float64()
		fh.ZeroCount = d.Float64()
		fh.Count = d.Float64()
		fh.Sum = d.Float64()
		fh.PositiveSpans = d.spans()
		fh.NegativeSpans = d.spans()
		fh.PositiveBuckets = d.floats()
		fh.NegativeBuckets = d.floats()
		fh.CustomValues = d.floats()
		if d.Finish() != nil {
			return nil, nil, fmt.Errorf("decode histogram: %w", errCorruptHistogram)
		}
		return nil, fh, nil
	}
	return nil, nil, fmt.Errorf("decode histogram: kind %d: %w", kind, errCorruptHistogram)
}
