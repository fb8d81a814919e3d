package outlier

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// Result classifies the outcome of one call to an instance.
type Result int

const (
	// Success is a call the instance answered well.
	Success Result = iota
	// ServerError is an error the instance itself reported (HTTP 5xx, gRPC
	// UNAVAILABLE, INTERNAL, DATA_LOSS...).
	ServerError
	// LocalFailure is an error observed by the caller without an answer:
	// connect refused, connection reset, per-attempt timeout.
	LocalFailure
)

// Reason says why an instance was ejected.
type Reason string

// Ejection reasons, used as metric and log attribute values.
const (
	ReasonConsecutiveServerErrors  Reason = "consecutive_5xx"
	ReasonConsecutiveLocalFailures Reason = "consecutive_local_failure"
	ReasonSuccessRate              Reason = "success_rate"
	ReasonLatency                  Reason = "latency"
)

// Config sets the detector's thresholds. Zero fields take the defaults listed
// on each field.
type Config struct {
	// Disabled turns passive ejection off.
	Disabled bool `yaml:"disabled"`
	// ConsecutiveServerErrors ejects an instance after this many server
	// errors in a row (default 5; negative disables).
	ConsecutiveServerErrors int `yaml:"consecutive_server_errors"`
	// ConsecutiveLocalFailures ejects an instance after this many
	// local-origin failures in a row (default 5; negative disables).
	ConsecutiveLocalFailures int `yaml:"consecutive_local_failures"`
	// Interval is the period of success-rate analysis and of ejection
	// multiplier decay (default 10s).
	Interval time.Duration `yaml:"interval"`
	// BaseEjectionTime is the first ejection's length; the n-th consecutive
	// ejection lasts n times as long (default 30s).
	BaseEjectionTime time.Duration `yaml:"base_ejection_time"`
	// MaxEjectionTime caps one ejection's length (default 300s).
	MaxEjectionTime time.Duration `yaml:"max_ejection_time"`
	// MaxEjectionPercent caps the share of instances ejected at once; at
	// least one instance may always be ejected (default 10, range [0, 100]).
	MaxEjectionPercent float64 `yaml:"max_ejection_percent"`
	// SuccessRateMinimumHosts is how many instances need SuccessRateVolume
	// calls in an interval before success-rate analysis runs (default 5;
	// negative disables success-rate ejection).
	SuccessRateMinimumHosts int `yaml:"success_rate_minimum_hosts"`
	// SuccessRateVolume is the number of calls an instance needs in an
	// interval to take part in success-rate analysis (default 100).
	SuccessRateVolume int `yaml:"success_rate_volume"`
	// SuccessRateStdevFactor: an instance is ejected when its success rate is
	// below mean - factor × stdev (default 1.9).
	SuccessRateStdevFactor float64 `yaml:"success_rate_stdev_factor"`
	// LatencyFactor sets the latency threshold, this many times the median
	// of the peers' LatencyQuantile over a LatencyInterval: an instance is
	// ejected when its own LatencyQuantile reaches it, or when in two
	// windows in a row it gave at least LatencyVolume answers above it and
	// this many times as many as its peers' median. Between window ends, an
	// instance is judged against the threshold the last window set: it is
	// ejected once its answers above it number LatencyVolume, enough for
	// its LatencyQuantile to reach it, and this many times its peers' mean
	// (default 3; negative disables latency ejection).
	LatencyFactor float64 `yaml:"latency_factor"`
	// LatencyQuantile is the quantile of each instance's answer latencies
	// that is compared (default 0.9, range (0, 1]). A high quantile catches
	// an instance slow only part of the time, whose mean its fast answers
	// dilute; comparing the same quantile across peers keeps noise that
	// every instance shares from ejecting any of them. With few answers the
	// statistic is never above the third slowest, so that two hiccups in a
	// window never eject an instance.
	LatencyQuantile float64 `yaml:"latency_quantile"`
	// LatencyInterval is the window over which latencies are collected and
	// compared (default 1s).
	LatencyInterval time.Duration `yaml:"latency_interval"`
	// LatencyMinimumHosts is how many instances, the one judged included,
	// need LatencyVolume answers in a window for the comparison (default 3).
	LatencyMinimumHosts int `yaml:"latency_minimum_hosts"`
	// LatencyVolume is the number of answers an instance needs in a window
	// to be judged or to count as a peer, and the number of answers above
	// the threshold that make it often slow (default 5). Fewer answers are
	// carried into the next window, for up to four more windows.
	LatencyVolume int `yaml:"latency_volume"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.ConsecutiveServerErrors, 5)
	def(&c.ConsecutiveLocalFailures, 5)
	def(&c.SuccessRateMinimumHosts, 5)
	def(&c.SuccessRateVolume, 100)
	def(&c.LatencyMinimumHosts, 3)
	def(&c.LatencyVolume, 5)
	if c.LatencyFactor == 0 {
		c.LatencyFactor = 3
	}
	if c.LatencyQuantile == 0 {
		c.LatencyQuantile = 0.9
	}
	if c.LatencyInterval == 0 {
		c.LatencyInterval = time.Second
	}
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.BaseEjectionTime == 0 {
		c.BaseEjectionTime = 30 * time.Second
	}
	if c.MaxEjectionTime == 0 {
		c.MaxEjectionTime = 300 * time.Second
	}
	if c.MaxEjectionPercent == 0 {
		c.MaxEjectionPercent = 10
	}
	if c.SuccessRateStdevFactor == 0 {
		c.SuccessRateStdevFactor = 1.9
	}
	return c
}

// Validate reports the first invalid field of c after defaults are applied.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Interval < 0:
		return fmt.Errorf("interval: must be positive, got %v", c.Interval)
	case c.BaseEjectionTime < 0:
		return fmt.Errorf("base_ejection_time: must be positive, got %v", c.BaseEjectionTime)
	case c.MaxEjectionTime < c.BaseEjectionTime:
		return fmt.Errorf("max_ejection_time: must be at least base_ejection_time (%v), got %v", c.BaseEjectionTime, c.MaxEjectionTime)
	case c.MaxEjectionPercent < 0 || c.MaxEjectionPercent > 100:
		return fmt.Errorf("max_ejection_percent: must be in [0, 100], got %v", c.MaxEjectionPercent)
	case c.SuccessRateVolume < 1:
		return fmt.Errorf("success_rate_volume: must be positive, got %d", c.SuccessRateVolume)
	case c.LatencyInterval < 0:
		return fmt.Errorf("latency_interval: must be positive, got %v", c.LatencyInterval)
	case c.LatencyFactor > 0 && c.LatencyFactor < 1:
		return fmt.Errorf("latency_factor: must be at least 1 (or negative to disable), got %v", c.LatencyFactor)
	case c.LatencyQuantile < 0 || c.LatencyQuantile > 1:
		return fmt.Errorf("latency_quantile: must be in (0, 1], got %v", c.LatencyQuantile)
	case c.LatencyVolume < 1:
		return fmt.Errorf("latency_volume: must be positive, got %d", c.LatencyVolume)
	case c.SuccessRateStdevFactor < 0:
		return fmt.Errorf("success_rate_stdev_factor: must not be negative, got %v", c.SuccessRateStdevFactor)
	}
	return nil
}

// Clock tells the detector the time.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Event reports an ejection or a return to service.
type Event struct {
	Addr string
	// Ejected is true for an ejection, false for a return.
	Ejected bool
	// Reason is why the instance was ejected; for a return, why the
	// ejection that ends was made.
	Reason Reason
	// Duration is the ejection's length; zero for returns.
	Duration time.Duration
	// Ejections counts this instance's ejections without an intervening
	// healthy interval (the ejection time multiplier).
	Ejections int
}

// Options carries a detector's dependencies.
type Options struct {
	// Clock defaults to the system clock.
	Clock Clock
	// OnEvent, if set, is called for every ejection and return, outside the
	// detector's lock.
	OnEvent func(Event)
}

type host struct {
	consecServer int
	consecLocal  int
	success      int64 // in the current interval
	total        int64
	ejected      bool
	until        time.Time
	multiplier   int
	// reason is why the current ejection happened.
	reason Reason
	// lat holds the answers' latencies in the current latency window.
	lat histogram
	// latStrikes counts the latency windows in a row in which the
	// instance was often slow.
	latStrikes int
	// latAge counts the windows whose answers lat carries because they
	// were too few to judge.
	latAge int
	// latThreshold is the latency threshold set for the instance at the
	// end of the last window (zero when there were too few peers to set
	// one); latEarly counts its answers since then that reached it.
	latThreshold time.Duration
	latEarly     int64
	// latCarried is how many of lat's answers were carried from earlier
	// windows.
	latCarried int64
}

// Detector tracks instances and ejects outliers. Create it with New.
type Detector struct {
	cfg     Config
	clock   Clock
	onEvent func(Event)

	mu        sync.Mutex
	hosts     map[string]*host
	ejected   int
	nextSweep time.Time
	// nextLatency is the end of the current latency window.
	nextLatency time.Time
	// nextReturn is the earliest end of a current ejection; zero when
	// nothing is ejected. It keeps the per-call work O(1).
	nextReturn time.Time
	// latEarly sums the hosts' latEarly, so that the early test compares
	// an instance with its peers in O(1).
	latEarly int64
}

// New returns a detector for cfg with no instances.
func New(cfg Config, opts Options) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("outlier config: %w", err)
	}
	d := &Detector{cfg: cfg.WithDefaults(), clock: opts.Clock, onEvent: opts.OnEvent, hosts: map[string]*host{}}
	if d.clock == nil {
		d.clock = systemClock{}
	}
	d.nextSweep = d.clock.Now().Add(d.cfg.Interval)
	d.nextLatency = d.clock.Now().Add(d.cfg.LatencyInterval)
	return d, nil
}

// SetHosts replaces the tracked instances. Instances that stay keep their
// state (including an ejection); new ones start healthy.
func (d *Detector) SetHosts(addrs []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	keep := make(map[string]*host, len(addrs))
	for _, a := range addrs {
		if h, ok := d.hosts[a]; ok {
			keep[a] = h
		} else {
			keep[a] = &host{}
		}
	}
	d.hosts = keep
	d.ejected = 0
	d.nextReturn = time.Time{}
	d.latEarly = 0
	for _, h := range keep {
		d.latEarly += h.latEarly
		if h.ejected {
			d.ejected++
			d.noteReturn(h.until)
		}
	}
}

// Record counts the outcome of one call to addr. Unknown addresses are
// ignored.
func (d *Detector) Record(addr string, r Result) {
	if d.cfg.Disabled {
		return
	}
	now := d.clock.Now()
	var events []Event
	d.mu.Lock()
	events = d.maintain(now, events)
	h := d.hosts[addr]
	if h != nil {
		h.total++
		switch r {
		case Success:
			h.success++
			h.consecServer, h.consecLocal = 0, 0
		case ServerError:
			h.consecServer++
			h.consecLocal = 0
			if n := d.cfg.ConsecutiveServerErrors; n > 0 && h.consecServer >= n {
				events = d.eject(now, addr, h, ReasonConsecutiveServerErrors, events)
			}
		case LocalFailure:
			h.consecLocal++
			h.consecServer = 0
			if n := d.cfg.ConsecutiveLocalFailures; n > 0 && h.consecLocal >= n {
				events = d.eject(now, addr, h, ReasonConsecutiveLocalFailures, events)
			}
		}
	}
	d.mu.Unlock()
	d.emit(events)
}

// RecordLatency counts the latency of one answer from addr (a call that
// failed or that the caller abandoned should not be recorded). At the end of
// each LatencyInterval an instance mostly or often slower than LatencyFactor
// times its peers (see Config.LatencyFactor) is ejected, like any outlier:
// for a growing ejection time, within the maximum ejected share. An instance
// mostly slow against the threshold of the last window is ejected without
// waiting for the window's end (see early). Unknown addresses are ignored.
func (d *Detector) RecordLatency(addr string, rtt time.Duration) {
	if d.cfg.Disabled || d.cfg.LatencyFactor < 0 {
		return
	}
	now := d.clock.Now()
	d.mu.Lock()
	events := d.maintain(now, nil)
	if h := d.hosts[addr]; h != nil {
		h.lat.add(rtt)
		if h.latThreshold > 0 && rtt >= h.latThreshold && !h.ejected {
			h.latEarly++
			d.latEarly++
			events = d.early(now, addr, h, events)
		}
	}
	d.mu.Unlock()
	d.emit(events)
}

// early ejects h when, since the last window ended, it has been mostly slow
// against the threshold that window set: at least LatencyVolume answers
// reached it, they are enough of its answers for its LatencyQuantile (with
// the same allowance for two hiccups) to reach it, and they are
// LatencyFactor times as many as its peers' mean (at least one). The window
// test alone lets an instance that the balancer suddenly sends many calls
// (one idle since a slow answer, whose estimate has decayed) keep them for
// up to a whole window; this one ejects it after LatencyVolume slow answers.
// A slowdown of the whole fleet raises the peers' counts as much, so it
// ejects no one. O(1). mu held.
func (d *Detector) early(now time.Time, addr string, h *host, events []Event) []Event {
	// Its peers are the other instances in service; h is not ejected.
	others := len(d.hosts) - d.ejected - 1
	if h.latEarly < int64(d.cfg.LatencyVolume) || others < 1 {
		return events
	}
	// Answers since the window began; carried answers are older, so
	// judge only those of the current window.
	n := h.lat.n - h.latCarried
	r := min(int64(math.Ceil(d.cfg.LatencyQuantile*float64(n))), n-latencyHiccups)
	if h.latEarly < n-r+1 {
		return events
	}
	peers := float64(d.latEarly-h.latEarly) / float64(others)
	if float64(h.latEarly) < d.cfg.LatencyFactor*max(peers, 1) {
		return events
	}
	return d.eject(now, addr, h, ReasonLatency, events)
}

// Ejected reports whether addr is ejected now.
func (d *Detector) Ejected(addr string) bool {
	if d.cfg.Disabled {
		return false
	}
	now := d.clock.Now()
	d.mu.Lock()
	events := d.maintain(now, nil)
	h := d.hosts[addr]
	ej := h != nil && h.ejected
	d.mu.Unlock()
	d.emit(events)
	return ej
}

// EjectionReason reports why addr is ejected, and whether it is ejected now.
func (d *Detector) EjectionReason(addr string) (Reason, bool) {
	if d.cfg.Disabled {
		return "", false
	}
	now := d.clock.Now()
	d.mu.Lock()
	events := d.maintain(now, nil)
	h := d.hosts[addr]
	var r Reason
	ej := h != nil && h.ejected
	if ej {
		r = h.reason
	}
	d.mu.Unlock()
	d.emit(events)
	return r, ej
}

// EjectedCount reports how many instances are ejected now.
func (d *Detector) EjectedCount() int {
	if d.cfg.Disabled {
		return 0
	}
	now := d.clock.Now()
	d.mu.Lock()
	events := d.maintain(now, nil)
	n := d.ejected
	d.mu.Unlock()
	d.emit(events)
	return n
}

// maxEjected is how many instances may be ejected at once. mu held.
func (d *Detector) maxEjected() int {
	n := int(math.Floor(float64(len(d.hosts)) * d.cfg.MaxEjectionPercent / 100))
	return max(n, 1)
}

func (d *Detector) eject(now time.Time, addr string, h *host, reason Reason, events []Event) []Event {
	if h.ejected || d.ejected >= d.maxEjected() {
		return events
	}
	h.multiplier++
	dur := min(time.Duration(h.multiplier)*d.cfg.BaseEjectionTime, d.cfg.MaxEjectionTime)
	h.ejected = true
	h.reason = reason
	h.latStrikes = 0
	d.latEarly -= h.latEarly
	h.latEarly = 0
	h.until = now.Add(dur)
	d.noteReturn(h.until)
	h.consecServer, h.consecLocal = 0, 0
	d.ejected++
	return append(events, Event{Addr: addr, Ejected: true, Reason: reason, Duration: dur, Ejections: h.multiplier})
}

// maintain returns instances whose ejection expired and, once per Interval,
// runs success-rate analysis and decays multipliers. mu held.
func (d *Detector) maintain(now time.Time, events []Event) []Event {
	if !d.nextReturn.IsZero() && !now.Before(d.nextReturn) {
		d.nextReturn = time.Time{}
		for addr, h := range d.hosts {
			if !h.ejected {
				continue
			}
			if !now.Before(h.until) {
				h.ejected = false
				d.ejected--
				events = append(events, Event{Addr: addr, Reason: h.reason, Ejections: h.multiplier})
				continue
			}
			d.noteReturn(h.until)
		}
	}
	if d.cfg.LatencyFactor > 0 && !now.Before(d.nextLatency) {
		events = d.latency(now, events)
		d.latEarly = 0
		for _, h := range d.hosts {
			h.latEarly = 0
			// An instance with too few answers to be judged keeps them
			// for the next window, for a few windows: one the balancer
			// rarely picks because it is slow is judged all the same.
			if h.ejected || h.lat.n >= int64(d.cfg.LatencyVolume) || h.latAge >= latencyCarry {
				h.lat.reset()
				h.latAge = 0
			} else {
				h.latAge++
			}
			h.latCarried = h.lat.n
		}
		d.nextLatency = now.Add(d.cfg.LatencyInterval)
	}
	if now.Before(d.nextSweep) {
		return events
	}
	for _, h := range d.hosts {
		if !h.ejected && h.multiplier > 0 && now.Sub(h.until) >= d.cfg.Interval {
			h.multiplier--
		}
	}
	events = d.successRate(now, events)
	for _, h := range d.hosts {
		h.success, h.total = 0, 0
	}
	// Skip intervals that passed without calls rather than replaying them.
	d.nextSweep = now.Add(d.cfg.Interval)
	return events
}

func (d *Detector) successRate(now time.Time, events []Event) []Event {
	if d.cfg.SuccessRateMinimumHosts < 0 {
		return events
	}
	type sample struct {
		addr string
		h    *host
		rate float64
	}
	var samples []sample
	for addr, h := range d.hosts {
		if !h.ejected && h.total >= int64(d.cfg.SuccessRateVolume) {
			samples = append(samples, sample{addr, h, 100 * float64(h.success) / float64(h.total)})
		}
	}
	if len(samples) < d.cfg.SuccessRateMinimumHosts || len(samples) == 0 {
		return events
	}
	var mean float64
	for _, s := range samples {
		mean += s.rate
	}
	mean /= float64(len(samples))
	var variance float64
	for _, s := range samples {
		variance += (s.rate - mean) * (s.rate - mean)
	}
	stdev := math.Sqrt(variance / float64(len(samples)))
	threshold := mean - d.cfg.SuccessRateStdevFactor*stdev
	// Worst first, so the ejection cap removes the worst offenders.
	sort.Slice(samples, func(i, j int) bool { return samples[i].rate < samples[j].rate })
	for _, s := range samples {
		if s.rate < threshold {
			events = d.eject(now, s.addr, s.h, ReasonSuccessRate, events)
		}
	}
	return events
}

// latencyHiccups is how many of an instance's slowest answers in a window the
// latency comparison always ignores: the statistic is the LatencyQuantile, or
// the third slowest answer when that is lower (fewer than 30 answers at the
// 0.9 quantile).
const latencyHiccups = 2

// latencyCarry is how many more windows an instance's answers are kept when
// they are too few to judge (fewer than LatencyVolume).
const latencyCarry = 4

// latencyStrikes is how many windows in a row an instance must be often slow
// (see latency) to be ejected for it: a one-off stall of one instance is not
// a pattern.
const latencyStrikes = 2

// median returns the median of v, which it sorts; zero when v is empty.
func median(v []float64) float64 {
	sort.Float64s(v)
	switch n := len(v); {
	case n == 0:
		return 0
	case n%2 == 1:
		return v[n/2]
	default:
		return (v[n/2-1] + v[n/2]) / 2
	}
}

// latency judges the window ending now. For each instance with enough
// answers, the threshold is LatencyFactor times the median of its peers'
// LatencyQuantile. An instance is ejected when it is
//
//   - mostly slow: its own LatencyQuantile reaches the threshold; or
//   - often slow, in latencyStrikes windows in a row: it gave at least
//     LatencyVolume answers above the threshold, and LatencyFactor times as
//     many as the median of its peers (at least one). This catches an
//     instance slow only part of the time, to which P2C sends most of its
//     calls when it is fast, so that its slow answers are too few of its own
//     for the quantile, yet are the fleet's tail.
//
// Noise every instance shares raises the peers' figures as much as the
// judged one's, so it ejects no one. mu held.
func (d *Detector) latency(now time.Time, events []Event) []Event {
	var samples []latencySample
	for addr, h := range d.hosts {
		if !h.ejected && h.lat.n >= int64(d.cfg.LatencyVolume) {
			r := min(int64(math.Ceil(d.cfg.LatencyQuantile*float64(h.lat.n))), h.lat.n-latencyHiccups)
			samples = append(samples, latencySample{addr, h, float64(h.lat.rank(r))})
		} else {
			h.latStrikes = 0
		}
	}
	d.setThresholds(samples)
	if len(samples) < max(d.cfg.LatencyMinimumHosts, 2) {
		for _, s := range samples {
			s.h.latStrikes = 0
		}
		return events
	}
	// Slowest first, so the ejection cap removes the worst offenders.
	sort.Slice(samples, func(i, j int) bool { return samples[i].q > samples[j].q })
	peers := make([]float64, 0, len(samples)-1)
	for i, s := range samples {
		peers = peers[:0]
		for j, o := range samples {
			if j != i {
				peers = append(peers, o.q)
			}
		}
		threshold := time.Duration(d.cfg.LatencyFactor * median(peers))
		mostly := s.q >= float64(threshold)
		slow := s.h.lat.above(threshold)
		peers = peers[:0]
		for j, o := range samples {
			if j != i {
				peers = append(peers, float64(o.h.lat.above(threshold)))
			}
		}
		if slow >= int64(d.cfg.LatencyVolume) && float64(slow) >= d.cfg.LatencyFactor*max(median(peers), 1) {
			s.h.latStrikes++
		} else {
			s.h.latStrikes = 0
		}
		if mostly || s.h.latStrikes >= latencyStrikes {
			events = d.eject(now, s.addr, s.h, ReasonLatency, events)
		}
	}
	return events
}

// latencySample is one instance judged at the end of a latency window: q is
// its LatencyQuantile over the window.
type latencySample struct {
	addr string
	h    *host
	q    float64
}

// setThresholds sets every instance's latency threshold for the next window
// (see early): LatencyFactor times the median of its peers' LatencyQuantile
// in the window that ended, its peers being the instances with enough
// answers to be judged, itself excluded. An ejected instance gets one too,
// so that it is judged from its first answers when it returns; so does one
// with too few answers, so that one the balancer avoided is judged when it
// is picked again. With fewer than LatencyMinimumHosts - 1 peers (at least
// one) there is no threshold. mu held.
func (d *Detector) setThresholds(samples []latencySample) {
	need := max(d.cfg.LatencyMinimumHosts-1, 1)
	peers := make([]float64, 0, len(samples))
	for _, h := range d.hosts {
		peers = peers[:0]
		for _, s := range samples {
			if s.h != h {
				peers = append(peers, s.q)
			}
		}
		h.latThreshold = 0
		if len(peers) >= need {
			h.latThreshold = time.Duration(d.cfg.LatencyFactor * median(peers))
		}
	}
}

func (d *Detector) noteReturn(t time.Time) {
	if d.nextReturn.IsZero() || t.Before(d.nextReturn) {
		d.nextReturn = t
	}
}

func (d *Detector) emit(events []Event) {
	if d.onEvent == nil {
		return
	}
	for _, e := range events {
		d.onEvent(e)
	}
}
