package window

import "time"

// Sliding sums k counters over the last n buckets of the given width. It is
// not safe for concurrent use: callers hold their own lock.
type Sliding struct {
	width   int64 // bucket width in nanoseconds
	k       int
	epochs  []int64 // bucket index (time/width) each slot currently holds
	vals    []int64 // len(epochs)*k
	sums    []int64 // running totals over live slots
	lastIdx int64
}

// New returns a window of n buckets of the given width, each holding k
// counters. Values below 1 (1ns for width) are raised to it.
func New(n int, width time.Duration, k int) *Sliding {
	n, k, width = max(n, 1), max(k, 1), max(width, 1)
	s := &Sliding{
		width:  int64(width),
		k:      k,
		epochs: make([]int64, n),
		vals:   make([]int64, n*k),
		sums:   make([]int64, k),
	}
	for i := range s.epochs {
		s.epochs[i] = -1
	}
	return s
}

// advance expires every bucket older than the window ending at now.
func (s *Sliding) advance(now time.Time) int {
	idx := now.UnixNano() / s.width
	n := int64(len(s.epochs))
	if idx < s.lastIdx {
		// The clock went backwards: count into the newest bucket rather than
		// corrupting the ring.
		idx = s.lastIdx
	}
	s.lastIdx = idx
	slot := int(((idx % n) + n) % n)
	if s.epochs[slot] != idx {
		// Expire every slot whose epoch fell out of the window.
		for i := range s.epochs {
			if s.epochs[i] >= 0 && s.epochs[i] <= idx-n {
				s.clear(i)
			}
		}
		if s.epochs[slot] != -1 {
			s.clear(slot)
		}
		s.epochs[slot] = idx
	}
	return slot
}

func (s *Sliding) clear(slot int) {
	base := slot * s.k
	for j := 0; j < s.k; j++ {
		s.sums[j] -= s.vals[base+j]
		s.vals[base+j] = 0
	}
	s.epochs[slot] = -1
}

// Add adds delta to counter i of the bucket covering now.
func (s *Sliding) Add(now time.Time, i int, delta int64) {
	slot := s.advance(now)
	s.vals[slot*s.k+i] += delta
	s.sums[i] += delta
}

// Sum returns counter i summed over the window ending at now.
func (s *Sliding) Sum(now time.Time, i int) int64 {
	s.advance(now)
	return s.sums[i]
}

// Reset clears every bucket.
func (s *Sliding) Reset() {
	for i := range s.epochs {
		s.epochs[i] = -1
	}
	clear(s.vals)
	clear(s.sums)
}
