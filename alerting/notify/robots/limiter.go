package robots

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// rate is one token bucket's shape: burst tokens, one more every every.
// Robots publish "N per window" limits; a bucket holding b tokens that
// refills at r lets through at most b + r·window in any window, so the
// shapes below keep b + r·window at or under the published N rather than
// spending N at once and being throttled (DingTalk then blocks a robot for
// ten minutes).
type rate struct {
	burst int
	every time.Duration
}

var (
	// Feishu: 5 per second and 100 per minute per bot.
	feishuRates = []rate{
		{burst: 2, every: time.Second / 3},        // 2 + 3 = 5 per second
		{burst: 10, every: 60 * time.Second / 90}, // 10 + 90 = 100 per minute
	}
	// DingTalk and WeCom: 20 per minute per robot.
	perMinute20 = []rate{{burst: 5, every: 4 * time.Second}} // 5 + 15 = 20 per minute
)

// errRateLimited is returned when the token would come too late.
var errRateLimited = errors.New("rate limited")

// Limiters holds one set of token buckets per robot URL, shared by every
// notifier posting to that URL, so that receivers and routes naming the
// same robot stay within its limit together. It is safe for concurrent use.
// Buckets are kept for every URL ever asked for (a handful per
// configuration), so one Limiters can serve across reloads.
type Limiters struct {
	now func() time.Time

	mu    sync.Mutex
	byKey map[string]*limiter
}

// NewLimiters returns empty Limiters on the clock now (nil means
// time.Now).
func NewLimiters(now func() time.Time) *Limiters {
	if now == nil {
		now = time.Now
	}
	return &Limiters{now: now, byKey: map[string]*limiter{}}
}

func (l *Limiters) get(key string, rates []rate) *limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim, ok := l.byKey[key]; ok {
		return lim
	}
	lim := &limiter{now: l.now, buckets: make([]bucket, len(rates))}
	for i, r := range rates {
		lim.buckets[i] = bucket{rate: r, tokens: float64(r.burst), last: l.now()}
	}
	l.byKey[key] = lim
	return lim
}

// limiter is the buckets of one URL; a request needs a token from each.
type limiter struct {
	now func() time.Time

	mu      sync.Mutex
	buckets []bucket
	held    time.Time // no token is due before this: the robot throttled
}

type bucket struct {
	rate   rate
	tokens float64 // may go negative: tokens promised to waiting requests
	last   time.Time
}

func (b *bucket) advance(now time.Time) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(float64(b.rate.burst), b.tokens+float64(elapsed)/float64(b.rate.every))
		b.last = now
	}
}

// reserve takes a token from every bucket and returns how long to wait
// before it is due.
func (l *limiter) reserve() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for i := range l.buckets {
		b := &l.buckets[i]
		b.advance(now)
		b.tokens--
		if b.tokens < 0 {
			wait = max(wait, time.Duration(-b.tokens*float64(b.rate.every)))
		}
	}
	if h := l.held.Sub(now); h > wait {
		wait = h
	}
	return wait
}

// holdFor makes no token due before d from now (a robot's own throttle).
func (l *limiter) holdFor(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until := l.now().Add(d); until.After(l.held) {
		l.held = until
	}
}

// cancel gives back a reserved token that was not used.
func (l *limiter) cancel() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.buckets {
		b := &l.buckets[i]
		b.tokens = min(float64(b.rate.burst), b.tokens+1)
	}
}

// wait takes a token, waiting for it within ctx. If the token is due only
// after ctx's deadline, or ctx ends first, it gives the token back and
// returns an error wrapping errRateLimited (or ctx's error) with the delay
// after which a token is due.
func (l *limiter) wait(ctx context.Context) (time.Duration, error) {
	d := l.reserve()
	if d <= 0 {
		return 0, nil
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		l.cancel()
		return d, fmt.Errorf("%w: next message allowed in %s, after the notification deadline", errRateLimited, d.Round(time.Millisecond))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return 0, nil
	case <-ctx.Done():
		l.cancel()
		return d, fmt.Errorf("%w: waiting %s for the next message: %w", errRateLimited, d.Round(time.Millisecond), context.Cause(ctx))
	}
}
