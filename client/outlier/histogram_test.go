package outlier

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogramBuckets: buckets are contiguous and ordered, every duration
// lands in the bucket whose bounds hold it, and a bucket is at most 12.5 %
// wide above 8 units.
func TestHistogramBuckets(t *testing.T) {
	for b := 1; b < histBuckets; b++ {
		lo, prev := histLower(b), histLower(b-1)
		if lo <= prev {
			t.Fatalf("bucket %d starts at %v, not after bucket %d (%v)", b, lo, b-1, prev)
		}
		if b > 1<<histSubBits && float64(lo-prev)/float64(prev) > 0.125+1e-9 {
			t.Fatalf("bucket %d is %v wide from %v", b-1, lo-prev, prev)
		}
		if got := histBucket(lo); got != b {
			t.Fatalf("histBucket(%v) = %d, want %d", lo, got, b)
		}
		if got := histBucket(lo - 1); got != b-1 {
			t.Fatalf("histBucket(%v) = %d, want %d", lo-1, got, b-1)
		}
	}
	for _, d := range []time.Duration{-time.Second, 0, 1, time.Millisecond, time.Hour, math.MaxInt64} {
		if b := histBucket(d); b < 0 || b >= histBuckets {
			t.Fatalf("histBucket(%v) = %d, out of range", d, b)
		}
	}
}

// TestHistogramQuantile compares quantiles with exact ones over random
// latencies: within the bucket width.
func TestHistogramQuantile(t *testing.T) {
	var h histogram
	if h.quantile(0.99) != 0 {
		t.Fatal("empty histogram has a quantile")
	}
	r := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for range 10000 {
		d := time.Duration(math.Exp(r.NormFloat64()*0.5) * float64(2*time.Millisecond))
		if r.IntN(20) == 0 {
			d *= 10
		}
		all = append(all, d)
		h.add(d)
	}
	slices.Sort(all)
	for _, q := range []float64{0, 0.5, 0.9, 0.95, 0.99, 1} {
		exact := all[min(len(all)-1, max(0, int(math.Ceil(q*float64(len(all))))-1))]
		got := h.quantile(q)
		if rel := math.Abs(float64(got-exact)) / float64(exact); rel > 0.07 {
			t.Errorf("q%.2f = %v, exact %v (%.1f %% off)", q, got, exact, 100*rel)
		}
	}
	for _, d := range []time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, time.Second} {
		var exact int64
		for _, x := range all {
			if x >= d {
				exact++
			}
		}
		got := h.above(d)
		// Answers within the bucket holding d may fall either side.
		if b := int64(h.counts[histBucket(d)]); got < exact-b || got > exact+b {
			t.Errorf("above(%v) = %d, exact %d (±%d)", d, got, exact, b)
		}
	}
	h.reset()
	if h.n != 0 || h.quantile(0.5) != 0 || h.above(0) != 0 {
		t.Fatal("reset left counts")
	}
}
