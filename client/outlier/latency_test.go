package outlier

import (
	"testing"
	"time"

	"github.com/vigil-obs/vigil/client/internal/fakeclock"
)

// TestLatencyEjection drives latency ejection on an injected clock: the
// slowest instance is ejected at the end of a window with reason latency, the
// maximum ejected share holds back the next one, a 2× instance and one with
// too few answers stay, and the ejected one comes back after its ejection
// time, for twice as long if ejected again.
func TestLatencyEjection(t *testing.T) {
	clk := fakeclock.New(time.Unix(1_700_000_000, 0))
	var events []Event
	d, err := New(Config{BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 20, Interval: time.Hour},
		Options{Clock: clk, OnEvent: func(e Event) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	d.SetHosts([]string{"a", "b", "c", "d", "e", "f", "g"})
	window := func(lat map[string]time.Duration, n int) {
		for addr, l := range lat {
			for range n {
				d.RecordLatency(addr, l)
			}
		}
		clk.Advance(time.Second)
		d.EjectedCount() // ends the window
	}
	ms := time.Millisecond
	lat := map[string]time.Duration{"a": 10 * ms, "b": 11 * ms, "c": 9 * ms, "d": 20 * ms, "e": 50 * ms, "f": 60 * ms}
	window(lat, 10)
	d.RecordLatency("g", 500*ms) // one answer: below the volume, not judged
	check := func(want map[string]bool) {
		t.Helper()
		for _, h := range []string{"a", "b", "c", "d", "e", "f", "g"} {
			if got := d.Ejected(h); got != want[h] {
				t.Fatalf("%s ejected=%v, want %v (events %+v)", h, got, want[h], events)
			}
		}
	}
	// 7 hosts × 20 % = 1 may be ejected: f (slowest) goes, e is held back.
	check(map[string]bool{"f": true})
	if len(events) != 1 || events[0].Reason != ReasonLatency || events[0].Duration != 30*time.Second {
		t.Fatalf("events %+v, want one latency ejection of 30s", events)
	}
	// While f is out, e is still 3× the median and the cap still holds.
	window(lat, 10)
	check(map[string]bool{"f": true})
	// f returns after 30s and, still slow, is ejected again for 60s.
	clk.Advance(29 * time.Second)
	check(map[string]bool{})
	events = nil
	window(lat, 10)
	check(map[string]bool{"f": true})
	if len(events) != 1 || events[0].Addr != "f" || events[0].Duration != 60*time.Second {
		t.Fatalf("events %+v, want f ejected for 60s", events)
	}
	// Disabled by a negative factor.
	d2, err := New(Config{LatencyFactor: -1}, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	d2.SetHosts([]string{"a", "b", "c"})
	for range 10 {
		d2.RecordLatency("a", ms)
		d2.RecordLatency("b", ms)
		d2.RecordLatency("c", time.Second)
	}
	clk.Advance(2 * time.Second)
	if d2.EjectedCount() != 0 {
		t.Fatal("latency ejection with a negative factor")
	}
}
