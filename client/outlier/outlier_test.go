package outlier

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/client/internal/fakeclock"
)

type op struct {
	advance time.Duration
	addr    string
	results []Result
	// expectations after the op
	ejected []string // addresses that must be ejected
	healthy []string // addresses that must not be ejected
}

func repeat(r Result, n int) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func TestDetector(t *testing.T) {
	hosts := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	base := Config{ConsecutiveServerErrors: 3, ConsecutiveLocalFailures: 2, Interval: 10 * time.Second,
		BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 100 * time.Second, MaxEjectionPercent: 20,
		SuccessRateMinimumHosts: 5, SuccessRateVolume: 10, SuccessRateStdevFactor: 1.9}
	tests := []struct {
		name string
		cfg  Config
		ops  []op
	}{
		{
			name: "consecutive server errors eject",
			cfg:  base,
			ops: []op{
				{addr: "a", results: repeat(ServerError, 2), healthy: []string{"a"}},
				{addr: "a", results: []Result{ServerError}, ejected: []string{"a"}},
			},
		},
		{
			name: "success resets the streak",
			cfg:  base,
			ops: []op{
				{addr: "a", results: []Result{ServerError, ServerError, Success, ServerError, ServerError}, healthy: []string{"a"}},
			},
		},
		{
			name: "local failures count separately",
			cfg:  base,
			ops: []op{
				{addr: "a", results: []Result{LocalFailure, ServerError, LocalFailure}, healthy: []string{"a"}},
				{addr: "a", results: []Result{LocalFailure}, ejected: []string{"a"}},
			},
		},
		{
			name: "readmitted after base ejection time",
			cfg:  base,
			ops: []op{
				{addr: "a", results: repeat(ServerError, 3), ejected: []string{"a"}},
				{advance: 29 * time.Second, ejected: []string{"a"}},
				{advance: time.Second, healthy: []string{"a"}},
			},
		},
		{
			name: "ejection time grows per ejection and is capped",
			cfg:  base,
			ops: []op{
				{addr: "a", results: repeat(ServerError, 3), ejected: []string{"a"}},
				{advance: 30 * time.Second, healthy: []string{"a"}},
				{addr: "a", results: repeat(ServerError, 3), ejected: []string{"a"}},
				{advance: 59 * time.Second, ejected: []string{"a"}}, // second ejection: 60 s
				{advance: time.Second, healthy: []string{"a"}},
				{addr: "a", results: repeat(ServerError, 3), ejected: []string{"a"}},
				{advance: 89 * time.Second, ejected: []string{"a"}}, // third: 90 s
				{advance: time.Second, healthy: []string{"a"}},
				{addr: "a", results: repeat(ServerError, 3), ejected: []string{"a"}},
				{advance: 100 * time.Second, healthy: []string{"a"}}, // fourth: capped at 100 s
			},
		},
		{
			name: "multiplier decays while healthy",
			cfg:  base,
			ops: []op{
				{addr: "a", results: repeat(ServerError, 3), ejected: []string{"a"}},
				{advance: 30 * time.Second, healthy: []string{"a"}},
				// Healthy for 10 intervals: the multiplier is back to zero.
				{advance: 100 * time.Second, addr: "b", results: []Result{Success}},
				{addr: "a", results: repeat(ServerError, 3), ejected: []string{"a"}},
				{advance: 30 * time.Second, healthy: []string{"a"}},
			},
		},
		{
			name: "max ejection percent",
			cfg:  base, // 20 % of 10 = 2
			ops: []op{
				{addr: "a", results: repeat(ServerError, 3)},
				{addr: "b", results: repeat(ServerError, 3)},
				{addr: "c", results: repeat(ServerError, 3), ejected: []string{"a", "b"}, healthy: []string{"c"}},
			},
		},
		{
			name: "at least one is always ejectable",
			cfg:  func() Config { c := base; c.MaxEjectionPercent = 1; return c }(),
			ops: []op{
				{addr: "a", results: repeat(ServerError, 3), ejected: []string{"a"}},
				{addr: "b", results: repeat(ServerError, 3), healthy: []string{"b"}},
			},
		},
		{
			name: "disabled streak",
			cfg:  func() Config { c := base; c.ConsecutiveServerErrors = -1; return c }(),
			ops: []op{
				{addr: "a", results: repeat(ServerError, 50), healthy: []string{"a"}},
			},
		},
		{
			name: "disabled detector",
			cfg:  func() Config { c := base; c.Disabled = true; return c }(),
			ops: []op{
				{addr: "a", results: repeat(LocalFailure, 50), healthy: []string{"a"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := fakeclock.New(time.Unix(0, 0))
			d, err := New(tt.cfg, Options{Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			d.SetHosts(hosts)
			for i, o := range tt.ops {
				clk.Advance(o.advance)
				for _, r := range o.results {
					d.Record(o.addr, r)
				}
				for _, a := range o.ejected {
					if !d.Ejected(a) {
						t.Fatalf("op %d: %s not ejected", i, a)
					}
				}
				for _, a := range o.healthy {
					if d.Ejected(a) {
						t.Fatalf("op %d: %s ejected", i, a)
					}
				}
			}
		})
	}
}

func TestSuccessRateEjection(t *testing.T) {
	clk := fakeclock.New(time.Unix(0, 0))
	var events []Event
	d, err := New(Config{Interval: 10 * time.Second, SuccessRateMinimumHosts: 5, SuccessRateVolume: 100,
		ConsecutiveServerErrors: -1, MaxEjectionPercent: 50}, Options{Clock: clk, OnEvent: func(e Event) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for i := range 6 {
		hosts = append(hosts, fmt.Sprintf("h%d", i))
	}
	d.SetHosts(hosts)
	// h0 succeeds 70 % of the time, the others 99-100 %; no streak is long
	// enough to eject on its own.
	for i := range 200 {
		for j, h := range hosts {
			r := Success
			if j == 0 && i%10 < 3 {
				r = ServerError
			}
			if j == 1 && i%100 == 0 {
				r = ServerError
			}
			d.Record(h, r)
		}
	}
	if d.Ejected("h0") {
		t.Fatal("ejected before the interval ended")
	}
	clk.Advance(10 * time.Second)
	if !d.Ejected("h0") {
		t.Fatal("h0 not ejected by success-rate analysis")
	}
	for _, h := range hosts[1:] {
		if d.Ejected(h) {
			t.Fatalf("%s ejected", h)
		}
	}
	if len(events) != 1 || events[0].Reason != ReasonSuccessRate || events[0].Addr != "h0" {
		t.Fatalf("events = %+v", events)
	}
	clk.Advance(30 * time.Second)
	if d.Ejected("h0") {
		t.Fatal("h0 not readmitted")
	}
	if len(events) != 2 || events[1].Ejected {
		t.Fatalf("events = %+v, want a return event", events)
	}
}

func TestSuccessRateNeedsEnoughHosts(t *testing.T) {
	clk := fakeclock.New(time.Unix(0, 0))
	d, _ := New(Config{SuccessRateMinimumHosts: 5, SuccessRateVolume: 10, ConsecutiveServerErrors: -1, MaxEjectionPercent: 100}, Options{Clock: clk})
	d.SetHosts([]string{"a", "b", "c"})
	for i := range 100 {
		d.Record("a", Result(i%2)) // 50 %
		d.Record("b", Success)
		d.Record("c", Success)
	}
	clk.Advance(time.Minute)
	if d.Ejected("a") {
		t.Fatal("ejected with fewer than SuccessRateMinimumHosts instances")
	}
}

func TestSetHostsKeepsState(t *testing.T) {
	clk := fakeclock.New(time.Unix(0, 0))
	d, _ := New(Config{ConsecutiveServerErrors: 1, MaxEjectionPercent: 100}, Options{Clock: clk})
	d.SetHosts([]string{"a", "b"})
	d.Record("a", ServerError)
	d.SetHosts([]string{"a", "c"})
	if !d.Ejected("a") || d.EjectedCount() != 1 {
		t.Fatal("ejection lost across SetHosts")
	}
	d.SetHosts([]string{"c"})
	if d.EjectedCount() != 0 {
		t.Fatal("removed host still counted")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "defaults", cfg: Config{}},
		{name: "percent above 100", cfg: Config{MaxEjectionPercent: 120}, wantErr: true},
		{name: "max below base", cfg: Config{BaseEjectionTime: time.Minute, MaxEjectionTime: time.Second}, wantErr: true},
		{name: "negative factor", cfg: Config{SuccessRateStdevFactor: -1}, wantErr: true},
		{name: "negative interval", cfg: Config{Interval: -time.Second}, wantErr: true},
		{name: "latency quantile above 1", cfg: Config{LatencyQuantile: 1.5}, wantErr: true},
		{name: "negative latency quantile", cfg: Config{LatencyQuantile: -0.5}, wantErr: true},
		{name: "latency quantile 1", cfg: Config{LatencyQuantile: 1}},
		{name: "latency factor below 1", cfg: Config{LatencyFactor: 0.5}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}
