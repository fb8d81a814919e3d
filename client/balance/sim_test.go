package balance

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The simulation runs callers against instances in virtual time: each of
// simCallers closed-loop callers sends a request as soon as its previous one
// completes; each instance serves simWorkers requests at once and queues the
// rest; service times are log-normal around the instance's mean. The real
// Endpoint and Balancer code does the picking and learning, on the virtual
// clock, so the figures are deterministic and cost no wall-clock latency.
const (
	simCallers = 8
	simWorkers = 4
	simWarmup  = 1000
)

type simInstance struct {
	ep      *Endpoint
	mean    time.Duration
	busy    int
	queue   []*simRequest
	slowOne bool
}

type simRequest struct {
	inst   *simInstance
	issued time.Duration
	done   time.Duration
}

type simEvents []*simRequest

func (h simEvents) Len() int           { return len(h) }
func (h simEvents) Less(i, j int) bool { return h[i].done < h[j].done }
func (h simEvents) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *simEvents) Push(x any)        { *h = append(*h, x.(*simRequest)) }
func (h *simEvents) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type simResult struct {
	p50, p99  time.Duration
	slowShare float64
}

// simulate runs n requests (after a warm-up) and reports latency percentiles
// and the share of requests served by the slow instance.
func simulate(policy Policy, means []time.Duration, n int, seed uint64) simResult {
	rnd := rand.New(rand.NewPCG(seed, seed+1))
	// Every policy the benchmark names is valid.
	bal, _ := New(Config{Policy: policy}, rand.NewPCG(seed+2, seed+3))
	cfg := EWMAConfig{}.WithDefaults()
	epoch := time.Unix(0, 0)
	var insts []*simInstance
	var eps []*Endpoint
	fastest := slices.Min(means)
	for i, m := range means {
		in := &simInstance{ep: NewEndpoint(fmt.Sprintf("10.0.0.%d:80", i+1), 1), mean: m, slowOne: m > fastest}
		insts = append(insts, in)
		eps = append(eps, in.ep)
	}
	bal.Update(eps)
	byEP := map[*Endpoint]*simInstance{}
	for _, in := range insts {
		byEP[in.ep] = in
	}
	events := &simEvents{}
	start := func(in *simInstance, r *simRequest, now time.Duration) {
		in.busy++
		svc := time.Duration(float64(in.mean) * math.Exp(rnd.NormFloat64()*0.25))
		r.done = now + svc
		heap.Push(events, r)
	}
	issue := func(now time.Duration) {
		ep := bal.Pick(epoch.Add(now), Request{}, func(*Endpoint) bool { return true })
		in := byEP[ep]
		ep.Begin()
		r := &simRequest{inst: in, issued: now}
		if in.busy < simWorkers {
			start(in, r, now)
		} else {
			in.queue = append(in.queue, r)
		}
	}
	for range simCallers {
		issue(0)
	}
	lat := make([]time.Duration, 0, n)
	slow := 0
	for completed := 0; completed < n+simWarmup; completed++ {
		r := heap.Pop(events).(*simRequest)
		in, now := r.inst, r.done
		in.busy--
		in.ep.Finish()
		in.ep.Observe(cfg, epoch.Add(now), now-r.issued, false)
		if completed >= simWarmup {
			lat = append(lat, now-r.issued)
			if in.slowOne {
				slow++
			}
		}
		if len(in.queue) > 0 {
			next := in.queue[0]
			in.queue = in.queue[1:]
			start(in, next, now)
		}
		issue(now)
	}
	slices.Sort(lat)
	return simResult{
		p50:       lat[len(lat)/2],
		p99:       lat[len(lat)*99/100],
		slowShare: float64(slow) / float64(len(lat)),
	}
}

var (
	healthyFleet = []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}
	slowFleet    = []time.Duration{time.Millisecond, time.Millisecond, 10 * time.Millisecond}
)

// BenchmarkSlowInstance simulates three instances, one 10× slower, for each
// policy, and an all-healthy fleet as the baseline. Each iteration is one
// simulated request; the reported figures cover all of them.
func BenchmarkSlowInstance(b *testing.B) {
	cases := []struct {
		name   string
		policy Policy
		fleet  []time.Duration
	}{
		{"all_healthy/p2c_ewma", P2CEWMA, healthyFleet},
		{"one_slow/round_robin", RoundRobin, slowFleet},
		{"one_slow/least_request", LeastRequest, slowFleet},
		{"one_slow/p2c_ewma", P2CEWMA, slowFleet},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			r := simulate(c.policy, c.fleet, max(b.N, 1000), 42)
			b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99_ms")
			b.ReportMetric(r.slowShare, "slow_share")
		})
	}
}

// TestSimulationP2CKeepsTail checks the target on a fixed run: with one
// instance 10× slower, P2C-EWMA's p99 stays within 1.5× of the all-healthy
// p99, while round robin's does not.
func TestSimulationP2CKeepsTail(t *testing.T) {
	const n = 100_000
	healthy := simulate(P2CEWMA, healthyFleet, n, 7)
	p2c := simulate(P2CEWMA, slowFleet, n, 7)
	rr := simulate(RoundRobin, slowFleet, n, 7)
	t.Logf("healthy p99 %v; p2c p99 %v share %.4f; rr p99 %v share %.4f", healthy.p99, p2c.p99, p2c.slowShare, rr.p99, rr.slowShare)
	if float64(p2c.p99) > 1.5*float64(healthy.p99) {
		t.Fatalf("p2c_ewma p99 %v exceeds 1.5 × healthy p99 %v", p2c.p99, healthy.p99)
	}
	if float64(rr.p99) < 3*float64(healthy.p99) {
		t.Fatalf("round robin p99 %v unexpectedly close to healthy %v: the simulation is not exercising the slow instance", rr.p99, healthy.p99)
	}
}

func BenchmarkPick(b *testing.B) {
	for _, p := range []Policy{RoundRobin, WeightedRoundRobin, LeastRequest, P2CEWMA, RingHash} {
		b.Run(string(p), func(b *testing.B) {
			bal, _ := New(Config{Policy: p}, rand.NewPCG(1, 1))
			var eps []*Endpoint
			for i := range 10 {
				eps = append(eps, NewEndpoint(fmt.Sprintf("10.0.0.%d:80", i), 1+i%3))
			}
			bal.Update(eps)
			now := time.Now()
			req := Request{Hash: HashKey("k"), HasHash: p == RingHash}
			b.ReportAllocs()
			for b.Loop() {
				bal.Pick(now, req, func(*Endpoint) bool { return true })
			}
		})
	}
}
