package servicemap

import (
	"math"
	"testing"

	"github.com/vigil-obs/vigil/storage"
)

// TestQuantilesOddHistograms feeds quantiles histograms of the wrong
// length, as a store holding rows of another bucket layout would: no
// panic, counts beyond the bounds in +Inf, NaN without observations.
func TestQuantilesOddHistograms(t *testing.T) {
	n := len(storage.MapLatencyBounds)
	long := make([]uint64, n+5)
	long[0], long[n+3] = 50, 50 // half ≤ 0.5 ms, half beyond the bounds
	tests := []struct {
		name string
		h    []uint64
		p50  float64
		p99  float64
	}{
		{name: "nil", h: nil, p50: math.NaN(), p99: math.NaN()},
		{name: "zeros", h: make([]uint64, n+1), p50: math.NaN(), p99: math.NaN()},
		{name: "short", h: []uint64{0, 10}, p50: 0.0005 + 0.0005*0.5, p99: 0.0005 + 0.0005*0.99},
		// A quantile in +Inf is the highest finite bound, as
		// histogram_quantile answers.
		{name: "long", h: long, p50: 0.0005, p99: storage.MapLatencyBounds[n-1]},
	}
	same := func(a, b float64) bool {
		if math.IsNaN(a) || math.IsNaN(b) {
			return math.IsNaN(a) && math.IsNaN(b)
		}
		return math.Abs(a-b) < 1e-12
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := quantiles(tc.h)
			if !same(q[0], tc.p50) || !same(q[2], tc.p99) {
				t.Errorf("p50 %v p99 %v, want %v and %v", q[0], q[2], tc.p50, tc.p99)
			}
		})
	}
}
