package window

import (
	"testing"
	"time"
)

func TestSliding(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name  string
		adds  []time.Duration // offsets from t0, each adds 1 to counter 0
		at    time.Duration
		want0 int64
	}{
		{name: "empty", at: 0, want0: 0},
		{name: "same bucket", adds: []time.Duration{0, 100 * time.Millisecond}, at: 500 * time.Millisecond, want0: 2},
		{name: "within window", adds: []time.Duration{0, 2 * time.Second, 4 * time.Second}, at: 4 * time.Second, want0: 3},
		{name: "oldest expired", adds: []time.Duration{0, 2 * time.Second, 4 * time.Second}, at: 5 * time.Second, want0: 2},
		{name: "all expired", adds: []time.Duration{0, time.Second}, at: time.Minute, want0: 0},
		{name: "clock backwards counts in newest", adds: []time.Duration{3 * time.Second, time.Second}, at: 3 * time.Second, want0: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := New(5, time.Second, 2)
			for _, a := range tt.adds {
				w.Add(t0.Add(a), 0, 1)
				w.Add(t0.Add(a), 1, 10)
			}
			if got := w.Sum(t0.Add(tt.at), 0); got != tt.want0 {
				t.Fatalf("Sum(0) = %d, want %d", got, tt.want0)
			}
			if got := w.Sum(t0.Add(tt.at), 1); got != 10*tt.want0 {
				t.Fatalf("Sum(1) = %d, want %d", got, 10*tt.want0)
			}
		})
	}
}

func TestSlidingReset(t *testing.T) {
	t0 := time.Unix(0, 0)
	w := New(3, time.Second, 1)
	w.Add(t0, 0, 5)
	w.Reset()
	if got := w.Sum(t0, 0); got != 0 {
		t.Fatalf("Sum after Reset = %d", got)
	}
	w.Add(t0, 0, 1)
	if got := w.Sum(t0, 0); got != 1 {
		t.Fatalf("Sum = %d, want 1", got)
	}
}
