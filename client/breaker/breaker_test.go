package breaker

import (
	"errors"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/client/internal/fakeclock"
)

// step is one action against a breaker in a scenario.
type step struct {
	calls    int           // number of calls to make (default 1)
	fail     bool          // outcome of each call
	took     time.Duration // clock advance between Allow and Done
	advance  time.Duration // clock advance before the calls
	rejected bool          // Allow is expected to fail for every call
	want     State         // state after the step
}

func TestBreakerStateMachine(t *testing.T) {
	base := Config{WindowSize: 10, MinimumCalls: 4, FailureRateThreshold: 50, SlowCallDuration: time.Second, OpenDuration: 10 * time.Second, HalfOpenCalls: 2}
	timeBased := base
	timeBased.Window = TimeWindow
	timeBased.WindowSize = 5
	slow := base
	slow.SlowCallRateThreshold = 50
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{
			name: "stays closed below minimum calls",
			cfg:  base,
			steps: []step{
				{calls: 3, fail: true, want: Closed},
			},
		},
		{
			name: "opens at failure rate once minimum reached",
			cfg:  base,
			steps: []step{
				{calls: 2, fail: false, want: Closed},
				{calls: 1, fail: true, want: Closed},
				{calls: 1, fail: true, want: Open}, // 2 of 4 failed = 50 %
				{calls: 3, rejected: true, want: Open},
			},
		},
		{
			name: "all failures open",
			cfg:  base,
			steps: []step{
				{calls: 4, fail: true, want: Open},
			},
		},
		{
			name: "below threshold stays closed",
			cfg:  base,
			steps: []step{
				{calls: 7, fail: false, want: Closed},
				{calls: 3, fail: true, want: Closed}, // 30 %
			},
		},
		{
			name: "open to half-open after open duration, probes close it",
			cfg:  base,
			steps: []step{
				{calls: 4, fail: true, want: Open},
				{advance: 9 * time.Second, calls: 1, rejected: true, want: Open},
				{advance: time.Second, calls: 1, fail: false, want: HalfOpen},
				{calls: 1, fail: false, want: Closed},
				{calls: 3, fail: true, want: Closed}, // window was reset
			},
		},
		{
			name: "failed probes reopen",
			cfg:  base,
			steps: []step{
				{calls: 4, fail: true, want: Open},
				{advance: 10 * time.Second, calls: 1, fail: true, want: HalfOpen},
				{calls: 1, fail: false, want: Open}, // 1 of 2 failed = 50 %
				{calls: 1, rejected: true, want: Open},
			},
		},
		{
			name: "slow calls open the circuit",
			cfg:  slow,
			steps: []step{
				{calls: 2, took: 2 * time.Second, want: Closed},
				{calls: 2, took: 10 * time.Millisecond, want: Open}, // 2 of 4 slow = 50 %
			},
		},
		{
			name: "time window expires failures",
			cfg:  timeBased,
			steps: []step{
				{calls: 3, fail: true, want: Closed},
				{advance: 6 * time.Second, calls: 3, fail: false, want: Closed},
				{calls: 1, fail: true, want: Closed}, // 1 of 4 in window
			},
		},
		{
			name: "time window opens within window",
			cfg:  timeBased,
			steps: []step{
				{calls: 2, fail: true, want: Closed},
				{advance: 2 * time.Second, calls: 2, fail: true, want: Open},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := fakeclock.New(time.Unix(1_000_000, 0))
			b, err := New(tt.cfg, Options{Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				clk.Advance(s.advance)
				n := s.calls
				if n == 0 {
					n = 1
				}
				for j := 0; j < n; j++ {
					p, err := b.Allow()
					if s.rejected {
						if !errors.Is(err, ErrOpen) {
							t.Fatalf("step %d call %d: Allow err = %v, want ErrOpen", i, j, err)
						}
						continue
					}
					if err != nil {
						t.Fatalf("step %d call %d: Allow: %v", i, j, err)
					}
					clk.Advance(s.took)
					p.Done(s.fail)
				}
				if got := b.State(); got != s.want {
					t.Fatalf("step %d: state = %v, want %v", i, got, s.want)
				}
			}
		})
	}
}

func TestBreakerHalfOpenLimitsProbes(t *testing.T) {
	clk := fakeclock.New(time.Unix(0, 0))
	var transitions []string
	b, err := New(Config{WindowSize: 4, MinimumCalls: 4, OpenDuration: time.Second, HalfOpenCalls: 2},
		Options{Clock: clk, OnStateChange: func(from, to State) { transitions = append(transitions, from.String()+">"+to.String()) }})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		p, _ := b.Allow()
		p.Done(true)
	}
	clk.Advance(time.Second)
	p1, err1 := b.Allow()
	p2, err2 := b.Allow()
	_, err3 := b.Allow()
	if err1 != nil || err2 != nil {
		t.Fatalf("probes rejected: %v %v", err1, err2)
	}
	var oe *OpenError
	if !errors.As(err3, &oe) || oe.State != HalfOpen {
		t.Fatalf("third probe err = %v, want half-open OpenError", err3)
	}
	p2.Release()
	p3, err := b.Allow()
	if err != nil {
		t.Fatalf("released slot not reusable: %v", err)
	}
	p1.Done(false)
	p3.Done(false)
	if b.State() != Closed {
		t.Fatalf("state = %v, want closed", b.State())
	}
	want := []string{"closed>open", "open>half_open", "half_open>closed"}
	if len(transitions) != len(want) {
		t.Fatalf("transitions = %v, want %v", transitions, want)
	}
	for i := range want {
		if transitions[i] != want[i] {
			t.Fatalf("transitions = %v, want %v", transitions, want)
		}
	}
}

func TestBreakerIgnoresStalePermits(t *testing.T) {
	clk := fakeclock.New(time.Unix(0, 0))
	b, _ := New(Config{WindowSize: 2, MinimumCalls: 2, OpenDuration: time.Second, HalfOpenCalls: 1}, Options{Clock: clk})
	stale, _ := b.Allow() // issued while closed
	for range 2 {
		p, _ := b.Allow()
		p.Done(true)
	}
	clk.Advance(time.Second)
	if b.State() != HalfOpen {
		t.Fatalf("state = %v", b.State())
	}
	stale.Done(false) // must not count as the probe
	if b.State() != HalfOpen {
		t.Fatalf("stale permit changed state to %v", b.State())
	}
}

func TestBreakerDisabled(t *testing.T) {
	b, _ := New(Config{Disabled: true, WindowSize: 1, MinimumCalls: 1}, Options{})
	for range 10 {
		p, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		p.Done(true)
	}
	if b.State() != Closed {
		t.Fatal("disabled breaker opened")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "defaults", cfg: Config{}},
		{name: "bad window", cfg: Config{Window: "sliding"}, wantErr: true},
		{name: "negative size", cfg: Config{WindowSize: -1}, wantErr: true},
		{name: "rate above 100", cfg: Config{FailureRateThreshold: 101}, wantErr: true},
		{name: "negative slow rate", cfg: Config{SlowCallRateThreshold: -5}, wantErr: true},
		{name: "negative open duration", cfg: Config{OpenDuration: -time.Second}, wantErr: true},
		{name: "huge time window", cfg: Config{Window: TimeWindow, WindowSize: 7200}, wantErr: true},
		{name: "negative half-open", cfg: Config{HalfOpenCalls: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}
