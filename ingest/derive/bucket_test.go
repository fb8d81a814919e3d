package derive

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// TestBucketOf checks bucketOf against sort.SearchFloat64s on the bounds,
// values on and around them, and odd values.
func TestBucketOf(t *testing.T) {
	for _, bounds := range [][]float64{msBounds[:], secBounds, nil, {1}} {
		vals := []float64{math.NaN(), math.Inf(1), math.Inf(-1), -1, 0, 1e300}
		for _, b := range bounds {
			vals = append(vals, b, math.Nextafter(b, 0), math.Nextafter(b, math.Inf(1)))
		}
		r := rand.New(rand.NewPCG(1, 2))
		for range 1000 {
			vals = append(vals, r.ExpFloat64()*10)
		}
		for _, v := range vals {
			if got, want := bucketOf(bounds, v), sort.SearchFloat64s(bounds, v); got != want {
				t.Errorf("bucketOf(%v, %v) = %d, want %d", bounds, v, got, want)
			}
		}
	}
}
