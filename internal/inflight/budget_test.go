package inflight

import (
	"math"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// gather returns the value of each metric of reg by name.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			// The getters of the other kind return zero.
			out[f.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}

func TestNew(t *testing.T) {
	if _, err := New(-1, nil); err == nil {
		t.Error("New(-1) succeeded")
	}
	b, err := New(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Limit() != DefaultMaxBytes() {
		t.Errorf("New(0).Limit() = %d, want DefaultMaxBytes() %d", b.Limit(), DefaultMaxBytes())
	}
	reg := prometheus.NewRegistry()
	if _, err := New(1000, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(1000, reg); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
}

func TestDefaultMaxBytes(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	tests := []struct {
		memLimit int64
		want     int64
	}{
		{math.MaxInt64, FallbackMaxBytes},
		{4 << 30, 128 << 20},
		{8 << 30, 256 << 20},
		{1 << 30, MinDefaultMaxBytes},
		{100 << 20, MinDefaultMaxBytes},
	}
	for _, tt := range tests {
		debug.SetMemoryLimit(tt.memLimit)
		if got := DefaultMaxBytes(); got != tt.want {
			t.Errorf("memory limit %d: DefaultMaxBytes() = %d, want %d", tt.memLimit, got, tt.want)
		}
	}
}

func TestAcquireRelease(t *testing.T) {
	type op struct {
		acquire, release int64
		want             bool // of acquire
	}
	tests := []struct {
		name      string
		ops       []op
		wantInUse int64
		wantPeak  int64
	}{
		{"fits", []op{{acquire: 60, want: true}, {acquire: 40, want: true}}, 100, 100},
		{"over", []op{{acquire: 60, want: true}, {acquire: 41, want: false}}, 60, 60},
		{"zero when full", []op{{acquire: 100, want: true}, {acquire: 0, want: true}}, 100, 100},
		{"release makes room", []op{{acquire: 100, want: true}, {release: 30}, {acquire: 30, want: true}}, 100, 100},
		{"peak stays", []op{{acquire: 80, want: true}, {release: 80}, {acquire: 10, want: true}}, 10, 80},
		{"larger than the budget", []op{{acquire: 101, want: false}}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(100, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, o := range tt.ops {
				if o.release > 0 {
					b.Release(o.release)
					continue
				}
				if got := b.TryAcquire(o.acquire); got != o.want {
					t.Errorf("op %d: TryAcquire(%d) = %v, want %v", i, o.acquire, got, o.want)
				}
			}
			if b.InUse() != tt.wantInUse || b.Peak() != tt.wantPeak {
				t.Errorf("InUse %d Peak %d, want %d %d", b.InUse(), b.Peak(), tt.wantInUse, tt.wantPeak)
			}
		})
	}
}

func TestReleaseMoreThanHeldPanics(t *testing.T) {
	b, err := New(100, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.TryAcquire(10)
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	b.Release(11)
}

// TestConcurrentUseNeverExceedsLimit has goroutines grow and release
// reservations at random and checks the invariants the receivers rely on.
func TestConcurrentUseNeverExceedsLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, err := New(1<<20, reg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 2000 {
				res := b.Reserve()
				for range rng.IntN(8) {
					if !res.Grow(rng.Int64N(200 << 10)) {
						break
					}
					if in := b.InUse(); in > b.Limit() {
						t.Errorf("in use %d over the limit %d", in, b.Limit())
					}
				}
				res.Release()
			}
		})
	}
	wg.Wait()
	if b.InUse() != 0 {
		t.Errorf("InUse %d after every reservation was released", b.InUse())
	}
	if b.Peak() > b.Limit() || b.Peak() == 0 {
		t.Errorf("Peak %d, want in (0, %d]", b.Peak(), b.Limit())
	}
	m := gather(t, reg)
	if m["vigil_ingest_inflight_refused_total"] == 0 {
		t.Error("no refusal counted under contention")
	}
	if m["vigil_ingest_inflight_limit_bytes"] != 1<<20 || m["vigil_ingest_inflight_bytes"] != 0 {
		t.Errorf("metrics %v", m)
	}
}

func TestReservation(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, err := New(100, reg)
	if err != nil {
		t.Fatal(err)
	}
	res := b.Reserve()
	if !res.Grow(70) || res.Bytes() != 70 {
		t.Fatalf("Grow(70): holds %d", res.Bytes())
	}
	if got := gather(t, reg)["vigil_ingest_inflight_bytes"]; got != 70 {
		t.Errorf("gauge %v while 70 bytes are held", got)
	}
	if res.Grow(31) || res.Bytes() != 70 {
		t.Fatalf("Grow(31) over the budget: holds %d", res.Bytes())
	}
	if got := gather(t, reg)["vigil_ingest_inflight_refused_total"]; got != 1 {
		t.Errorf("refused counter %v, want 1", got)
	}
	res.Release()
	res.Release()
	if b.InUse() != 0 || res.Bytes() != 0 {
		t.Errorf("after Release: budget %d, reservation %d", b.InUse(), res.Bytes())
	}

	var none *Budget
	free := none.Reserve()
	if !free.Grow(math.MaxInt32) || free.Bytes() != math.MaxInt32 {
		t.Error("a reservation of a nil budget is limited")
	}
	free.Release()
}
