package client

import (
	"context"
	"errors"
	"flag"
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

// The tail scenario over real loopback sockets: three HTTP instances whose
// handler sleeps tailBase, one of them possibly slower.
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
	calls  int
	errors int
	p50    time.Duration
	// p99 is the median of the measured windows' p99s, so that one window
	// hit by a stall of the whole machine does not decide the figure.
	p99       time.Duration
	slowShare float64 // share of attempts the last instance received
	ejected   int     // instances ejected at the end of the run
}

// runTail drives concurrency closed-loop callers through c for warm, then
// measures windows consecutive windows of win each, and counts the instances
// ejected at the end (an ejection outlasts a run, so every ejection of the
// run is still in force). The scenario's slow instance is set up before the
// warm-up, so the measured windows see a balancer that has had time to
// learn, as a long-running caller would.
func runTail(c *Client, f *tailFleet, sc tailScenario, concurrency int, warm, win time.Duration, windows int) tailResult {
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
	type sample struct {
		end  time.Time
		took time.Duration
	}
	var lat []sample
	var res tailResult
	measureStart := time.Now().Add(warm)
	deadline := measureStart.Add(time.Duration(windows) * win)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			var mine []sample
			var errs int
			for time.Now().Before(deadline) {
				start := time.Now()
				resp, err := hc.Get("http://svc/x")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				end := time.Now()
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errs++
					continue
				}
				mine = append(mine, sample{end, end.Sub(start)})
			}
			mu.Lock()
			lat = append(lat, mine...)
			res.errors += errs
			mu.Unlock()
		})
	}
	time.Sleep(time.Until(measureStart))
	hits0, slow0 := f.hits(), slow.hits.Load()
	measuring.Store(true)
	wg.Wait()
	hits, slowHits := f.hits()-hits0, slow.hits.Load()-slow0
	if st, err := c.Instances("svc"); err == nil {
		for _, s := range st {
			if s.Ejected {
				res.ejected++
			}
		}
	}
	close(stop)
	flipper.Wait()
	slow.delay.Store(int64(tailBase))
	p99 := func(d []time.Duration) time.Duration {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return d[min(len(d)-1, len(d)*99/100)]
	}
	all := make([]time.Duration, len(lat))
	per := make([][]time.Duration, windows)
	for i, s := range lat {
		all[i] = s.took
		w := min(max(int(s.end.Sub(measureStart)/win), 0), windows-1)
		per[w] = append(per[w], s.took)
	}
	res.calls = len(all)
	if res.calls > 0 {
		slices.Sort(all)
		res.p50 = all[res.calls/2]
		p99s := make([]time.Duration, windows)
		for i, w := range per {
			p99s[i] = p99(w)
		}
		slices.Sort(p99s)
		res.p99 = p99s[windows/2]
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

// tailOnly restricts BenchmarkTail to one policy, so that repeated passes of
// the one under study take a quarter of the time.
var tailOnly = flag.String("tail.policy", "", "BenchmarkTail: run only the named policy (round_robin, least_request, p2c_ewma or default); all when empty")

// selectedTailPolicies returns the policies BenchmarkTail runs.
func selectedTailPolicies() ([]tailPolicy, error) {
	if *tailOnly == "" {
		return tailPolicies, nil
	}
	for _, p := range tailPolicies {
		if p.name == *tailOnly {
			return []tailPolicy{p}, nil
		}
	}
	return nil, fmt.Errorf("-tail.policy %q: no such policy", *tailOnly)
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

// BenchmarkTail is the tail table over real loopback sockets: p50, p99 and
// the share of calls answered by the third instance, for each policy, at 2, 8
// and 32 closed-loop callers, with all instances healthy (the baseline), one
// instance 10× slower, and one instance alternating between 10× slower and
// healthy every tailFlip. Every run gets a fresh client. The healthy baseline
// of a policy and concurrency runs right before its two degraded runs, so
// that the ratio compares runs seconds apart on a machine whose load drifts;
// each run measures three 1 s windows after a 2.5 s warm-up (two latency
// windows: an instance often slow is ejected at the second) and reports the
// median of their p99s. Run it once:
//
//	go test -run '^$' -bench 'BenchmarkTail$' -benchtime 1x ./
//
// It prints the table to stdout (about 3.5 min on 2 cores; 50 s for one
// policy with -tail.policy).
func BenchmarkTail(b *testing.B) {
	const warm, win, windows = 2500 * time.Millisecond, time.Second, 3
	policies, err := selectedTailPolicies()
	if err != nil {
		b.Fatal(err)
	}
	f := newTailFleet()
	defer f.close()
	type key struct {
		sc          tailScenario
		policy      string
		concurrency int
	}
	scenarios := []tailScenario{tailHealthy, tailOneSlow, tailAlternating}
	callers := []int{2, 8, 32}
	for b.Loop() {
		results := map[key]tailResult{}
		for _, p := range policies {
			for _, n := range callers {
				for _, sc := range scenarios {
					c, stop, err := newTailClient(f, p)
					if err != nil {
						b.Fatal(err)
					}
					results[key{sc, p.name, n}] = runTail(c, f, sc, n, warm, win, windows)
					if err := stop(); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "scenario\tpolicy\tcallers\tcalls\terrors\tp50 ms\tp99 ms\tp99/healthy\tshare to 3rd\tejected\t\n")
		for _, sc := range scenarios {
			for _, p := range policies {
				for _, n := range callers {
					r := results[key{sc, p.name, n}]
					ratio := 0.0
					if h := results[key{tailHealthy, p.name, n}].p99; h > 0 {
						ratio = float64(r.p99) / float64(h)
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f×\t%.2f %%\t%d\t\n", sc, p.name, n, r.calls, r.errors,
						float64(r.p50)/1e6, float64(r.p99)/1e6, ratio, 100*r.slowShare, r.ejected)
				}
			}
		}
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// Recovery: how long a recovered instance takes to get its share back.
const (
	// recoveryWindow is the sliding window over which the share is taken.
	recoveryWindow = 250 * time.Millisecond
	// recoveryShare is the share, out of a fair 1/3, that counts as back.
	recoveryShare = 0.25
	// recoveryMax bounds the wait for either.
	recoveryMax = 120 * time.Second
)

// recoveryResult is what one recovery run measured.
type recoveryResult struct {
	ejectedAfter time.Duration // from the slowdown to the ejection; 0 if none
	firstCall    time.Duration // from the recovery to its first call
	back         time.Duration // from the recovery to a recoveryShare share
	ok           bool          // the share came back within recoveryMax
}

// runRecovery makes the last instance 10× slower, lets concurrency callers
// run until it is ejected (or for warm if it never is, as when the balancer
// sends it too few calls to judge), then makes it healthy again and samples
// every 5 ms the share of attempts it received over the last recoveryWindow.
func runRecovery(c *Client, f *tailFleet, concurrency int, warm time.Duration) recoveryResult {
	slow := f.inst[2]
	slow.delay.Store(int64(tailSlow))
	defer slow.delay.Store(int64(tailBase))
	hc := c.HTTPClient()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := hc.Get("http://svc/x")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	var res recoveryResult
	start := time.Now()
	for time.Since(start) < warm || (res.ejectedAfter == 0 && time.Since(start) < 2*warm) {
		if res.ejectedAfter == 0 {
			st, _ := c.Instances("svc")
			if slices.ContainsFunc(st, func(s InstanceStatus) bool { return s.Addr == slow.addr && s.Ejected }) {
				res.ejectedAfter = time.Since(start)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	slow.delay.Store(int64(tailBase))
	recovered := time.Now()
	slow0 := slow.hits.Load()
	type point struct {
		at        time.Time
		all, slow int64
	}
	var pts []point
	for now := recovered; now.Sub(recovered) < recoveryMax; now = time.Now() {
		p := point{now, f.hits(), slow.hits.Load()}
		pts = append(pts, p)
		if res.firstCall == 0 && p.slow > slow0 {
			res.firstCall = now.Sub(recovered)
		}
		i, _ := slices.BinarySearchFunc(pts, now.Add(-recoveryWindow), func(q point, t time.Time) int { return q.at.Compare(t) })
		if old := pts[i]; now.Sub(old.at) >= recoveryWindow*9/10 && p.all > old.all &&
			float64(p.slow-old.slow)/float64(p.all-old.all) >= recoveryShare {
			res.back, res.ok = now.Sub(recovered), true
			return res
		}
		time.Sleep(5 * time.Millisecond)
	}
	return res
}

// BenchmarkTailRecovery measures, over real loopback sockets and with the
// default configuration, how long an instance that was 10× slower takes to
// get a fair share of calls back once it is healthy again: the time from the
// recovery until its share of attempts over the last 250 ms reaches 25 %
// (a fair share is 33 %), at 2, 8 and 32 callers, also in decay periods
// (the EWMA decay time and outlier interval, both 10 s by default). Run it
// once:
//
//	go test -run '^$' -bench BenchmarkTailRecovery -benchtime 1x ./
//
// It prints a table to stdout (about 1.5 min: a first latency ejection lasts
// 30 s).
func BenchmarkTailRecovery(b *testing.B) {
	const warm = 1500 * time.Millisecond
	f := newTailFleet()
	defer f.close()
	decay := ServiceConfig{}.WithDefaults().Balancer.EWMA.DecayTime
	for b.Loop() {
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "policy\tcallers\tejected after ms\tfirst call after ms\tshare back after ms\tdecay periods\t\n")
		for _, n := range []int{2, 8, 32} {
			c, stop, err := newTailClient(f, tailPolicies[len(tailPolicies)-1])
			if err != nil {
				b.Fatal(err)
			}
			r := runRecovery(c, f, n, warm)
			if err := stop(); err != nil {
				b.Fatal(err)
			}
			ejected, back := "not ejected", fmt.Sprintf("> %d", recoveryMax.Milliseconds())
			if r.ejectedAfter > 0 {
				ejected = fmt.Sprint(r.ejectedAfter.Milliseconds())
			}
			first, periods := "—", "—"
			if r.firstCall > 0 {
				first = fmt.Sprint(r.firstCall.Milliseconds())
			}
			if r.ok {
				back = fmt.Sprint(r.back.Milliseconds())
				periods = fmt.Sprintf("%.2f", float64(r.back)/float64(decay))
			}
			fmt.Fprintf(tw, "default\t%d\t%s\t%s\t%s\t%s\t\n", n, ejected, first, back, periods)
		}
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}
