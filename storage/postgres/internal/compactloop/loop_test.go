package compactloop

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPassMetrics drives passes by hand: results are counted by outcome,
// what a pass moved and wrote is added, and the lag is how long the oldest
// raw window has been due.
func TestPassMetrics(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	var next Pass
	var nextErr error
	var befores []time.Time
	spec := Spec{
		Signal: "test", Window: 2 * time.Hour,
		Moved: Counter{Name: "things", Help: "h"}, Bytes: Counter{Name: "bytes", Help: "h"},
		LagHelp: "h", RunsHelp: "h", Done: "compacted",
		Compact: func(_ context.Context, before time.Time) (Pass, error) {
			befores = append(befores, before)
			return next, nextErr
		},
		Oldest: func(context.Context) (time.Time, bool, error) {
			// Ended 2 h 30 min ago: due for 90 min with a 1 h delay.
			return now.Add(-4*time.Hour - 30*time.Minute), true, nil
		},
	}
	reg := prometheus.NewRegistry()
	l, err := New(spec, Config{}, Options{Registerer: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	next = Pass{Windows: 2, Moved: 10, Bytes: 100, Duration: time.Second}
	l.pass(ctx)
	next, nextErr = Pass{Skipped: true}, nil
	l.pass(ctx)
	next, nextErr = Pass{}, errors.New("boom")
	l.pass(ctx)
	for result, want := range map[string]float64{"ok": 1, "skipped": 1, "error": 1} {
		if got := testutil.ToFloat64(l.runs.WithLabelValues(result)); got != want {
			t.Errorf("runs{result=%q} = %v, want %v", result, got, want)
		}
	}
	if got := testutil.ToFloat64(l.moved); got != 10 {
		t.Errorf("moved = %v, want 10", got)
	}
	if got := testutil.ToFloat64(l.bytes); got != 100 {
		t.Errorf("bytes = %v, want 100", got)
	}
	if got := testutil.ToFloat64(l.lag); got != 90*60 {
		t.Errorf("lag = %v s, want 5400", got)
	}
	if !befores[0].Equal(now.Add(-time.Hour)) {
		t.Errorf("compacted before %v, want the default delay of 1 h", befores[0])
	}
	if _, err := New(spec, Config{}, Options{Registerer: reg}); err == nil {
		t.Error("a second loop registered the same metrics")
	}
}
