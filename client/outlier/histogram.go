package outlier

import (
	"math"
	"math/bits"
	"time"
)

// histSubBits is log2 of the buckets per power of two: 8 buckets, so a
// bucket is at most 12.5 % wide and a quantile is known within that.
const histSubBits = 3

// histBuckets covers every non-negative time.Duration at 1.024 µs units.
const histBuckets = (64 - 10 - histSubBits) << histSubBits

// histogram counts latencies in log-linear buckets (the layout of HDR
// histograms with three significant bits): recording is O(1) without
// allocation, and a quantile is a walk over a fixed array. It is not safe for
// concurrent use; the detector's lock guards it.
type histogram struct {
	n      int64
	top    int // highest bucket with a count, when n > 0
	counts [histBuckets]uint32
}

// histBucket returns the bucket of d.
func histBucket(d time.Duration) int {
	v := uint64(max(d, 0)) >> 10
	if v < 1<<histSubBits {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits - 1
	return (e+1)<<histSubBits | int(v>>e)&(1<<histSubBits-1)
}

// histLower returns the smallest duration bucket b holds.
func histLower(b int) time.Duration {
	if b < 1<<histSubBits {
		return time.Duration(b) << 10
	}
	e := b>>histSubBits - 1
	return time.Duration(1<<histSubBits|b&(1<<histSubBits-1)) << e << 10
}

func (h *histogram) add(d time.Duration) {
	b := histBucket(d)
	if h.counts[b] < 1<<32-1 {
		h.counts[b]++
		h.n++
		h.top = max(h.top, b)
	}
}

func (h *histogram) reset() {
	if h.n == 0 {
		return
	}
	h.counts = [histBuckets]uint32{}
	h.n, h.top = 0, 0
}

// rank returns the middle of the bucket holding the r-th smallest latency
// (r from 1, clamped to [1, n]); zero when the histogram is empty.
func (h *histogram) rank(r int64) time.Duration {
	if h.n == 0 {
		return 0
	}
	r = min(max(r, 1), h.n)
	var seen int64
	for b, c := range h.counts {
		seen += int64(c)
		if seen >= r {
			lo := histLower(b)
			if b+1 >= histBuckets {
				return lo
			}
			return lo + (histLower(b+1)-lo)/2
		}
	}
	return histLower(histBuckets - 1)
}

// above returns how many latencies lie in buckets whose middle is at least
// d, the buckets rank and quantile would answer with.
func (h *histogram) above(d time.Duration) int64 {
	if h.n == 0 {
		return 0
	}
	var n int64
	for b := h.top; b >= 0; b-- {
		lo := histLower(b)
		mid := lo
		if b+1 < histBuckets {
			mid = lo + (histLower(b+1)-lo)/2
		}
		if mid < d {
			break
		}
		n += int64(h.counts[b])
	}
	return n
}

// quantile returns the middle of the bucket holding the q-quantile (q in
// [0, 1]); zero when the histogram is empty.
func (h *histogram) quantile(q float64) time.Duration {
	return h.rank(int64(math.Ceil(q * float64(h.n))))
}
