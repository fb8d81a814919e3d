package balance

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Endpoint is one instance as balancers see it: an address, a static weight,
// and the load the client has observed. Create it with NewEndpoint; its
// methods are safe for concurrent use.
type Endpoint struct {
	// Addr is the instance's host:port. It identifies the endpoint.
	Addr string
	// Weight is the instance's relative capacity, at least 1.
	Weight int

	outstanding atomic.Int64

	mu      sync.Mutex
	ewma    float64 // peak-EWMA latency in nanoseconds
	stamp   time.Time
	samples int64

	// current is the smooth-weighted-round-robin state, guarded by the
	// balancer's lock.
	current int
}

// NewEndpoint returns an endpoint with no load. A weight below 1 counts as 1.
func NewEndpoint(addr string, weight int) *Endpoint {
	return &Endpoint{Addr: addr, Weight: max(weight, 1)}
}

// Begin counts a call to the endpoint as outstanding.
func (e *Endpoint) Begin() { e.outstanding.Add(1) }

// Outstanding returns the number of calls begun and not yet ended.
func (e *Endpoint) Outstanding() int64 { return e.outstanding.Load() }

// EWMAConfig sets the peak-EWMA latency estimator.
type EWMAConfig struct {
	// DecayTime is the estimator's time constant: a sample's weight falls
	// to 1/e after this long, and an idle endpoint's estimate decays
	// towards zero at that rate (default 10s, Finagle's).
	DecayTime time.Duration `yaml:"decay_time"`
	// FailurePenalty is the latency a failed call counts as, unless it took
	// longer, so that fast failures do not attract traffic (default 1s).
	FailurePenalty time.Duration `yaml:"failure_penalty"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c EWMAConfig) WithDefaults() EWMAConfig {
	if c.DecayTime == 0 {
		c.DecayTime = 10 * time.Second
	}
	if c.FailurePenalty == 0 {
		c.FailurePenalty = time.Second
	}
	return c
}

// Finish counts a call begun with Begin as no longer outstanding.
func (e *Endpoint) Finish() { e.outstanding.Add(-1) }

// Observe feeds one call's latency rtt, measured at now, into the peak-EWMA
// estimate. A failed call counts as at least cfg.FailurePenalty. Calls the
// caller abandoned say nothing about the endpoint and should not be observed.
func (e *Endpoint) Observe(cfg EWMAConfig, now time.Time, rtt time.Duration, failed bool) {
	cfg = cfg.WithDefaults()
	if failed && rtt < cfg.FailurePenalty {
		rtt = cfg.FailurePenalty
	}
	e.mu.Lock()
	sample := float64(rtt)
	switch {
	case e.samples == 0 || sample > e.ewma:
		// Peak sensitivity: a slow response is believed at once; recovery
		// is gradual.
		e.ewma = sample
	default:
		// Weight the old estimate by the time since it was made, so the
		// estimate tracks time rather than call counts.
		w := math.Exp(-float64(max(now.Sub(e.stamp), 0)) / float64(cfg.DecayTime))
		e.ewma = e.ewma*w + sample*(1-w)
	}
	if now.After(e.stamp) {
		e.stamp = now
	}
	e.samples++
	e.mu.Unlock()
}

// decayed returns the estimate decayed towards zero for the time since the
// last sample, so that an endpoint that got no traffic after one slow
// response is eventually tried again. mu held.
func (e *Endpoint) decayed(tau time.Duration, now time.Time) float64 {
	if e.samples == 0 {
		return 0
	}
	elapsed := now.Sub(e.stamp)
	if elapsed <= 0 {
		return e.ewma
	}
	return e.ewma * math.Exp(-float64(elapsed)/float64(tau))
}

// Latency returns the peak-EWMA latency estimate at time now.
func (e *Endpoint) Latency(cfg EWMAConfig, now time.Time) time.Duration {
	cfg = cfg.WithDefaults()
	e.mu.Lock()
	defer e.mu.Unlock()
	return time.Duration(e.decayed(cfg.DecayTime, now))
}

// penalty is the cost of an endpoint with outstanding calls and no latency
// sample yet: high enough that established endpoints are preferred, while an
// idle new endpoint (cost 0) is tried at once. Finagle uses the same trick.
const penalty = float64(math.MaxInt32) * float64(time.Millisecond)

// Cost is what P2C compares: the decayed peak-EWMA latency times
// (outstanding + 1), divided by the weight.
func (e *Endpoint) Cost(cfg EWMAConfig, now time.Time) float64 {
	cfg = cfg.WithDefaults()
	out := float64(e.outstanding.Load())
	e.mu.Lock()
	lat := e.decayed(cfg.DecayTime, now)
	e.mu.Unlock()
	if lat == 0 && out > 0 {
		return penalty + out
	}
	return lat * (out + 1) / float64(e.Weight)
}
