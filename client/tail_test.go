package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/vigil-obs/vigil/client/balance"
)

// The tail scenario of issue #17, over real loopback sockets: three HTTP
// instances whose handler sleeps tailBase, one of them possibly slower.
const (
	tailBase = 2 * time.Millisecond
	tailSlow = 10 * tailBase
	// tailFlip is how long the alternating instance stays slow, then fast.
	tailFlip = 500 * time.Millisecond
)

// tailServer is one loopback instance with a settable latency.
type tailServer struct {
	srv   *httptest.Server
	addr  string
	delay atomic.Int64 // nanoseconds
	hits  atomic.Int64
}

func (s *tailServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	time.Sleep(time.Duration(s.delay.Load()))
	_, _ = io.WriteString(w, "ok") // a failed write fails the call measured
}

// tailFleet is three instances; the last one is the one made slow.
type tailFleet struct {
	inst [3]*tailServer
}

func newTailFleet() *tailFleet {
	f := &tailFleet{}
	for i := range f.inst {
		s := &tailServer{}
		s.delay.Store(int64(tailBase))
		s.srv = httptest.NewServer(s)
		s.addr = s.srv.Listener.Addr().String()
		f.inst[i] = s
	}
	return f
}

func (f *tailFleet) close() {
	for _, s := range f.inst {
		s.srv.Close()
	}
}

func (f *tailFleet) hits() int64 {
	return f.inst[0].hits.Load() + f.inst[1].hits.Load() + f.inst[2].hits.Load()
}

func (f *tailFleet) target() string {
	return staticTarget(f.inst[0].addr, f.inst[1].addr, f.inst[2].addr)
}

// tailScenario says what the last instance does during a run.
type tailScenario string

const (
	tailHealthy     tailScenario = "healthy"
	tailOneSlow     tailScenario = "one_10x_slow"
	tailAlternating tailScenario = "one_alternating"
)

// tailResult is what one run measured, from the callers' side.
type tailResult struct {
	calls     int
	errors    int
	p50, p99  time.Duration
	slowShare float64 // share of attempts the last instance received
}

// runTail drives concurrency closed-loop callers through c for warm, then
// measures for dur. The scenario's slow instance is set up before the
// warm-up, so the measured window sees a balancer that has had time to
// learn, as a long-running caller would.
func runTail(c *Client, f *tailFleet, sc tailScenario, concurrency int, warm, dur time.Duration) tailResult {
	slow := f.inst[2]
	stop := make(chan struct{})
	var flipper sync.WaitGroup
	switch sc {
	case tailOneSlow:
		slow.delay.Store(int64(tailSlow))
	case tailAlternating:
		slow.delay.Store(int64(tailSlow))
		flipper.Go(func() {
			t := time.NewTicker(tailFlip)
			defer t.Stop()
			fast := false
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					fast = !fast
					if fast {
						slow.delay.Store(int64(tailBase))
					} else {
						slow.delay.Store(int64(tailSlow))
					}
				}
			}
		})
	}
	hc := c.HTTPClient()
	var measuring atomic.Bool
	var mu sync.Mutex
	var lat []time.Duration
	var res tailResult
	deadline := time.Now().Add(warm + dur)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			var mine []time.Duration
			var errs int
			for time.Now().Before(deadline) {
				start := time.Now()
				resp, err := hc.Get("http://svc/x")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				took := time.Since(start)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errs++
					continue
				}
				mine = append(mine, took)
			}
			mu.Lock()
			lat = append(lat, mine...)
			res.errors += errs
			mu.Unlock()
		})
	}
	time.Sleep(warm)
	hits0, slow0 := f.hits(), slow.hits.Load()
	measuring.Store(true)
	wg.Wait()
	hits, slowHits := f.hits()-hits0, slow.hits.Load()-slow0
	close(stop)
	flipper.Wait()
	slow.delay.Store(int64(tailBase))
	slices.Sort(lat)
	res.calls = len(lat)
	if res.calls > 0 {
		res.p50 = lat[res.calls/2]
		res.p99 = lat[min(res.calls-1, res.calls*99/100)]
	}
	if hits > 0 {
		res.slowShare = float64(slowHits) / float64(hits)
	}
	return res
}

// tailPolicy is one balancer configuration under comparison.
type tailPolicy struct {
	name string
	cfg  func(ServiceConfig) ServiceConfig
}

// The three named policies run without latency ejection, so they show the
// balancer alone; "default" is the zero ServiceConfig (P2C-EWMA with latency
// ejection).
var tailPolicies = []tailPolicy{
	{"round_robin", func(sc ServiceConfig) ServiceConfig {
		sc.Balancer.Policy, sc.Outlier.LatencyFactor = balance.RoundRobin, -1
		return sc
	}},
	{"least_request", func(sc ServiceConfig) ServiceConfig {
		sc.Balancer.Policy, sc.Outlier.LatencyFactor = balance.LeastRequest, -1
		return sc
	}},
	{"p2c_ewma", func(sc ServiceConfig) ServiceConfig {
		sc.Balancer.Policy, sc.Outlier.LatencyFactor = balance.P2CEWMA, -1
		return sc
	}},
	{"default", func(sc ServiceConfig) ServiceConfig { return sc }},
}

// newTailClient builds and runs a client for "svc" over the fleet; stop ends
// it.
func newTailClient(f *tailFleet, p tailPolicy) (c *Client, stop func() error, err error) {
	c, err = New(Config{Services: map[string]ServiceConfig{"svc": p.cfg(ServiceConfig{Target: f.target()})}}, Options{})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return c, func() error {
		cancel()
		err := <-done
		return errors.Join(err, c.Close())
	}, nil
}

// BenchmarkTail is issue #17's table over real loopback sockets: p50, p99
// and the share of calls answered by the third instance, for each policy, at
// 2, 8 and 32 closed-loop callers, with all instances healthy (the baseline,
// measured in the same run), one instance 10× slower, and one instance
// alternating between 10× slower and healthy every tailFlip. Every run gets a
// fresh client. Run it once:
//
//	go test -run '^$' -bench BenchmarkTail -benchtime 1x ./
//
// It prints the table to stdout (about 70 s on 2 cores).
func BenchmarkTail(b *testing.B) {
	const warm, dur = 1500 * time.Millisecond, 1500 * time.Millisecond
	f := newTailFleet()
	defer f.close()
	type key struct {
		policy      string
		concurrency int
	}
	for b.Loop() {
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "scenario\tpolicy\tcallers\tcalls\terrors\tp50 ms\tp99 ms\tp99/healthy\tshare to 3rd\t\n")
		healthy := map[key]time.Duration{}
		for _, sc := range []tailScenario{tailHealthy, tailOneSlow, tailAlternating} {
			for _, p := range tailPolicies {
				for _, n := range []int{2, 8, 32} {
					c, stop, err := newTailClient(f, p)
					if err != nil {
						b.Fatal(err)
					}
					r := runTail(c, f, sc, n, warm, dur)
					if err := stop(); err != nil {
						b.Fatal(err)
					}
					k := key{p.name, n}
					if sc == tailHealthy {
						healthy[k] = r.p99
					}
					ratio := 0.0
					if h := healthy[k]; h > 0 {
						ratio = float64(r.p99) / float64(h)
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f×\t%.2f %%\t\n", sc, p.name, n, r.calls, r.errors,
						float64(r.p50)/1e6, float64(r.p99)/1e6, ratio, 100*r.slowShare)
				}
			}
		}
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}
