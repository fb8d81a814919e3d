package main

import (
	"sync"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// xorBaseline is what Prometheus's own chunk encodings make of the
// backfilled samples: the encoded chunk bytes alone, without the TSDB's
// per-chunk framing and index (or Vigil's rows and index).
type xorBaseline struct {
	samples int64
	xor120  int64 // XOR chunks cut at 120 samples and at window ends, as the TSDB head cuts them
	xorWin  int64 // one XOR chunk per series and two-hour window
	xor2Win int64 // one XOR2 chunk (the encoding Vigil's chunks use) per series and window
}

// windowMillis is the compaction window, two hours aligned to midnight UTC.
const windowMillis = 2 * 3600 * 1000

// encodeBaseline regenerates the samples backfill wrote (the same streams:
// same series subsets and seeds) and encodes them with chunkenc.
func encodeBaseline(all []metricSeries, base int64, rounds, workers int) xorBaseline {
	var mu sync.Mutex
	var out xorBaseline
	var wg sync.WaitGroup
	for wk := 0; wk < workers; wk++ {
		var idx []int
		for i := wk; i < len(all); i += workers {
			idx = append(idx, i)
		}
		wg.Add(1)
		go func(wk int) {
			defer wg.Done()
			type enc struct {
				c   chunkenc.Chunk
				app chunkenc.Appender
				n   int
				win int64
			}
			open := func(c chunkenc.Chunk, win int64) *enc {
				app, _ := c.Appender()
				return &enc{c: c, app: app, win: win}
			}
			var res xorBaseline
			x120 := map[int]*enc{}
			xWin := map[int]*enc{}
			x2Win := map[int]*enc{}
			stream := newSeriesStream(all, idx, base, rounds, uint64(1000+wk))
			for {
				j, t, v, ok := stream.next()
				if !ok {
					break
				}
				res.samples++
				win := t / windowMillis
				for _, e := range []struct {
					m     map[int]*enc
					limit int
					total *int64
					mk    func() chunkenc.Chunk
				}{
					{x120, 120, &res.xor120, func() chunkenc.Chunk { return chunkenc.NewXORChunk() }},
					{xWin, 0, &res.xorWin, func() chunkenc.Chunk { return chunkenc.NewXORChunk() }},
					{x2Win, 0, &res.xor2Win, func() chunkenc.Chunk { return chunkenc.NewXOR2Chunk() }},
				} {
					cur := e.m[j]
					if cur == nil || cur.win != win || (e.limit > 0 && cur.n == e.limit) {
						if cur != nil {
							*e.total += int64(len(cur.c.Bytes()))
						}
						cur = open(e.mk(), win)
						e.m[j] = cur
					}
					cur.app.Append(0, t, v)
					cur.n++
				}
			}
			for _, m := range []struct {
				m     map[int]*enc
				total *int64
			}{{x120, &res.xor120}, {xWin, &res.xorWin}, {x2Win, &res.xor2Win}} {
				for _, e := range m.m {
					*m.total += int64(len(e.c.Bytes()))
				}
			}
			mu.Lock()
			out.samples += res.samples
			out.xor120 += res.xor120
			out.xorWin += res.xorWin
			out.xor2Win += res.xor2Win
			mu.Unlock()
		}(wk)
	}
	wg.Wait()
	return out
}
