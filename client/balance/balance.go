package balance

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Policy names a balancing algorithm.
type Policy string

// The balancing policies.
const (
	RoundRobin         Policy = "round_robin"
	WeightedRoundRobin Policy = "weighted_round_robin"
	LeastRequest       Policy = "least_request"
	P2CEWMA            Policy = "p2c_ewma"
	RingHash           Policy = "ring_hash"
)

// Request is what a balancer may know about the call being placed.
type Request struct {
	// Hash is the affinity key's hash (see HashKey), used by RingHash.
	Hash uint64
	// HasHash says whether Hash is set. Without it RingHash falls back to
	// P2CEWMA.
	HasHash bool
}

// Balancer picks an endpoint for each call.
type Balancer interface {
	// Update replaces the endpoint set. Endpoints that stay should be the
	// same pointers, so that their load state survives.
	Update(eps []*Endpoint)
	// Pick returns one endpoint for which usable returns true, or nil when
	// there is none. now is the caller's clock reading.
	Pick(now time.Time, r Request, usable func(*Endpoint) bool) *Endpoint
}

// Config selects and tunes a balancer. Zero fields take the defaults listed
// on each field.
type Config struct {
	// Policy is the algorithm (default P2CEWMA).
	Policy Policy `yaml:"policy"`
	// EWMA tunes the latency estimate used by P2CEWMA and by RingHash's
	// fallback.
	EWMA EWMAConfig `yaml:"ewma"`
	// RingPoints is the number of points each unit of weight puts on the
	// hash ring (default 128). It is fixed per endpoint, not per ring, so
	// that adding an endpoint moves only the keys that land on its points.
	RingPoints int `yaml:"ring_points"`
	// LoadFactor bounds RingHash's load: no endpoint takes a call while its
	// outstanding calls reach LoadFactor × the average (default 1.25, at
	// least 1).
	LoadFactor float64 `yaml:"load_factor"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Policy == "" {
		c.Policy = P2CEWMA
	}
	c.EWMA = c.EWMA.WithDefaults()
	if c.RingPoints == 0 {
		c.RingPoints = 128
	}
	if c.LoadFactor == 0 {
		c.LoadFactor = 1.25
	}
	return c
}

// Validate reports an invalid field after defaults are applied.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch c.Policy {
	case RoundRobin, WeightedRoundRobin, LeastRequest, P2CEWMA, RingHash:
	default:
		return fmt.Errorf("policy: unknown %q (want %s, %s, %s, %s or %s)", c.Policy,
			RoundRobin, WeightedRoundRobin, LeastRequest, P2CEWMA, RingHash)
	}
	switch {
	case c.EWMA.DecayTime < 0:
		return fmt.Errorf("ewma.decay_time: must be positive, got %v", c.EWMA.DecayTime)
	case c.EWMA.FailurePenalty < 0:
		return fmt.Errorf("ewma.failure_penalty: must not be negative, got %v", c.EWMA.FailurePenalty)
	case c.RingPoints < 1 || c.RingPoints > 1<<16:
		return fmt.Errorf("ring_points: must be in [1, %d], got %d", 1<<16, c.RingPoints)
	case c.LoadFactor < 1:
		return fmt.Errorf("load_factor: must be at least 1, got %v", c.LoadFactor)
	}
	return nil
}

// New returns the balancer cfg names. rnd is its source of randomness
// (P2C's choices, tie breaks); nil means a randomly seeded one. The balancer
// serialises its use of rnd.
func New(cfg Config, rnd rand.Source) (Balancer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("balancer config: %w", err)
	}
	cfg = cfg.WithDefaults()
	if rnd == nil {
		rnd = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
	r := &lockedRand{r: rand.New(rnd)}
	switch cfg.Policy {
	case RoundRobin:
		return &roundRobin{}, nil
	case WeightedRoundRobin:
		return &smoothWeighted{}, nil
	case LeastRequest:
		return &leastRequest{}, nil
	case RingHash:
		return &ringHash{points: cfg.RingPoints, factor: cfg.LoadFactor, fallback: &p2c{cfg: cfg.EWMA, rnd: r}}, nil
	default:
		return &p2c{cfg: cfg.EWMA, rnd: r}, nil
	}
}

type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (l *lockedRand) IntN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

// roundRobin cycles through the endpoints, skipping unusable ones.
type roundRobin struct {
	mu   sync.Mutex
	eps  []*Endpoint
	next int
}

func (b *roundRobin) Update(eps []*Endpoint) {
	b.mu.Lock()
	b.eps = append([]*Endpoint(nil), eps...)
	b.mu.Unlock()
}

func (b *roundRobin) Pick(_ time.Time, _ Request, usable func(*Endpoint) bool) *Endpoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.eps)
	for i := 0; i < n; i++ {
		e := b.eps[(b.next+i)%n]
		if usable(e) {
			b.next = (b.next + i + 1) % n
			return e
		}
	}
	return nil
}

// smoothWeighted is nginx's smooth weighted round robin: every pick adds each
// usable endpoint's weight to its current value, picks the largest, and
// subtracts the total from the winner. Over any run of Σweights picks with a
// stable usable set each endpoint is picked exactly weight times.
type smoothWeighted struct {
	mu  sync.Mutex
	eps []*Endpoint
}

func (b *smoothWeighted) Update(eps []*Endpoint) {
	b.mu.Lock()
	b.eps = append([]*Endpoint(nil), eps...)
	b.mu.Unlock()
}

func (b *smoothWeighted) Pick(_ time.Time, _ Request, usable func(*Endpoint) bool) *Endpoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	var best *Endpoint
	total := 0
	for _, e := range b.eps {
		if !usable(e) {
			continue
		}
		e.current += e.Weight
		total += e.Weight
		if best == nil || e.current > best.current {
			best = e
		}
	}
	if best != nil {
		best.current -= total
	}
	return best
}

// leastRequest picks the endpoint with the fewest outstanding calls per unit
// of weight, starting its scan where the last pick left off so that ties
// rotate.
type leastRequest struct {
	mu   sync.Mutex
	eps  []*Endpoint
	next int
}

func (b *leastRequest) Update(eps []*Endpoint) {
	b.mu.Lock()
	b.eps = append([]*Endpoint(nil), eps...)
	b.mu.Unlock()
}

func (b *leastRequest) Pick(_ time.Time, _ Request, usable func(*Endpoint) bool) *Endpoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.eps)
	var best *Endpoint
	bestIdx := 0
	var bestScore float64
	for i := 0; i < n; i++ {
		idx := (b.next + i) % n
		e := b.eps[idx]
		if !usable(e) {
			continue
		}
		score := float64(e.Outstanding()+1) / float64(e.Weight)
		if best == nil || score < bestScore {
			best, bestScore, bestIdx = e, score, idx
		}
	}
	if best != nil {
		b.next = (bestIdx + 1) % n
	}
	return best
}

// p2c is Finagle's power of two choices over peak-EWMA cost.
type p2c struct {
	cfg EWMAConfig
	rnd *lockedRand

	mu  sync.RWMutex
	eps []*Endpoint
}

func (b *p2c) Update(eps []*Endpoint) {
	b.mu.Lock()
	b.eps = append([]*Endpoint(nil), eps...)
	b.mu.Unlock()
}

// p2cTries bounds random sampling before Pick falls back to a scan of the
// usable endpoints.
const p2cTries = 4

func (b *p2c) Pick(now time.Time, _ Request, usable func(*Endpoint) bool) *Endpoint {
	b.mu.RLock()
	eps := b.eps
	b.mu.RUnlock()
	return pickP2C(b.cfg, b.rnd, eps, now, usable)
}

func pickP2C(cfg EWMAConfig, rnd *lockedRand, eps []*Endpoint, now time.Time, usable func(*Endpoint) bool) *Endpoint {
	n := len(eps)
	switch n {
	case 0:
		return nil
	case 1:
		if usable(eps[0]) {
			return eps[0]
		}
		return nil
	}
	// Fast path: sample two distinct indexes; retry a few times if either is
	// unusable.
	for range p2cTries {
		i := rnd.IntN(n)
		j := rnd.IntN(n - 1)
		if j >= i {
			j++
		}
		a, c := eps[i], eps[j]
		ua, uc := usable(a), usable(c)
		switch {
		case ua && uc:
			if c.Cost(cfg, now) < a.Cost(cfg, now) {
				return c
			}
			return a
		case ua || uc:
			// One of the two is out; keep sampling so the survivor still
			// has to beat someone, unless few endpoints are usable.
			continue
		}
	}
	// Slow path: many endpoints unusable. Choose among the usable ones.
	var ok []*Endpoint
	for _, e := range eps {
		if usable(e) {
			ok = append(ok, e)
		}
	}
	switch len(ok) {
	case 0:
		return nil
	case 1:
		return ok[0]
	}
	i := rnd.IntN(len(ok))
	j := rnd.IntN(len(ok) - 1)
	if j >= i {
		j++
	}
	if ok[j].Cost(cfg, now) < ok[i].Cost(cfg, now) {
		return ok[j]
	}
	return ok[i]
}
