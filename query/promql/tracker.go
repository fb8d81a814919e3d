package promql

import (
	"context"
	"fmt"
)

// slots is a promql.QueryTracker that only bounds concurrency: at most
// cap(sem) queries are evaluated at once and the others wait for a slot
// until their context ends. Prometheus's own tracker also records active
// queries in a memory-mapped file, which needs a data directory Vigil
// does not always have.
type slots struct{ sem chan struct{} }

func newSlots(n int) *slots { return &slots{sem: make(chan struct{}, n)} }

// GetMaxConcurrent returns the number of slots.
func (s *slots) GetMaxConcurrent() int { return cap(s.sem) }

// Insert blocks until a slot is free or ctx ends.
func (s *slots) Insert(ctx context.Context, _ string) (int, error) {
	select {
	case s.sem <- struct{}{}:
		return 0, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("wait for a query slot: %w", ctx.Err())
	}
}

// Delete frees the slot taken by Insert.
func (s *slots) Delete(int) { <-s.sem }

// Close releases nothing.
func (s *slots) Close() error { return nil }
