package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
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
var errCorruptHistogram = errors.New("corrupt histogram sample")

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
type histDecoder struct {
	b   []byte
	err error
}

func (d *histDecoder) fail() {
	if d.err == nil {
		d.err = errCorruptHistogram
	}
	d.b = nil
}

func (d *histDecoder) byte1() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *histDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *histDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *histDecoder) f64() float64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

// count reads a length and checks it against the bytes left (each element
// takes at least one byte), so corrupt input cannot make us allocate much.
func (d *histDecoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *histDecoder) spans() []histogram.Span {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make([]histogram.Span, n)
	for i := range out {
		out[i] = histogram.Span{Offset: int32(d.varint()), Length: uint32(d.uvarint())}
	}
	return out
}

func (d *histDecoder) floats() []float64 {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = d.f64()
	}
	return out
}

func (d *histDecoder) ints() []int64 {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = d.varint()
	}
	return out
}

// decodeHistogram decodes b into exactly one of h and fh.
func decodeHistogram(b []byte) (*histogram.Histogram, *histogram.FloatHistogram, error) {
	d := &histDecoder{b: b}
	kind := d.byte1()
	hint := histogram.CounterResetHint(d.byte1())
	schema := int32(d.varint())
	switch kind {
	case histKindInt:
		h := &histogram.Histogram{CounterResetHint: hint, Schema: schema}
		h.ZeroThreshold = d.f64()
		h.ZeroCount = d.uvarint()
		h.Count = d.uvarint()
		h.Sum = d.f64()
		h.PositiveSpans = d.spans()
		h.NegativeSpans = d.spans()
		h.PositiveBuckets = d.ints()
		h.NegativeBuckets = d.ints()
		h.CustomValues = d.floats()
		if d.err != nil || len(d.b) != 0 {
			return nil, nil, fmt.Errorf("decode histogram: %w", errCorruptHistogram)
		}
		return h, nil, nil
	case histKindFloat:
		fh := &histogram.FloatHistogram{CounterResetHint: hint, Schema: schema}
		fh.ZeroThreshold = d.f64()
		fh.ZeroCount = d.f64()
		fh.Count = d.f64()
		fh.Sum = d.f64()
		fh.PositiveSpans = d.spans()
		fh.NegativeSpans = d.spans()
		fh.PositiveBuckets = d.floats()
		fh.NegativeBuckets = d.floats()
		fh.CustomValues = d.floats()
		if d.err != nil || len(d.b) != 0 {
			return nil, nil, fmt.Errorf("decode histogram: %w", errCorruptHistogram)
		}
		return nil, fh, nil
	}
	return nil, nil, fmt.Errorf("decode histogram: kind %d: %w", kind, errCorruptHistogram)
}
