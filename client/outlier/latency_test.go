package outlier

import (
	"testing"
	"time"

	"github.com/vigil-obs/vigil/client/internal/fakeclock"
)

const ms = time.Millisecond

// latencyHarness drives a detector's latency windows on an injected clock.
type latencyHarness struct {
	t      *testing.T
	clk    *fakeclock.Clock
	d      *Detector
	hosts  []string
	events []Event
}

func newLatencyHarness(t *testing.T, cfg Config, hosts ...string) *latencyHarness {
	t.Helper()
	h := &latencyHarness{t: t, clk: fakeclock.New(time.Unix(1_700_000_000, 0)), hosts: hosts}
	d, err := New(cfg, Options{Clock: h.clk, OnEvent: func(e Event) { h.events = append(h.events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	d.SetHosts(hosts)
	h.d = d
	return h
}

// window records, for each host in the harness's order, the latencies
// listed (each repeated n times), then moves the clock to the end of the
// latency window.
func (h *latencyHarness) window(lat map[string][]time.Duration, n int) {
	for _, addr := range h.hosts {
		for range n {
			for _, l := range lat[addr] {
				h.d.RecordLatency(addr, l)
			}
		}
	}
	h.clk.Advance(time.Second)
	h.d.EjectedCount() // ends the window
}

// check asserts which hosts are ejected now.
func (h *latencyHarness) check(want ...string) {
	h.t.Helper()
	for _, a := range h.hosts {
		w := false
		for _, x := range want {
			w = w || x == a
		}
		if got := h.d.Ejected(a); got != w {
			h.t.Fatalf("%s ejected=%v, want %v (events %+v)", a, got, w, h.events)
		}
	}
}

// TestLatencyEjection drives the latency-ejection state machine on an
// injected clock: the slowest instance is ejected at the end of a window with
// reason latency, the maximum ejected share holds back the next one, a 2×
// instance and one with too few answers stay, the ejected one is readmitted
// after its ejection time (the return carrying the ejection's reason),
// ejected again for twice as long while still slow,
// and once healthy its multiplier decays so that a later ejection is short
// again.
func TestLatencyEjection(t *testing.T) {
	h := newLatencyHarness(t, Config{BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 20, Interval: 10 * time.Second},
		"a", "b", "c", "d", "e", "f", "g")
	one := func(d time.Duration) []time.Duration { return []time.Duration{d} }
	lat := map[string][]time.Duration{"a": one(10 * ms), "b": one(11 * ms), "c": one(9 * ms), "d": one(20 * ms), "e": one(50 * ms), "f": one(60 * ms)}
	for range 4 {
		h.d.RecordLatency("g", 500*ms) // below the volume of 5: not judged
	}
	h.window(lat, 20)
	// 7 hosts × 20 % = 1 may be ejected: f (slowest) goes, e is held back.
	h.check("f")
	if len(h.events) != 1 || h.events[0].Reason != ReasonLatency || h.events[0].Duration != 30*time.Second {
		t.Fatalf("events %+v, want one latency ejection of 30s", h.events)
	}
	if r, ok := h.d.EjectionReason("f"); !ok || r != ReasonLatency {
		t.Fatalf("EjectionReason(f) = %q, %v; want latency, true", r, ok)
	}
	if r, ok := h.d.EjectionReason("e"); ok || r != "" {
		t.Fatalf("EjectionReason(e) = %q, %v; want not ejected", r, ok)
	}
	// While f is out, e is still 3× the median and the cap still holds.
	h.window(lat, 20)
	h.check("f")
	// f is readmitted after 30s and, still slow, is ejected again for 60s
	// (e, healthy by then, stays).
	h.events = nil
	h.clk.Advance(29 * time.Second)
	h.check()
	if len(h.events) != 1 || h.events[0].Ejected || h.events[0].Addr != "f" || h.events[0].Reason != ReasonLatency {
		t.Fatalf("events %+v, want f readmitted, with the reason of its ejection", h.events)
	}
	h.events = nil
	lat["e"] = one(10 * ms)
	h.window(lat, 20)
	h.check("f")
	if len(h.events) != 1 || h.events[0].Addr != "f" || h.events[0].Duration != 60*time.Second || h.events[0].Ejections != 2 {
		t.Fatalf("events %+v, want f ejected a second time, for 60s", h.events)
	}
	// Back after 60s and healthy: two healthy intervals take the
	// multiplier back to zero, so the next ejection lasts 30s again.
	h.clk.Advance(60 * time.Second)
	healthy := map[string][]time.Duration{"a": one(10 * ms), "b": one(11 * ms), "c": one(9 * ms), "d": one(10 * ms), "e": one(10 * ms), "f": one(10 * ms)}
	for range 25 {
		h.window(healthy, 20)
	}
	h.check()
	h.events = nil
	h.window(lat, 20)
	h.check("f")
	if len(h.events) != 1 || h.events[0].Duration != 30*time.Second || h.events[0].Ejections != 1 {
		t.Fatalf("events %+v, want f ejected for 30s after its multiplier decayed", h.events)
	}
}

// TestLatencyEjectionIntermittent covers instances slow only part of the
// time. Mostly slow: one slow on a quarter of its answers, whose mean stays
// under LatencyFactor × its peers' (the diluted case), is ejected at once on
// its 0.9 quantile, and so is one the balancer sends only a few answers, all
// slow; scheduling noise and two long hiccups among few answers are not.
// Often slow: one slow on 5 % of its answers, too few for the quantile, is
// ejected when it gives LatencyVolume slow answers two windows in a row, not
// after one window, not with a healthy window between, and not when every
// instance is as slow (a stall of the whole machine). Answers too few to
// judge are carried over a few windows.
func TestLatencyEjectionIntermittent(t *testing.T) {
	fast := []time.Duration{2 * ms, 2 * ms, 3 * ms, 2 * ms}
	mixed := []time.Duration{2 * ms, 2 * ms, 20 * ms, 2 * ms} // mean 6.5 ms, < 3 × 2.25 ms
	rare := make([]time.Duration, 20)
	for i := range rare {
		rare[i] = 2 * ms
	}
	rare[0] = 40 * ms
	noisy := []time.Duration{2 * ms, 3 * ms, 5 * ms, 2 * ms}

	h := newLatencyHarness(t, Config{}, "a", "b", "c")
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": noisy}, 10)
	h.check()
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": rare}, 2)
	h.check()
	hiccups := []time.Duration{2 * ms, 2 * ms, 2 * ms, 2 * ms, 500 * ms, 2 * ms, 900 * ms}
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": hiccups}, 1)
	h.check()
	if len(h.events) != 0 {
		t.Fatalf("events %+v, want none", h.events)
	}
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": {40 * ms}}, 6)
	h.check("c")
	h = newLatencyHarness(t, Config{}, "a", "b", "c")
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": mixed}, 10)
	h.check("c")
	if len(h.events) != 1 || h.events[0].Reason != ReasonLatency {
		t.Fatalf("events %+v, want c ejected for latency", h.events)
	}

	// Rarely picked because slow: 2 answers per window, below the volume,
	// are carried over and judged once there are 5 of them (third window).
	h = newLatencyHarness(t, Config{}, "a", "b", "c")
	for range 3 {
		h.check()
		h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": {40 * ms}}, 2)
	}
	h.check("c")
	// One answer every other window: carried answers are dropped after a
	// few windows, so the 6 answers are never judged together.
	h = newLatencyHarness(t, Config{}, "a", "b", "c")
	for range 6 {
		h.d.RecordLatency("c", 40*ms)
		h.window(map[string][]time.Duration{"a": fast, "b": fast}, 2)
		h.window(map[string][]time.Duration{"a": fast, "b": fast}, 2)
	}
	h.check()

	// Slow on 5 % of its answers, too few for the quantile, yet 6 slow
	// answers per window where its peers gave none: often slow, ejected
	// at the second such window in a row, not the first.
	h = newLatencyHarness(t, Config{}, "a", "b", "c")
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": rare}, 6)
	h.check()
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": rare}, 6)
	h.check("c")
	// A one-off stall of one instance, then a normal window, then another
	// stall: no two windows in a row, no ejection.
	h = newLatencyHarness(t, Config{}, "a", "b", "c")
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": rare}, 6)
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": fast}, 30)
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": rare}, 6)
	h.check()
	// A stall of the whole machine: every instance as often slow, no one
	// stands out.
	h.window(map[string][]time.Duration{"a": rare, "b": rare, "c": rare}, 6)
	h.window(map[string][]time.Duration{"a": rare, "b": rare, "c": rare}, 6)
	h.check()

	// The same instance judged on the mean (quantile 0.5 is not the mean,
	// but like it is blind to a slow quarter) stays in.
	h = newLatencyHarness(t, Config{LatencyQuantile: 0.5}, "a", "b", "c")
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": mixed}, 10)
	h.check()
}

// TestLatencyEjectionMaxShare: with many slow instances, no more than the
// maximum ejected share are out at once, the slowest first; at least one is
// always allowed.
func TestLatencyEjectionMaxShare(t *testing.T) {
	hosts := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	h := newLatencyHarness(t, Config{MaxEjectionPercent: 20}, hosts...)
	lat := map[string][]time.Duration{}
	for i, a := range hosts {
		lat[a] = []time.Duration{2 * ms}
		if i >= 6 {
			lat[a] = []time.Duration{time.Duration(20+i) * ms}
		}
	}
	h.window(lat, 20)
	h.check("i", "j")
	h.window(lat, 20)
	h.check("i", "j")

	h = newLatencyHarness(t, Config{MaxEjectionPercent: 1}, "a", "b", "c", "d")
	h.window(map[string][]time.Duration{"a": {2 * ms}, "b": {2 * ms}, "c": {30 * ms}, "d": {40 * ms}}, 20)
	h.check("d")
}

// TestLatencyEjectionDisabled: a negative factor turns latency ejection off.
func TestLatencyEjectionDisabled(t *testing.T) {
	h := newLatencyHarness(t, Config{LatencyFactor: -1}, "a", "b", "c")
	h.window(map[string][]time.Duration{"a": {ms}, "b": {ms}, "c": {time.Second}}, 50)
	h.window(map[string][]time.Duration{"a": {ms}, "b": {ms}, "c": {time.Second}}, 50)
	h.check()
}

// TestLatencyEjectionEarly covers ejection before a window ends, against the
// threshold the last window set: an instance the balancer avoided (too few
// answers to be judged) is ejected at its LatencyVolume-th slow answer once
// it is picked again, not at the end of the window; an instance readmitted
// while still slow likewise. Fewer slow answers, slow answers too few among
// its own for the quantile, or a slowdown its peers share eject no one early;
// nor does anything before a first window has set a threshold.
func TestLatencyEjectionEarly(t *testing.T) {
	fast := []time.Duration{2 * ms, 2 * ms, 3 * ms, 2 * ms}
	peers := map[string][]time.Duration{"a": fast, "b": fast}

	// No threshold yet in the first window: only its end judges.
	h := newLatencyHarness(t, Config{}, "a", "b", "c")
	for range 10 {
		h.d.RecordLatency("c", 40*ms)
	}
	h.check()
	h.window(peers, 5)
	h.check("c")

	// Idle since a slow answer, then picked again: ejected at the fifth
	// slow answer, mid-window.
	h = newLatencyHarness(t, Config{}, "a", "b", "c")
	h.d.RecordLatency("c", 40*ms)
	h.window(peers, 5) // c: one answer, too few to judge
	h.check()
	for i := range 4 {
		h.d.RecordLatency("a", 2*ms)
		h.d.RecordLatency("c", 40*ms)
		if i < 3 {
			h.check()
		}
	}
	// Four slow answers since the window ended (the one carried over is
	// older than the threshold and not counted): mostly slow, yet fewer
	// than five. The fifth ejects it.
	h.check()
	h.d.RecordLatency("c", 40*ms)
	h.check("c")
	if len(h.events) != 1 || h.events[0].Reason != ReasonLatency || h.events[0].Duration != 30*time.Second {
		t.Fatalf("events %+v, want c ejected for latency for 30s", h.events)
	}

	// Readmitted while still slow: judged on its first answers.
	h.events = nil
	h.clk.Advance(30 * time.Second)
	h.check()
	h.window(peers, 5) // a threshold for the next window, c included
	for range 4 {
		h.d.RecordLatency("c", 40*ms)
	}
	h.check()
	h.d.RecordLatency("c", 40*ms)
	h.check("c")
	if len(h.events) != 2 || h.events[1].Duration != 60*time.Second {
		t.Fatalf("events %+v, want c readmitted, then ejected for 60s", h.events)
	}

	// Slow answers too few among its own: 5 slow among 80 answers is no
	// 0.9 quantile above the threshold, so not early (the window's end
	// judges it often slow or not).
	h = newLatencyHarness(t, Config{}, "a", "b", "c")
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": fast}, 5)
	for i := range 80 {
		d := 2 * ms
		if i%16 == 0 {
			d = 40 * ms
		}
		h.d.RecordLatency("c", d)
	}
	h.check()

	// Every instance as slow: the peers' mean is as high, no one goes.
	h = newLatencyHarness(t, Config{}, "a", "b", "c")
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": fast}, 5)
	for range 10 {
		for _, a := range []string{"a", "b", "c"} {
			h.d.RecordLatency(a, 40*ms)
		}
	}
	h.check()
	if len(h.events) != 0 {
		t.Fatalf("events %+v, want none", h.events)
	}

	// The maximum ejected share holds early too.
	h = newLatencyHarness(t, Config{}, "a", "b", "c", "d")
	h.window(map[string][]time.Duration{"a": fast, "b": fast, "c": fast, "d": fast}, 5)
	for range 10 {
		h.d.RecordLatency("c", 40*ms)
		h.d.RecordLatency("d", 40*ms)
	}
	h.check("c")
}
