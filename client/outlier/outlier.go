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
	// LatencyFactor ejects an instance whose mean latency over a
	// LatencyInterval is at least this many times the median of its peers'
	// (default 3; negative disables latency ejection).
	LatencyFactor float64 `yaml:"latency_factor"`
	// LatencyInterval is the window over which latencies are averaged and
	// compared (default 1s).
	LatencyInterval time.Duration `yaml:"latency_interval"`
	// LatencyMinimumHosts is how many instances, the one judged included,
	// need LatencyVolume answers in a window for the comparison (default 3).
	LatencyMinimumHosts int `yaml:"latency_minimum_hosts"`
	// LatencyVolume is the number of answers an instance needs in a window
	// to be judged or to count as a peer (default 5).
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
	// Reason is set for ejections.
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
	// latSum and latN are the answers' latencies in the current latency
	// window.
	latSum time.Duration
	latN   int64
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
	for _, h := range keep {
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
// each LatencyInterval an instance whose mean is at least LatencyFactor times
// the median of its peers' means is ejected, like any outlier: for a growing
// ejection time, within the maximum ejected share. Unknown addresses are
// ignored.
func (d *Detector) RecordLatency(addr string, rtt time.Duration) {
	if d.cfg.Disabled || d.cfg.LatencyFactor < 0 {
		return
	}
	now := d.clock.Now()
	d.mu.Lock()
	events := d.maintain(now, nil)
	if h := d.hosts[addr]; h != nil {
		h.latSum += rtt
		h.latN++
	}
	d.mu.Unlock()
	d.emit(events)
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
				events = append(events, Event{Addr: addr, Ejections: h.multiplier})
				continue
			}
			d.noteReturn(h.until)
		}
	}
	if d.cfg.LatencyFactor > 0 && !now.Before(d.nextLatency) {
		events = d.latency(now, events)
		for _, h := range d.hosts {
			h.latSum, h.latN = 0, 0
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

// latency ejects instances whose mean latency in the window ending now is
// LatencyFactor times the median of their peers'. mu held.
func (d *Detector) latency(now time.Time, events []Event) []Event {
	type sample struct {
		addr string
		h    *host
		mean float64
	}
	var samples []sample
	for addr, h := range d.hosts {
		if !h.ejected && h.latN >= int64(d.cfg.LatencyVolume) {
			samples = append(samples, sample{addr, h, float64(h.latSum) / float64(h.latN)})
		}
	}
	if len(samples) < max(d.cfg.LatencyMinimumHosts, 2) {
		return events
	}
	// Slowest first, so the ejection cap removes the worst offenders.
	sort.Slice(samples, func(i, j int) bool { return samples[i].mean > samples[j].mean })
	peers := make([]float64, 0, len(samples)-1)
	for i, s := range samples {
		peers = peers[:0]
		for j, o := range samples {
			if j != i {
				peers = append(peers, o.mean)
			}
		}
		sort.Float64s(peers)
		var median float64
		if n := len(peers); n%2 == 1 {
			median = peers[n/2]
		} else {
			median = (peers[n/2-1] + peers[n/2]) / 2
		}
		if s.mean < d.cfg.LatencyFactor*median {
			break // the rest are faster still
		}
		events = d.eject(now, s.addr, s.h, ReasonLatency, events)
	}
	return events
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
