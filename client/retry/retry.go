package retry

import (
	"fmt"
	"sync"
	"time"

	"github.com/vigil-obs/vigil/client/internal/window"
)

// Backoff computes the wait before a retry: a uniformly random duration in
// [0, min(Max, Base × 2^(retry-1))) — "full jitter", which spreads the retries
// of many clients instead of synchronising them.
type Backoff struct {
	// Base is the ceiling of the first retry's wait (default 25ms).
	Base time.Duration `yaml:"base"`
	// Max caps the ceiling (default 1s).
	Max time.Duration `yaml:"max"`
}

// WithDefaults returns b with zero fields set to their defaults.
func (b Backoff) WithDefaults() Backoff {
	if b.Base == 0 {
		b.Base = 25 * time.Millisecond
	}
	if b.Max == 0 {
		b.Max = time.Second
	}
	return b
}

// Validate reports an invalid field after defaults are applied.
func (b Backoff) Validate() error {
	b = b.WithDefaults()
	if b.Base < 0 {
		return fmt.Errorf("base: must be positive, got %v", b.Base)
	}
	if b.Max < b.Base {
		return fmt.Errorf("max: must be at least base (%v), got %v", b.Base, b.Max)
	}
	return nil
}

// Ceiling is the upper bound of the wait before retry number retry (1 for the
// first retry).
func (b Backoff) Ceiling(retry int) time.Duration {
	b = b.WithDefaults()
	if retry < 1 {
		retry = 1
	}
	c := b.Base
	for i := 1; i < retry && c < b.Max; i++ {
		c *= 2
	}
	return min(c, b.Max)
}

// Delay returns the wait before retry number retry. rnd must return a
// uniformly distributed value in [0, n) for n > 0 (math/rand/v2's Int64N).
func (b Backoff) Delay(retry int, rnd func(n int64) int64) time.Duration {
	c := b.Ceiling(retry)
	if c <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(c)))
}

// BudgetConfig sets a retry budget. Zero fields take the defaults listed on
// each field.
type BudgetConfig struct {
	// Disabled removes the budget: every retry the policy allows is made.
	Disabled bool `yaml:"disabled"`
	// Ratio is the fraction of requests in the window that may be retried
	// (default 0.2, range (0, 1]).
	Ratio float64 `yaml:"ratio"`
	// MinPerSecond is the floor: this many retries per second of Window are
	// always allowed, so low-traffic services can still retry (default 3).
	MinPerSecond float64 `yaml:"min_per_second"`
	// Window is how far back requests and retries are counted (default 10s,
	// at least 1s; counted in one-second buckets).
	Window time.Duration `yaml:"window"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c BudgetConfig) WithDefaults() BudgetConfig {
	if c.Ratio == 0 {
		c.Ratio = 0.2
	}
	if c.MinPerSecond == 0 {
		c.MinPerSecond = 3
	}
	if c.Window == 0 {
		c.Window = 10 * time.Second
	}
	return c
}

// Validate reports an invalid field after defaults are applied.
func (c BudgetConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Ratio < 0 || c.Ratio > 1:
		return fmt.Errorf("ratio: must be in (0, 1], got %v", c.Ratio)
	case c.MinPerSecond < 0:
		return fmt.Errorf("min_per_second: must not be negative, got %v", c.MinPerSecond)
	case c.Window < time.Second:
		return fmt.Errorf("window: must be at least 1s, got %v", c.Window)
	case c.Window > time.Hour:
		return fmt.Errorf("window: must be at most 1h, got %v", c.Window)
	}
	return nil
}

// Clock tells the budget the time.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

const (
	cRequests = iota
	cRetries
)

// Budget allows a retry while retries in the window stay within
// Ratio × requests + MinPerSecond × Window. Create it with NewBudget.
type Budget struct {
	cfg   BudgetConfig
	clock Clock
	floor int64

	mu sync.Mutex
	w  *window.Sliding
}

// NewBudget returns an empty budget for cfg. A nil clock means the system
// clock.
func NewBudget(cfg BudgetConfig, clock Clock) (*Budget, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("retry budget config: %w", err)
	}
	cfg = cfg.WithDefaults()
	if clock == nil {
		clock = systemClock{}
	}
	secs := int(cfg.Window / time.Second)
	return &Budget{
		cfg:   cfg,
		clock: clock,
		floor: int64(cfg.MinPerSecond * float64(secs)),
		w:     window.New(secs, time.Second, 2),
	}, nil
}

// Deposit counts one original request (not a retry).
func (b *Budget) Deposit() {
	if b.cfg.Disabled {
		return
	}
	now := b.clock.Now()
	b.mu.Lock()
	b.w.Add(now, cRequests, 1)
	b.mu.Unlock()
}

// TryWithdraw asks for one retry (or hedge). It returns false, and counts
// nothing, when the budget is exhausted.
func (b *Budget) TryWithdraw() bool {
	if b.cfg.Disabled {
		return true
	}
	now := b.clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	reqs := b.w.Sum(now, cRequests)
	retries := b.w.Sum(now, cRetries)
	// Integer arithmetic in thousandths keeps the bound exact at the edge.
	allowed := int64(b.cfg.Ratio*1000)*reqs/1000 + b.floor
	if retries+1 > allowed {
		return false
	}
	b.w.Add(now, cRetries, 1)
	return true
}

// Balance reports requests and retries counted in the current window.
func (b *Budget) Balance() (requests, retries int64) {
	now := b.clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Sum(now, cRequests), b.w.Sum(now, cRetries)
}
