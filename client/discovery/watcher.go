package discovery

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Clock is the time source of a Watcher.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// WatcherOptions carries a Watcher's dependencies and tuning.
type WatcherOptions struct {
	// Clock defaults to the system clock.
	Clock Clock
	// Logger defaults to discarding.
	Logger *slog.Logger
	// RetryMin and RetryMax bound the wait after a failed resolution, which
	// doubles per consecutive failure with full jitter (defaults 1s, 30s).
	RetryMin, RetryMax time.Duration
	// OnUpdate is called from Run with every new instance set that differs
	// from the previous one. The slice must not be modified.
	OnUpdate func([]Instance)
}

// Status describes a Watcher's state.
type Status struct {
	// Instances is the size of the set in use.
	Instances int
	// LastSuccess is when a resolution last succeeded.
	LastSuccess time.Time
	// LastError is the error of the last resolution, nil when it succeeded.
	LastError error
	// ConsecutiveFailures counts failed resolutions since the last success.
	ConsecutiveFailures int
}

// Watcher keeps a service's instance set current by driving a Resolver. It
// keeps the last known good set when resolution fails or comes back empty.
// Its methods are safe for concurrent use; Run must be called once.
type Watcher struct {
	r    Resolver
	opts WatcherOptions

	ready     chan struct{}
	readyOnce sync.Once

	mu        sync.RWMutex
	instances []Instance
	status    Status
	// staleSince is the first failure after the last success; zero while
	// resolution works.
	staleSince time.Time
}

// NewWatcher returns a watcher for r. Nothing happens until Run.
func NewWatcher(r Resolver, opts WatcherOptions) *Watcher {
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(30*time.Second, opts.RetryMin)
	}
	return &Watcher{r: r, opts: opts, ready: make(chan struct{})}
}

// Run resolves until ctx is cancelled, then returns nil.
func (w *Watcher) Run(ctx context.Context) error {
	var prev Snapshot
	failures := 0
	for {
		snap, err := w.r.Resolve(ctx, prev)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil && len(snap.Instances) == 0 {
			err = ErrNoInstances
		}
		var wait time.Duration
		if err != nil {
			failures++
			wait = w.retryDelay(failures)
			w.fail(err, failures)
		} else {
			failures = 0
			prev = snap
			wait = snap.TTL
			w.succeed(snap.Instances)
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-w.opts.Clock.After(wait):
			}
		}
	}
}

func (w *Watcher) retryDelay(failures int) time.Duration {
	c := w.opts.RetryMin
	for i := 1; i < failures && c < w.opts.RetryMax; i++ {
		c *= 2
	}
	c = min(c, w.opts.RetryMax)
	// Full jitter, but never below half the ceiling: discovery retries are
	// few and need not hammer the source.
	return c/2 + time.Duration(rand.Int64N(int64(c/2)+1))
}

func (w *Watcher) succeed(in []Instance) {
	now := w.opts.Clock.Now()
	w.mu.Lock()
	changed := !slices.EqualFunc(w.instances, in, func(a, b Instance) bool { return a.Addr == b.Addr && a.Weight == b.Weight })
	if changed {
		w.instances = in
	}
	w.status = Status{Instances: len(w.instances), LastSuccess: now}
	w.staleSince = time.Time{}
	w.mu.Unlock()
	if changed && w.opts.OnUpdate != nil {
		w.opts.OnUpdate(in)
	}
	w.readyOnce.Do(func() { close(w.ready) })
}

func (w *Watcher) fail(err error, failures int) {
	now := w.opts.Clock.Now()
	w.mu.Lock()
	w.status.LastError = err
	w.status.ConsecutiveFailures = failures
	if w.staleSince.IsZero() {
		w.staleSince = now
	}
	kept := len(w.instances)
	w.mu.Unlock()
	level := slog.LevelWarn
	if errors.Is(err, ErrNoInstances) {
		level = slog.LevelInfo
	}
	w.opts.Logger.Log(context.Background(), level, "discovery failed, keeping last known instances",
		"err", err, "kept_instances", kept, "consecutive_failures", failures)
}

// Instances returns the set in use (the last known good one), sorted by
// address; nil before the first success. The slice must not be modified.
func (w *Watcher) Instances() []Instance {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.instances
}

// Ready is closed once the first resolution has succeeded.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Status reports the last resolution's outcome.
func (w *Watcher) Status() Status {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.status
}

// Staleness is how long the set in use has been served without a successful
// refresh: zero while resolution works (including while a blocking resolver
// waits for a change), the time since the first failure otherwise.
func (w *Watcher) Staleness() time.Duration {
	w.mu.RLock()
	since := w.staleSince
	w.mu.RUnlock()
	if since.IsZero() {
		return 0
	}
	return w.opts.Clock.Now().Sub(since)
}
