package metricstore

import (
	"encoding/binary"
	"fmt"

	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// Segment kinds of a metric_chunks row.
const (
	segmentXOR2       byte = 1 // a Prometheus XOR2 chunk of float samples with start times
	segmentHistograms byte = 2 // native histogram samples in Vigil's encoding
	segmentXOR        byte = 3 // a Prometheus XOR chunk of float samples without start times
)

// Float segments are cut at these many samples. An XOR chunk's count is
// 16 bits. XOR2 marks where the start time first changes in a 7-bit header
// field and from the 128th sample on writes a start-time delta with every
// sample, so its chunks are cut at 120 samples, as Prometheus's head does.
const (
	maxSamplesPerXOR  = 1 << 14
	maxSamplesPerXOR2 = 120
)

// encodeChunkData appends the encoding of samples (sorted by time, no two
// at the same time) to dst: runs of float samples become XOR chunks, or
// XOR2 chunks when they carry start times, runs of histogram samples a
// histogram segment.
func encodeChunkData(dst []byte, samples []metricSample) ([]byte, error) {
	for i := 0; i < len(samples); {
		isHist := samples[i].h != nil || samples[i].fh != nil
		j := i + 1
		for j < len(samples) && (samples[j].h != nil || samples[j].fh != nil) == isHist {
			j++
		}
		if isHist {
			dst = appendSegment(dst, segmentHistograms, encodeHistogramSegment(samples[i:j]))
			i = j
			continue
		}
		for i < j {
			withST := false
			for _, s := range samples[i:j] {
				if s.st != 0 {
					withST = true
					break
				}
			}
			var c chunkenc.Chunk = chunkenc.NewXORChunk()
			kind, n := segmentXOR, maxSamplesPerXOR
			if withST {
				c, kind, n = chunkenc.NewXOR2Chunk(), segmentXOR2, maxSamplesPerXOR2
			}
			end := min(j, i+n)
			app, err := c.Appender()
			if err != nil {
				return nil, fmt.Errorf("encode chunk: %w", err)
			}
			for _, s := range samples[i:end] {
				app.Append(s.st, s.t, s.f)
			}
			dst = appendSegment(dst, kind, c.Bytes())
			i = end
		}
	}
	return dst, nil
}

// appendSegment appends one segment: its kind, its length and its bytes.
func appendSegment(dst []byte, kind byte, seg []byte) []byte {
	dst = append(dst, kind)
	dst = binary.AppendUvarint(dst, uint64(len(seg)))
	return append(dst, seg...)
}

// encodeHistogramSegment encodes histogram samples: a uvarint count, then
// for each the time as a varint delta from the previous one (from 0 for
// the first), the start time as a varint (0 = unknown) and the histogram
// in Vigil's encoding behind a uvarint length.
func encodeHistogramSegment(samples []metricSample) []byte {
	b := binary.AppendUvarint(nil, uint64(len(samples)))
	var prev int64
	for _, s := range samples {
		b = binary.AppendVarint(b, s.t-prev)
		prev = s.t
		b = binary.AppendVarint(b, s.st)
		h := appendHistogram(nil, s.h, s.fh)
		b = binary.AppendUvarint(b, uint64(len(h)))
		b = append(b, h...)
	}
	return b
}

// decodeChunkData appends the samples of data with mint <= t <= maxt to
// dst.
func decodeChunkData(dst []metricSample, data []byte, mint, maxt int64) ([]metricSample, error) {
	d := pgcore.NewDecoder(data)
	for d.Len() > 0 {
		kind := d.Byte()
		seg := d.Bytes(d.Uvarint())
		if d.Err() != nil {
			return dst, fmt.Errorf("chunk segment length: %w", pgcore.ErrCorrupt)
		}
		var err error
		switch kind {
		case segmentXOR:
			dst, err = decodeFloats(dst, chunkenc.EncXOR, seg, mint, maxt)
		case segmentXOR2:
			dst, err = decodeFloats(dst, chunkenc.EncXOR2, seg, mint, maxt)
		case segmentHistograms:
			dst, err = decodeHistogramSegment(dst, seg, mint, maxt)
		default:
			err = fmt.Errorf("chunk segment kind %d: %w", kind, pgcore.ErrCorrupt)
		}
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// decodeFloats appends the samples of an XOR or XOR2 chunk with
// mint <= t <= maxt to dst.
func decodeFloats(dst []metricSample, enc chunkenc.Encoding, seg []byte, mint, maxt int64) ([]metricSample, error) {
	if len(seg) < 3 { // the sample count, and XOR2's start-time header
		return dst, fmt.Errorf("%s chunk of %d bytes: %w", enc, len(seg), pgcore.ErrCorrupt)
	}
	c, err := chunkenc.FromData(enc, seg)
	if err != nil {
		return dst, fmt.Errorf("%s chunk: %w", enc, err)
	}
	it := c.Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		if t < mint {
			continue
		}
		if t > maxt {
			return dst, nil
		}
		dst = append(dst, metricSample{t: t, st: it.AtST(), f: v})
	}
	if err := it.Err(); err != nil {
		return dst, fmt.Errorf("%s chunk: %w: %w", enc, err, pgcore.ErrCorrupt)
	}
	return dst, nil
}

func decodeHistogramSegment(dst []metricSample, seg []byte, mint, maxt int64) ([]metricSample, error) {
	d := pgcore.NewDecoder(seg)
	count := d.Uvarint()
	if d.Err() != nil {
		return dst, fmt.Errorf("histogram segment count: %w", pgcore.ErrCorrupt)
	}
	var t int64
	for range count {
		dt := d.Varint()
		if d.Err() != nil {
			return dst, fmt.Errorf("histogram segment time: %w", pgcore.ErrCorrupt)
		}
		st := d.Varint()
		if d.Err() != nil {
			return dst, fmt.Errorf("histogram segment start time: %w", pgcore.ErrCorrupt)
		}
		body := d.Bytes(d.Uvarint())
		if d.Err() != nil {
			return dst, fmt.Errorf("histogram segment length: %w", pgcore.ErrCorrupt)
		}
		t += dt
		if t < mint || t > maxt {
			continue
		}
		h, fh, err := decodeHistogram(body)
		if err != nil {
			return dst, err
		}
		dst = append(dst, metricSample{t: t, st: st, h: h, fh: fh})
	}
	return dst, nil
}

// mergeSamples merges older and newer, both sorted by time, into dst; at
// equal times the sample of newer wins.
func mergeSamples(dst, older, newer []metricSample) []metricSample {
	i, j := 0, 0
	for i < len(older) && j < len(newer) {
		switch {
		case older[i].t < newer[j].t:
			dst = append(dst, older[i])
			i++
		case older[i].t > newer[j].t:
			dst = append(dst, newer[j])
			j++
		default:
			dst = append(dst, newer[j])
			i++
			j++
		}
	}
	dst = append(dst, older[i:]...)
	return append(dst, newer[j:]...)
}
