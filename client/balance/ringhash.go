package balance

import (
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// HashKey hashes an affinity key (a header value, a client IP) for
// Request.Hash. It is stable across processes and releases, so several
// clients agree on where a key goes.
func HashKey(key string) uint64 {
	// FNV-1a, then a murmur3 finaliser: FNV alone clusters similar keys
	// ("user-1", "user-2") on the ring.
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

type ringPoint struct {
	hash uint64
	ep   *Endpoint
}

// ringHash is consistent hashing with bounded loads.
type ringHash struct {
	points   int
	factor   float64
	fallback *p2c

	mu   sync.RWMutex
	eps  []*Endpoint
	ring []ringPoint
}

func (b *ringHash) Update(eps []*Endpoint) {
	ring := make([]ringPoint, 0, len(eps)*b.points)
	for _, e := range eps {
		n := e.Weight * b.points
		for i := 0; i < n; i++ {
			ring = append(ring, ringPoint{hash: HashKey(e.Addr + "#" + strconv.Itoa(i)), ep: e})
		}
	}
	slices.SortFunc(ring, func(a, c ringPoint) int {
		switch {
		case a.hash < c.hash:
			return -1
		case a.hash > c.hash:
			return 1
		}
		// Equal hashes are vanishingly rare; order them by address so every
		// client builds the same ring.
		if a.ep.Addr < c.ep.Addr {
			return -1
		}
		return 1
	})
	b.fallback.Update(eps)
	b.mu.Lock()
	b.eps = append([]*Endpoint(nil), eps...)
	b.ring = ring
	b.mu.Unlock()
}

func (b *ringHash) Pick(now time.Time, r Request, usable func(*Endpoint) bool) *Endpoint {
	if !r.HasHash {
		return b.fallback.Pick(now, r, usable)
	}
	b.mu.RLock()
	ring, eps := b.ring, b.eps
	b.mu.RUnlock()
	if len(ring) == 0 {
		return nil
	}
	// Capacity per unit of weight: ceil(c × (load + 1) / total weight), the
	// bound of Mirrokni et al. with weights.
	var load, weight int64
	for _, e := range eps {
		if usable(e) {
			load += e.Outstanding()
			weight += int64(e.Weight)
		}
	}
	if weight == 0 {
		return nil
	}
	perWeight := b.factor * float64(load+1) / float64(weight)
	start, _ := slices.BinarySearchFunc(ring, r.Hash, func(p ringPoint, h uint64) int {
		switch {
		case p.hash < h:
			return -1
		case p.hash > h:
			return 1
		}
		return 0
	})
	for i := 0; i < len(ring); i++ {
		e := ring[(start+i)%len(ring)].ep
		if !usable(e) {
			continue
		}
		capacity := int64(math.Ceil(perWeight * float64(e.Weight)))
		if e.Outstanding()+1 <= capacity {
			return e
		}
	}
	// Unreachable while some endpoint is usable (the least loaded one is
	// always under capacity), but a concurrent Begin can race the scan.
	return b.fallback.Pick(now, r, usable)
}
