package balance

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

func all(*Endpoint) bool { return true }

func endpoints(weights ...int) []*Endpoint {
	eps := make([]*Endpoint, len(weights))
	for i, w := range weights {
		eps[i] = NewEndpoint(fmt.Sprintf("10.0.0.%d:80", i+1), w)
	}
	return eps
}

func newBalancer(t *testing.T, p Policy) Balancer {
	t.Helper()
	b, err := New(Config{Policy: p}, rand.NewPCG(7, 11))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEWMADecay(t *testing.T) {
	cfg := EWMAConfig{DecayTime: 10 * time.Second, FailurePenalty: time.Second}
	type sample struct {
		at     time.Duration
		rtt    time.Duration
		failed bool
	}
	tests := []struct {
		name    string
		samples []sample
		at      time.Duration
		want    time.Duration
	}{
		{name: "no samples", at: 0, want: 0},
		{name: "first sample taken as is", samples: []sample{{0, 100 * time.Millisecond, false}}, at: 0, want: 100 * time.Millisecond},
		{name: "idle estimate decays towards zero", samples: []sample{{0, 100 * time.Millisecond, false}}, at: 10 * time.Second, want: decayedBy(100*time.Millisecond, 1)},
		{name: "peak is believed at once", samples: []sample{{0, 10 * time.Millisecond, false}, {time.Millisecond, 500 * time.Millisecond, false}}, at: time.Millisecond, want: 500 * time.Millisecond},
		{name: "lower samples pull it down by elapsed time",
			samples: []sample{{0, 100 * time.Millisecond, false}, {10 * time.Second, 0, false}},
			at:      10 * time.Second,
			want:    decayedBy(100*time.Millisecond, 1)},
		{name: "failure counts as the penalty", samples: []sample{{0, time.Millisecond, true}}, at: 0, want: time.Second},
		{name: "slow failure counts as its latency", samples: []sample{{0, 3 * time.Second, true}}, at: 0, want: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEndpoint("a:1", 1)
			for _, s := range tt.samples {
				e.Begin()
				e.Finish()
				e.Observe(cfg, t0.Add(s.at), s.rtt, s.failed)
			}
			got := e.Latency(cfg, t0.Add(tt.at))
			if d := got - tt.want; d > time.Microsecond || d < -time.Microsecond {
				t.Fatalf("Latency = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEndpointCost(t *testing.T) {
	cfg := EWMAConfig{}
	e := NewEndpoint("a:1", 2)
	if c := e.Cost(cfg, t0); c != 0 {
		t.Fatalf("idle new endpoint cost = %v, want 0", c)
	}
	e.Begin()
	if c := e.Cost(cfg, t0); c < penalty {
		t.Fatalf("busy endpoint without samples cost = %v, want penalty", c)
	}
	e.Finish()
	e.Observe(cfg, t0, 10*time.Millisecond, false)
	e.Begin()
	e.Begin()
	// 10 ms × (2 + 1) / weight 2
	if c, want := e.Cost(cfg, t0), float64(15*time.Millisecond); math.Abs(c-want) > 1 {
		t.Fatalf("cost = %v, want %v", c, want)
	}
	e.Finish()
	if e.Outstanding() != 1 {
		t.Fatalf("outstanding = %d", e.Outstanding())
	}
}

func TestSmoothWeightedSequence(t *testing.T) {
	b := newBalancer(t, WeightedRoundRobin)
	eps := endpoints(5, 1, 1)
	b.Update(eps)
	var got []string
	for range 7 {
		got = append(got, strings.TrimSuffix(strings.TrimPrefix(b.Pick(t0, Request{}, all).Addr, "10.0.0."), ":80"))
	}
	// nginx's documented sequence for {a:5, b:1, c:1}.
	if want := "1 1 2 1 3 1 1"; strings.Join(got, " ") != want {
		t.Fatalf("sequence = %v, want %v", got, want)
	}
}

// TestWeightsRespected is a property test: for random weight vectors, smooth
// weighted round robin delivers each endpoint its share within 1 % of all
// picks (exactly, over whole cycles), and least-request keeps outstanding
// calls proportional to weight within one call per endpoint.
func TestWeightsRespected(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for trial := range 20 {
		n := 2 + r.IntN(6)
		weights := make([]int, n)
		total := 0
		for i := range weights {
			weights[i] = 1 + r.IntN(10)
			total += weights[i]
		}
		t.Run(fmt.Sprintf("%d/swrr/%v", trial, weights), func(t *testing.T) {
			b := newBalancer(t, WeightedRoundRobin)
			eps := endpoints(weights...)
			b.Update(eps)
			counts := map[*Endpoint]int{}
			// Not a whole number of cycles, so the tolerance matters.
			picks := total*200 + r.IntN(total)
			for range picks {
				counts[b.Pick(t0, Request{}, all)]++
			}
			for i, e := range eps {
				want := float64(weights[i]) / float64(total)
				got := float64(counts[e]) / float64(picks)
				if math.Abs(got-want) > 0.01 {
					t.Errorf("endpoint %d (weight %d): share %.4f, want %.4f ± 0.01", i, weights[i], got, want)
				}
			}
		})
		t.Run(fmt.Sprintf("%d/least_request/%v", trial, weights), func(t *testing.T) {
			b := newBalancer(t, LeastRequest)
			eps := endpoints(weights...)
			b.Update(eps)
			calls := total * 50
			for range calls {
				b.Pick(t0, Request{}, all).Begin()
			}
			for i, e := range eps {
				want := float64(calls) * float64(weights[i]) / float64(total)
				if math.Abs(float64(e.Outstanding())-want) > 1 {
					t.Errorf("endpoint %d (weight %d): %d outstanding, want %.1f ± 1", i, weights[i], e.Outstanding(), want)
				}
			}
		})
	}
}

func TestRoundRobinSkipsUnusable(t *testing.T) {
	b := newBalancer(t, RoundRobin)
	eps := endpoints(1, 1, 1)
	b.Update(eps)
	notSecond := func(e *Endpoint) bool { return e != eps[1] }
	var got []*Endpoint
	for range 4 {
		got = append(got, b.Pick(t0, Request{}, notSecond))
	}
	want := []*Endpoint{eps[0], eps[2], eps[0], eps[2]}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pick %d = %s, want %s", i, got[i].Addr, want[i].Addr)
		}
	}
}

func TestNoUsableEndpoint(t *testing.T) {
	none := func(*Endpoint) bool { return false }
	for _, p := range []Policy{RoundRobin, WeightedRoundRobin, LeastRequest, P2CEWMA, RingHash} {
		t.Run(string(p), func(t *testing.T) {
			b := newBalancer(t, p)
			if e := b.Pick(t0, Request{}, all); e != nil {
				t.Fatalf("empty balancer picked %s", e.Addr)
			}
			b.Update(endpoints(1, 2, 3))
			if e := b.Pick(t0, Request{Hash: 42, HasHash: true}, none); e != nil {
				t.Fatalf("picked unusable %s", e.Addr)
			}
		})
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	b := newBalancer(t, LeastRequest)
	eps := endpoints(1, 1, 1)
	b.Update(eps)
	eps[0].Begin()
	eps[0].Begin()
	eps[2].Begin()
	if e := b.Pick(t0, Request{}, all); e != eps[1] {
		t.Fatalf("picked %s, want the idle endpoint", e.Addr)
	}
}

// TestP2CAvoidsSlow: with one endpoint 10× slower, P2C picks it only when it
// is not compared with a faster one — never, once all have samples.
func TestP2CAvoidsSlow(t *testing.T) {
	b := newBalancer(t, P2CEWMA)
	eps := endpoints(1, 1, 1)
	b.Update(eps)
	cfg := EWMAConfig{}
	for i, rtt := range []time.Duration{10, 10, 100} {
		eps[i].Begin()
		eps[i].Finish()
		eps[i].Observe(cfg, t0, rtt*time.Millisecond, false)
	}
	counts := map[*Endpoint]int{}
	for range 3000 {
		counts[b.Pick(t0, Request{}, all)]++
	}
	if counts[eps[2]] != 0 {
		t.Fatalf("slow endpoint picked %d times", counts[eps[2]])
	}
	// The fast ones share evenly (each wins half of the comparisons they
	// are in; ties go to the first sampled).
	if math.Abs(float64(counts[eps[0]]-counts[eps[1]])) > 300 {
		t.Fatalf("fast endpoints unbalanced: %d vs %d", counts[eps[0]], counts[eps[1]])
	}
	// When the slow endpoint's peak has decayed for long enough it is
	// probed again.
	later := t0.Add(time.Minute)
	for i := range 2 {
		eps[i].Begin()
		eps[i].Finish()
		eps[i].Observe(cfg, later, 10*time.Millisecond, false)
	}
	seen := 0
	for range 3000 {
		if b.Pick(later, Request{}, all) == eps[2] {
			seen++
		}
	}
	if seen == 0 {
		t.Fatal("slow endpoint never retried after its estimate decayed")
	}
}

func TestP2CFewUsable(t *testing.T) {
	b := newBalancer(t, P2CEWMA)
	eps := endpoints(1, 1, 1, 1, 1, 1, 1, 1)
	b.Update(eps)
	only := func(e *Endpoint) bool { return e == eps[5] }
	for range 100 {
		if e := b.Pick(t0, Request{}, only); e != eps[5] {
			t.Fatalf("picked %v", e)
		}
	}
}

func ringOwners(t *testing.T, b Balancer, keys []uint64) map[uint64]string {
	t.Helper()
	out := make(map[uint64]string, len(keys))
	for _, k := range keys {
		out[k] = b.Pick(t0, Request{Hash: k, HasHash: true}, all).Addr
	}
	return out
}

// TestRingHashMovesFewKeys is the consistent-hashing property: adding the
// (N+1)-th endpoint moves at most 1/N of the keys, and only to the new one.
func TestRingHashMovesFewKeys(t *testing.T) {
	keys := make([]uint64, 20000)
	for i := range keys {
		keys[i] = HashKey(fmt.Sprintf("user-%d", i))
	}
	for _, n := range []int{3, 5, 10} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b := newBalancer(t, RingHash)
			eps := endpoints(make([]int, n+1)...)
			b.Update(eps[:n])
			before := ringOwners(t, b, keys)
			b.Update(eps)
			after := ringOwners(t, b, keys)
			moved := 0
			for _, k := range keys {
				if before[k] != after[k] {
					moved++
					if after[k] != eps[n].Addr {
						t.Fatalf("key moved between old endpoints: %s → %s", before[k], after[k])
					}
				}
			}
			frac := float64(moved) / float64(len(keys))
			if frac > 1/float64(n) {
				t.Fatalf("adding endpoint %d moved %.3f of keys, want ≤ %.3f", n+1, frac, 1/float64(n))
			}
			if frac < 0.5/float64(n+1) {
				t.Fatalf("new endpoint got only %.3f of keys", frac)
			}
		})
	}
}

// TestRingHashBoundedLoad: however skewed the keys, no endpoint's outstanding
// load exceeds ceil(c × (total + 1) × w / W) when it is picked.
func TestRingHashBoundedLoad(t *testing.T) {
	b, err := New(Config{Policy: RingHash, LoadFactor: 1.25}, rand.NewPCG(3, 3))
	if err != nil {
		t.Fatal(err)
	}
	eps := endpoints(1, 1, 2, 1, 3)
	b.Update(eps)
	totalWeight := 8.0
	r := rand.New(rand.NewPCG(9, 9))
	var inflight []*Endpoint
	for i := range 20000 {
		// 90 % of calls carry one hot key.
		key := HashKey("hot")
		if r.IntN(10) == 0 {
			key = HashKey(fmt.Sprint(r.Int()))
		}
		var total int64
		for _, e := range eps {
			total += e.Outstanding()
		}
		e := b.Pick(t0, Request{Hash: key, HasHash: true}, all)
		bound := int64(math.Ceil(1.25 * float64(total+1) * float64(e.Weight) / totalWeight))
		if e.Outstanding()+1 > bound {
			t.Fatalf("call %d: %s would hold %d > bound %d", i, e.Addr, e.Outstanding()+1, bound)
		}
		e.Begin()
		inflight = append(inflight, e)
		if len(inflight) > 40 || r.IntN(3) == 0 {
			j := r.IntN(len(inflight))
			inflight[j].Finish()
			inflight = append(inflight[:j], inflight[j+1:]...)
		}
	}
}

func TestRingHashAffinityAndFallback(t *testing.T) {
	b := newBalancer(t, RingHash)
	eps := endpoints(1, 1, 1, 1)
	b.Update(eps)
	key := HashKey("session-42")
	first := b.Pick(t0, Request{Hash: key, HasHash: true}, all)
	for range 10 {
		if e := b.Pick(t0, Request{Hash: key, HasHash: true}, all); e != first {
			t.Fatalf("key moved from %s to %s without a membership change", first.Addr, e.Addr)
		}
	}
	notFirst := func(e *Endpoint) bool { return e != first }
	if e := b.Pick(t0, Request{Hash: key, HasHash: true}, notFirst); e == nil || e == first {
		t.Fatalf("unusable owner not skipped: %v", e)
	}
	if e := b.Pick(t0, Request{}, all); e == nil {
		t.Fatal("no pick without a hash")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg     Config
		wantErr bool
	}{
		{Config{}, false},
		{Config{Policy: "random"}, true},
		{Config{LoadFactor: 0.5}, true},
		{Config{RingPoints: -1}, true},
		{Config{EWMA: EWMAConfig{DecayTime: -1}}, true},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("Validate(%+v) = %v, wantErr %v", tt.cfg, err, tt.wantErr)
		}
	}
}

// decayedBy returns d × e^-n.
func decayedBy(d time.Duration, n float64) time.Duration {
	return time.Duration(float64(d) * math.Exp(-n))
}
