package tail

import (
	"errors"
	"sync"
)

// Defaults of Config.
const (
	DefaultBuffer         = 1024
	DefaultMaxSubscribers = 256
)

// ErrTooManySubscribers is returned by Subscribe when the hub already has
// Config.MaxSubscribers subscribers.
var ErrTooManySubscribers = errors.New("too many live-tail subscribers")

// ErrClosed is returned by Subscribe after Close.
var ErrClosed = errors.New("live tail closed")

// Config sizes a Hub.
type Config struct {
	// Buffer is how many matching items wait for one subscriber before
	// further ones are dropped. Default 1024.
	Buffer int
	// MaxSubscribers bounds concurrent subscribers. Default 256.
	MaxSubscribers int
}

// Event is what a subscriber receives: an item, and how many matching
// items were dropped just before it because the subscriber was behind.
type Event[T any] struct {
	Item    T
	Dropped int64
}

// Hub broadcasts published items to subscribers. Safe for concurrent use.
type Hub[T any] struct {
	cfg Config

	mu     sync.Mutex
	subs   map[*Subscription[T]]struct{}
	closed bool
}

// New returns a hub; a zero Config takes the defaults.
func New[T any](cfg Config) *Hub[T] {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.MaxSubscribers <= 0 {
		cfg.MaxSubscribers = DefaultMaxSubscribers
	}
	return &Hub[T]{cfg: cfg, subs: map[*Subscription[T]]struct{}{}}
}

// Subscription receives the items matching its filter. Its channel is
// closed when the subscription or the hub is closed.
type Subscription[T any] struct {
	hub     *Hub[T]
	match   func(T) bool
	ch      chan Event[T]
	dropped int64 // guarded by hub.mu
	once    sync.Once
}

// Subscribe registers a subscriber receiving the published items for
// which match returns true (nil matches everything). match runs on the
// publisher's goroutine: it must be fast and must not block. It returns
// ErrTooManySubscribers or ErrClosed.
func (h *Hub[T]) Subscribe(match func(T) bool) (*Subscription[T], error) {
	if match == nil {
		match = func(T) bool { return true }
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if len(h.subs) >= h.cfg.MaxSubscribers {
		return nil, ErrTooManySubscribers
	}
	s := &Subscription[T]{hub: h, match: match, ch: make(chan Event[T], h.cfg.Buffer)}
	h.subs[s] = struct{}{}
	return s, nil
}

// Subscribers returns the number of subscribers; publishers use it to
// skip preparing items nobody waits for.
func (h *Hub[T]) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Publish offers items, in order, to every subscriber. It never blocks:
// an item a subscriber has no room for is dropped for it and counted in
// the Dropped of the next item it receives. Items must not be modified
// afterwards; subscribers only read them.
func (h *Hub[T]) Publish(items []T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		for _, it := range items {
			if !s.match(it) {
				continue
			}
			select {
			case s.ch <- Event[T]{Item: it, Dropped: s.dropped}:
				s.dropped = 0
			default:
				s.dropped++
			}
		}
	}
}

// Close closes every subscription; later Subscribe calls fail and Publish
// does nothing.
func (h *Hub[T]) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		s.once.Do(func() { close(s.ch) })
	}
}

// C returns the channel of events, closed when the subscription ends.
func (s *Subscription[T]) C() <-chan Event[T] { return s.ch }

// Close unsubscribes. It is idempotent.
func (s *Subscription[T]) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	delete(s.hub.subs, s)
	s.once.Do(func() { close(s.ch) })
}
