package breaker

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vigil-obs/vigil/client/internal/window"
)

// State is a circuit's state.
type State int32

// The three states of a circuit.
const (
	// Closed lets every call through and records its outcome.
	Closed State = iota
	// Open rejects every call until the open duration has passed.
	Open
	// HalfOpen lets a limited number of probe calls through; their outcomes
	// decide between Closed and Open.
	HalfOpen
)

// String returns "closed", "open" or "half_open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	}
	return fmt.Sprintf("state(%d)", int32(s))
}

// WindowType selects how the closed-state window counts calls.
type WindowType string

const (
	// CountWindow keeps the outcomes of the last WindowSize calls.
	CountWindow WindowType = "count"
	// TimeWindow keeps the outcomes of the calls that ended in the last
	// WindowSize seconds, in one-second buckets.
	TimeWindow WindowType = "time"
)

// ErrOpen is returned by Allow while the circuit is open, or half-open with
// every probe slot taken.
var ErrOpen = errors.New("circuit open")

// Config sets a breaker's thresholds. Zero fields take the defaults listed on
// each field; Validate rejects out-of-range values.
type Config struct {
	// Disabled turns the breaker off: Allow always succeeds.
	Disabled bool `yaml:"disabled"`
	// Window is CountWindow (default) or TimeWindow.
	Window WindowType `yaml:"window"`
	// WindowSize is the number of calls (count window, default 50) or of
	// seconds (time window, default 60) the failure rates are computed over.
	WindowSize int `yaml:"window_size"`
	// MinimumCalls is how many calls the window must hold before the rates
	// are evaluated (default 20). For a count window it is capped at
	// WindowSize.
	MinimumCalls int `yaml:"minimum_calls"`
	// FailureRateThreshold opens the circuit when the percentage of failed
	// calls reaches it (default 50, range (0, 100]).
	FailureRateThreshold float64 `yaml:"failure_rate_threshold"`
	// SlowCallRateThreshold opens the circuit when the percentage of calls
	// slower than SlowCallDuration reaches it (default 100, range (0, 100]).
	SlowCallRateThreshold float64 `yaml:"slow_call_rate_threshold"`
	// SlowCallDuration is the duration above which a call counts as slow
	// (default 5s).
	SlowCallDuration time.Duration `yaml:"slow_call_duration"`
	// OpenDuration is how long the circuit stays open before it lets probes
	// through (default 30s).
	OpenDuration time.Duration `yaml:"open_duration"`
	// HalfOpenCalls is the number of probe calls permitted in the half-open
	// state; the circuit decides once all of them have completed (default 5).
	HalfOpenCalls int `yaml:"half_open_calls"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Window == "" {
		c.Window = CountWindow
	}
	if c.WindowSize == 0 {
		if c.Window == TimeWindow {
			c.WindowSize = 60
		} else {
			c.WindowSize = 50
		}
	}
	if c.MinimumCalls == 0 {
		c.MinimumCalls = 20
	}
	if c.FailureRateThreshold == 0 {
		c.FailureRateThreshold = 50
	}
	if c.SlowCallRateThreshold == 0 {
		c.SlowCallRateThreshold = 100
	}
	if c.SlowCallDuration == 0 {
		c.SlowCallDuration = 5 * time.Second
	}
	if c.OpenDuration == 0 {
		c.OpenDuration = 30 * time.Second
	}
	if c.HalfOpenCalls == 0 {
		c.HalfOpenCalls = 5
	}
	return c
}

// Validate reports the first invalid field of c after defaults are applied.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Window != CountWindow && c.Window != TimeWindow:
		return fmt.Errorf("window: must be %q or %q, got %q", CountWindow, TimeWindow, c.Window)
	case c.WindowSize < 1:
		return fmt.Errorf("window_size: must be positive, got %d", c.WindowSize)
	case c.Window == TimeWindow && c.WindowSize > 3600:
		return fmt.Errorf("window_size: a time window is at most 3600 seconds, got %d", c.WindowSize)
	case c.MinimumCalls < 1:
		return fmt.Errorf("minimum_calls: must be positive, got %d", c.MinimumCalls)
	case c.FailureRateThreshold <= 0 || c.FailureRateThreshold > 100:
		return fmt.Errorf("failure_rate_threshold: must be in (0, 100], got %v", c.FailureRateThreshold)
	case c.SlowCallRateThreshold <= 0 || c.SlowCallRateThreshold > 100:
		return fmt.Errorf("slow_call_rate_threshold: must be in (0, 100], got %v", c.SlowCallRateThreshold)
	case c.SlowCallDuration < 0:
		return fmt.Errorf("slow_call_duration: must not be negative, got %v", c.SlowCallDuration)
	case c.OpenDuration < 0:
		return fmt.Errorf("open_duration: must not be negative, got %v", c.OpenDuration)
	case c.HalfOpenCalls < 1:
		return fmt.Errorf("half_open_calls: must be positive, got %d", c.HalfOpenCalls)
	}
	return nil
}

// Clock tells the breaker the time.
type Clock interface {
	Now() time.Time
}

// Options carries a breaker's dependencies.
type Options struct {
	// Clock defaults to the system clock.
	Clock Clock
	// OnStateChange, if set, is called after every transition, outside the
	// breaker's lock, in the order transitions happen for one breaker.
	OnStateChange func(from, to State)
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// outcome counters kept in the windows.
const (
	cCalls = iota
	cFailures
	cSlow
	nCounters
)

// Breaker is a circuit breaker. Create it with New.
type Breaker struct {
	cfg      Config
	clock    Clock
	onChange func(from, to State)

	mu       sync.Mutex
	state    State
	gen      uint64 // incremented on every transition; stale permits are ignored
	openedAt time.Time

	// closed-state window: exactly one of ring and timed is used.
	ring    []uint8 // outcome bits per call: 1 failed, 2 slow
	ringPos int
	ringLen int
	ringSum [nCounters]int64
	timed   *window.Sliding

	// half-open probes
	probesIssued int
	probes       [nCounters]int64

	// transitions queued for OnStateChange, delivered outside mu
	pending []transition
	notify  sync.Mutex
}

type transition struct{ from, to State }

// New returns a closed breaker for cfg, or an error naming the first invalid
// field.
func New(cfg Config, opts Options) (*Breaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("breaker config: %w", err)
	}
	cfg = cfg.WithDefaults()
	if cfg.Window == CountWindow && cfg.MinimumCalls > cfg.WindowSize {
		cfg.MinimumCalls = cfg.WindowSize
	}
	b := &Breaker{cfg: cfg, clock: opts.Clock, onChange: opts.OnStateChange}
	if b.clock == nil {
		b.clock = systemClock{}
	}
	if cfg.Window == TimeWindow {
		b.timed = window.New(cfg.WindowSize, time.Second, nCounters)
	} else {
		b.ring = make([]uint8, cfg.WindowSize)
	}
	return b, nil
}

// Permit is the right to make one call. Report its outcome with Done. The
// zero Permit, returned with an error, does nothing.
type Permit struct {
	b     *Breaker
	gen   uint64
	start time.Time
	probe bool
}

// Allow asks to make a call. It returns a Permit, or ErrOpen (wrapped in an
// *OpenError) when the circuit is open or no half-open probe slot is free.
func (b *Breaker) Allow() (Permit, error) {
	if b.cfg.Disabled {
		return Permit{}, nil
	}
	now := b.clock.Now()
	b.mu.Lock()
	b.refresh(now)
	var p Permit
	var err error
	switch b.state {
	case Closed:
		p = Permit{b: b, gen: b.gen, start: now}
	case HalfOpen:
		if b.probesIssued < b.cfg.HalfOpenCalls {
			b.probesIssued++
			p = Permit{b: b, gen: b.gen, start: now, probe: true}
		} else {
			err = &OpenError{State: HalfOpen}
		}
	case Open:
		err = &OpenError{State: Open, Until: b.openedAt.Add(b.cfg.OpenDuration)}
	}
	b.mu.Unlock()
	b.deliver()
	return p, err
}

// Done records the outcome of the call p permitted: failed says whether it
// counts as a failure; its duration, from Allow to Done on the breaker's
// clock, decides whether it was slow. Outcomes of calls permitted before the
// last transition are ignored. Calling Done twice records two outcomes.
func (p Permit) Done(failed bool) {
	b := p.b
	if b == nil {
		return
	}
	now := b.clock.Now()
	slow := now.Sub(p.start) > b.cfg.SlowCallDuration
	b.mu.Lock()
	if p.gen == b.gen {
		switch b.state {
		case Closed:
			b.recordClosed(now, failed, slow)
		case HalfOpen:
			if p.probe {
				b.recordProbe(now, failed, slow)
			}
		}
	}
	b.mu.Unlock()
	b.deliver()
}

// Release gives back a permit whose call never happened (for example, the
// balancer chose another instance). It frees a half-open probe slot.
func (p Permit) Release() {
	b := p.b
	if b == nil || !p.probe {
		return
	}
	b.mu.Lock()
	if p.gen == b.gen && b.state == HalfOpen && b.probesIssued > 0 {
		b.probesIssued--
	}
	b.mu.Unlock()
}

// State returns the current state, moving an open circuit whose open duration
// has passed to half-open first.
func (b *Breaker) State() State {
	if b.cfg.Disabled {
		return Closed
	}
	b.mu.Lock()
	b.refresh(b.clock.Now())
	s := b.state
	b.mu.Unlock()
	b.deliver()
	return s
}

// Counts reports the closed-state window: calls, failed calls and slow calls.
func (b *Breaker) Counts() (calls, failures, slow int64) {
	now := b.clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sums(now)
	return s[cCalls], s[cFailures], s[cSlow]
}

func (b *Breaker) sums(now time.Time) [nCounters]int64 {
	if b.timed != nil {
		return [nCounters]int64{b.timed.Sum(now, cCalls), b.timed.Sum(now, cFailures), b.timed.Sum(now, cSlow)}
	}
	return b.ringSum
}

// refresh performs the time-driven transition open → half-open. mu held.
func (b *Breaker) refresh(now time.Time) {
	if b.state == Open && !now.Before(b.openedAt.Add(b.cfg.OpenDuration)) {
		b.transition(now, HalfOpen)
	}
}

func (b *Breaker) recordClosed(now time.Time, failed, slow bool) {
	var bits uint8
	if failed {
		bits |= 1
	}
	if slow {
		bits |= 2
	}
	if b.timed != nil {
		b.timed.Add(now, cCalls, 1)
		if failed {
			b.timed.Add(now, cFailures, 1)
		}
		if slow {
			b.timed.Add(now, cSlow, 1)
		}
	} else {
		if b.ringLen == len(b.ring) {
			old := b.ring[b.ringPos]
			b.ringSum[cCalls]--
			b.ringSum[cFailures] -= int64(old & 1)
			b.ringSum[cSlow] -= int64(old >> 1 & 1)
		} else {
			b.ringLen++
		}
		b.ring[b.ringPos] = bits
		b.ringPos = (b.ringPos + 1) % len(b.ring)
		b.ringSum[cCalls]++
		b.ringSum[cFailures] += int64(bits & 1)
		b.ringSum[cSlow] += int64(bits >> 1 & 1)
	}
	s := b.sums(now)
	if s[cCalls] >= int64(b.cfg.MinimumCalls) && b.exceeded(s) {
		b.transition(now, Open)
	}
}

func (b *Breaker) recordProbe(now time.Time, failed, slow bool) {
	b.probes[cCalls]++
	if failed {
		b.probes[cFailures]++
	}
	if slow {
		b.probes[cSlow]++
	}
	if b.probes[cCalls] < int64(b.cfg.HalfOpenCalls) {
		return
	}
	if b.exceeded(b.probes) {
		b.transition(now, Open)
	} else {
		b.transition(now, Closed)
	}
}

func (b *Breaker) exceeded(s [nCounters]int64) bool {
	if s[cCalls] == 0 {
		return false
	}
	failRate := 100 * float64(s[cFailures]) / float64(s[cCalls])
	slowRate := 100 * float64(s[cSlow]) / float64(s[cCalls])
	return failRate >= b.cfg.FailureRateThreshold || slowRate >= b.cfg.SlowCallRateThreshold
}

// transition moves to state to and resets what the new state counts. mu held.
func (b *Breaker) transition(now time.Time, to State) {
	from := b.state
	b.state = to
	b.gen++
	switch to {
	case Open:
		b.openedAt = now
	case HalfOpen:
		b.probesIssued = 0
		b.probes = [nCounters]int64{}
	case Closed:
		b.ringPos, b.ringLen = 0, 0
		b.ringSum = [nCounters]int64{}
		if b.timed != nil {
			b.timed.Reset()
		}
	}
	if b.onChange != nil {
		b.pending = append(b.pending, transition{from, to})
	}
}

// deliver calls OnStateChange for queued transitions, outside mu, keeping
// their order.
func (b *Breaker) deliver() {
	if b.onChange == nil {
		return
	}
	b.notify.Lock()
	defer b.notify.Unlock()
	b.mu.Lock()
	pending := b.pending
	b.pending = nil
	b.mu.Unlock()
	for _, t := range pending {
		b.onChange(t.from, t.to)
	}
}

// OpenError is the error Allow returns when it rejects a call. It matches
// ErrOpen with errors.Is.
type OpenError struct {
	// State is Open, or HalfOpen when every probe slot is taken.
	State State
	// Until is when an open circuit will let probes through; zero for
	// half-open.
	Until time.Time
}

// Error describes the rejection.
func (e *OpenError) Error() string {
	if e.State == HalfOpen {
		return "circuit half-open: probe limit reached"
	}
	return "circuit open until " + e.Until.Format(time.RFC3339Nano)
}

// Is reports whether target is ErrOpen.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }
