package tail

import (
	"errors"
	"fmt"
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

// ErrQuotaExceeded is matched (errors.Is) by the *QuotaError Subscribe
// returns when one of the subscriber's quotas is full.
var ErrQuotaExceeded = errors.New("live-tail quota exceeded")

// Config sizes a Hub. Zero fields take the defaults.
type Config struct {
	// Buffer is how many matching items wait for one subscriber before
	// further ones are dropped. Default 1024.
	Buffer int `yaml:"buffer"`
	// MaxSubscribers bounds concurrent subscribers, all clients
	// together. Default 256.
	MaxSubscribers int `yaml:"max_subscribers"`
}

// Validate reports a setting that cannot work, naming its key.
func (c Config) Validate() error {
	if c.Buffer < 0 {
		return fmt.Errorf("buffer: %d is negative", c.Buffer)
	}
	if c.MaxSubscribers < 0 {
		return fmt.Errorf("max_subscribers: %d is negative", c.MaxSubscribers)
	}
	return nil
}

// Quota bounds the subscriptions that share a key, such as the network
// address or the token of the client that holds them, so that one client
// cannot take every one of the hub's MaxSubscribers. Keys of different
// kinds must not collide: prefix them with their kind ("addr:", "token:").
type Quota struct {
	Key string
	// Limit is the most subscriptions holding Key at once; zero or
	// negative means no limit (the subscription is still counted).
	Limit int
}

// QuotaError reports the quota that refused a subscription.
type QuotaError struct {
	Quota Quota
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("%v: %d subscriptions already hold %q", ErrQuotaExceeded, e.Quota.Limit, e.Quota.Key)
}

// Is makes errors.Is(err, ErrQuotaExceeded) true.
func (e *QuotaError) Is(target error) bool { return target == ErrQuotaExceeded }

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
	held   map[string]int // subscriptions per quota key
	closed bool
}

// New returns a hub; zero fields of cfg take the defaults (negative ones
// too: Config.Validate reports them).
func New[T any](cfg Config) *Hub[T] {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.MaxSubscribers <= 0 {
		cfg.MaxSubscribers = DefaultMaxSubscribers
	}
	return &Hub[T]{cfg: cfg, subs: map[*Subscription[T]]struct{}{}, held: map[string]int{}}
}

// Subscription receives the items matching its filter. Its channel is
// closed when the subscription or the hub is closed.
type Subscription[T any] struct {
	hub     *Hub[T]
	match   func(T) bool
	ch      chan Event[T]
	keys    []string // quota keys held, released once on close
	dropped int64    // guarded by hub.mu
	once    sync.Once
}

// Subscribe registers a subscriber receiving the published items for
// which match returns true (nil matches everything). match runs on the
// publisher's goroutine: it must be fast and must not block.
//
// The subscription counts against the hub's MaxSubscribers and against
// each of quotas until it is closed; the checks and the counting are one
// atomic step, so concurrent calls cannot overshoot a limit. It returns
// ErrClosed, ErrTooManySubscribers, or a *QuotaError naming the first
// full quota (errors.Is(err, ErrQuotaExceeded)).
func (h *Hub[T]) Subscribe(match func(T) bool, quotas ...Quota) (*Subscription[T], error) {
	if match == nil {
		match = func(T) bool { return true }
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	for _, q := range quotas {
		if q.Limit > 0 && h.held[q.Key] >= q.Limit {
			return nil, &QuotaError{Quota: q}
		}
	}
	if len(h.subs) >= h.cfg.MaxSubscribers {
		return nil, ErrTooManySubscribers
	}
	s := &Subscription[T]{hub: h, match: match, ch: make(chan Event[T], h.cfg.Buffer)}
	for _, q := range quotas {
		h.held[q.Key]++
		s.keys = append(s.keys, q.Key)
	}
	h.subs[s] = struct{}{}
	return s, nil
}

// Held returns how many open subscriptions hold the quota key.
func (h *Hub[T]) Held(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held[key]
}

// removeLocked unsubscribes s and releases its quota keys, once. h.mu
// must be held.
func (h *Hub[T]) removeLocked(s *Subscription[T]) {
	s.once.Do(func() {
		delete(h.subs, s)
		for _, k := range s.keys {
			if h.held[k]--; h.held[k] <= 0 {
				delete(h.held, k)
			}
		}
		close(s.ch)
	})
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
		h.removeLocked(s)
	}
}

// C returns the channel of events, closed when the subscription ends.
func (s *Subscription[T]) C() <-chan Event[T] { return s.ch }

// Close unsubscribes and releases the subscription's quotas. It is
// idempotent, and safe after the hub's Close.
func (s *Subscription[T]) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.hub.removeLocked(s)
}
