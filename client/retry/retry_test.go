package retry

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/client/internal/fakeclock"
)

func TestBackoffCeiling(t *testing.T) {
	b := Backoff{Base: 10 * time.Millisecond, Max: 70 * time.Millisecond}
	tests := []struct {
		retry int
		want  time.Duration
	}{
		{0, 10 * time.Millisecond},
		{1, 10 * time.Millisecond},
		{2, 20 * time.Millisecond},
		{3, 40 * time.Millisecond},
		{4, 70 * time.Millisecond},
		{50, 70 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := b.Ceiling(tt.retry); got != tt.want {
			t.Errorf("Ceiling(%d) = %v, want %v", tt.retry, got, tt.want)
		}
	}
}

func TestBackoffFullJitter(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	r := rand.New(rand.NewPCG(1, 2))
	var sum time.Duration
	const n = 10000
	lo, hi := time.Hour, time.Duration(0)
	for range n {
		d := b.Delay(3, r.Int64N)
		if d < 0 || d >= 400*time.Millisecond {
			t.Fatalf("Delay = %v outside [0, 400ms)", d)
		}
		sum += d
		lo, hi = min(lo, d), max(hi, d)
	}
	// Full jitter is uniform: the mean is half the ceiling, and the samples
	// span most of the range.
	mean := sum / n
	if mean < 190*time.Millisecond || mean > 210*time.Millisecond {
		t.Fatalf("mean delay = %v, want ≈200ms", mean)
	}
	if lo > 5*time.Millisecond || hi < 395*time.Millisecond {
		t.Fatalf("delays span [%v, %v], want ≈[0, 400ms)", lo, hi)
	}
}

func TestBudget(t *testing.T) {
	tests := []struct {
		name     string
		cfg      BudgetConfig
		requests int           // deposited at t0
		advance  time.Duration // before asking
		asks     int
		want     int // granted retries
	}{
		{name: "floor only", cfg: BudgetConfig{Ratio: 0.2, MinPerSecond: 1, Window: 10 * time.Second}, asks: 50, want: 10},
		{name: "ratio plus floor", cfg: BudgetConfig{Ratio: 0.2, MinPerSecond: 1, Window: 10 * time.Second}, requests: 100, asks: 100, want: 30},
		{name: "ratio exact", cfg: BudgetConfig{Ratio: 0.1, MinPerSecond: 0.0001, Window: 2 * time.Second}, requests: 1000, asks: 1000, want: 100},
		{name: "requests expire", cfg: BudgetConfig{Ratio: 0.5, MinPerSecond: 0.0001, Window: 5 * time.Second}, requests: 100, advance: 5 * time.Second, asks: 10, want: 0},
		{name: "within window", cfg: BudgetConfig{Ratio: 0.5, MinPerSecond: 0.0001, Window: 5 * time.Second}, requests: 100, advance: 4 * time.Second, asks: 100, want: 50},
		{name: "disabled", cfg: BudgetConfig{Disabled: true}, asks: 1000, want: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := fakeclock.New(time.Unix(100, 0))
			b, err := NewBudget(tt.cfg, clk)
			if err != nil {
				t.Fatal(err)
			}
			for range tt.requests {
				b.Deposit()
			}
			clk.Advance(tt.advance)
			got := 0
			for range tt.asks {
				if b.TryWithdraw() {
					got++
				}
			}
			if got != tt.want {
				t.Fatalf("granted %d retries, want %d", got, tt.want)
			}
		})
	}
}

// TestBudgetBoundsAmplification simulates a total outage: every request fails
// and would be retried twice. The budget must keep attempts per request within
// 1 + ratio + floor/requests.
func TestBudgetBoundsAmplification(t *testing.T) {
	clk := fakeclock.New(time.Unix(0, 0))
	b, err := NewBudget(BudgetConfig{}, clk) // defaults: 20 %, 3/s over 10 s
	if err != nil {
		t.Fatal(err)
	}
	const rps, seconds, maxRetries = 200, 60, 2
	attempts := 0
	for s := range seconds * rps {
		if s%rps == 0 && s > 0 {
			clk.Advance(time.Second)
		}
		b.Deposit()
		attempts++
		for range maxRetries {
			if !b.TryWithdraw() {
				break
			}
			attempts++
		}
	}
	amp := float64(attempts) / float64(seconds*rps)
	// Bound: 1 + 0.2 + 30 retries of floor per 10 s window over 2000 requests.
	if amp > 1.2+30.0/2000+0.001 {
		t.Fatalf("amplification %.3f exceeds the budget", amp)
	}
	if amp < 1.15 {
		t.Fatalf("amplification %.3f: budget grants far less than configured", amp)
	}
}

func TestBudgetValidate(t *testing.T) {
	for _, c := range []BudgetConfig{{Ratio: 2}, {Ratio: -0.1}, {MinPerSecond: -1}, {Window: 500 * time.Millisecond}, {Window: 2 * time.Hour}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want error", c)
		}
	}
	if err := (BudgetConfig{}).Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	if err := (Backoff{Base: time.Second, Max: time.Millisecond}).Validate(); err == nil {
		t.Error("max < base accepted")
	}
}
