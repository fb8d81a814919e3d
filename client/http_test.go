package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/client/balance"
	"github.com/vigil-obs/vigil/client/breaker"
	"github.com/vigil-obs/vigil/client/internal/fakeclock"
	"github.com/vigil-obs/vigil/client/outlier"
	"github.com/vigil-obs/vigil/client/retry"
)

// quietHealth turns ejection and circuits off so a test sees one mechanism.
func quietHealth(sc ServiceConfig) ServiceConfig {
	sc.Outlier.Disabled = true
	sc.Breaker.Disabled = true
	sc.InstanceBreaker.Disabled = true
	return sc
}

// fastRetry keeps backoff waits negligible on the real clock.
var fastRetry = retry.Backoff{Base: 100 * time.Microsecond, Max: time.Millisecond}

// shareOf runs calls with the given concurrency and returns the share of
// calls the instance at addr answered.
func shareOf(t *testing.T, c *Client, calls, concurrency int, addr string) float64 {
	t.Helper()
	var mu sync.Mutex
	got := 0
	var wg sync.WaitGroup
	per := calls / concurrency
	for range concurrency {
		wg.Go(func() {
			for range per {
				_, inst := mustGet(t, c)
				if inst == addr {
					mu.Lock()
					got++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return float64(got) / float64(per*concurrency)
}

// TestP2CRoutesAwayFromSlow: one of three instances is far slower. Round
// robin sends it a third of the calls; P2C over peak EWMA only the few needed
// to keep its estimate fresh. Shares, not times, are asserted.
func TestP2CRoutesAwayFromSlow(t *testing.T) {
	tests := []struct {
		policy   balance.Policy
		min, max float64
	}{
		{policy: balance.RoundRobin, min: 0.30, max: 0.37},
		{policy: balance.P2CEWMA, min: 0, max: 0.12},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy), func(t *testing.T) {
			fleet := startFleet(t, 3)
			for _, f := range fleet[:2] {
				f.delay.Store(int64(time.Millisecond))
			}
			// 60× slower, so that scheduling noise on a loaded machine
			// (which slows the fast instances too) keeps it ≥ 10× slower.
			fleet[2].delay.Store(int64(60 * time.Millisecond))
			sc := quietHealth(ServiceConfig{Target: fleetTarget(fleet), Balancer: balance.Config{Policy: tt.policy}})
			c := startClient(t, sc, Options{Rand: rand.NewPCG(1, 2)})
			share := shareOf(t, c, 150, 3, fleet[2].addr)
			if share < tt.min || share > tt.max {
				t.Fatalf("slow instance got %.3f of calls, want [%.2f, %.2f]", share, tt.min, tt.max)
			}
		})
	}
}

// TestFailingInstanceEjectedAndReadmitted drives ejection on an injected
// clock: consecutive 5xx eject the instance, which then gets no traffic
// until its ejection time has passed.
func TestFailingInstanceEjectedAndReadmitted(t *testing.T) {
	fleet := startFleet(t, 3)
	bad := fleet[0]
	bad.status.Store(http.StatusInternalServerError)
	clk := fakeclock.New(time.Now())
	sc := ServiceConfig{
		Target:          fleetTarget(fleet),
		Balancer:        balance.Config{Policy: balance.RoundRobin},
		Outlier:         outlier.Config{ConsecutiveServerErrors: 3, BaseEjectionTime: 30 * time.Second},
		Retry:           RetryConfig{MaxAttempts: 1},
		Breaker:         breaker.Config{Disabled: true},
		InstanceBreaker: breaker.Config{Disabled: true},
	}
	c := startClient(t, sc, Options{Clock: clk})
	for range 9 { // round robin: three calls reach the bad instance
		mustGet(t, c)
	}
	st, _ := c.Instances("svc")
	for _, s := range st {
		if s.Ejected != (s.Addr == bad.addr) {
			t.Fatalf("instance %s ejected=%v", s.Addr, s.Ejected)
		}
	}
	before := bad.hits.Load()
	for range 30 {
		if code, _ := mustGet(t, c); code != 200 {
			t.Fatalf("status %d while the bad instance is ejected", code)
		}
	}
	if bad.hits.Load() != before {
		t.Fatalf("ejected instance got %d calls", bad.hits.Load()-before)
	}
	bad.status.Store(0)
	clk.Advance(30 * time.Second)
	for range 30 {
		mustGet(t, c)
	}
	if got := bad.hits.Load() - before; got < 9 {
		t.Fatalf("readmitted instance got %d of 30 calls", got)
	}
}

// TestOpenBreakerFailsFast: once the service circuit opens, calls fail with a
// *CircuitOpenError without reaching any instance; after the open duration
// (on the injected clock) probes go through and close it.
func TestOpenBreakerFailsFast(t *testing.T) {
	fleet := startFleet(t, 2)
	for _, f := range fleet {
		f.status.Store(http.StatusServiceUnavailable)
	}
	clk := fakeclock.New(time.Now())
	sc := ServiceConfig{
		Target:          fleetTarget(fleet),
		Outlier:         outlier.Config{Disabled: true},
		InstanceBreaker: breaker.Config{Disabled: true},
		Breaker:         breaker.Config{WindowSize: 10, MinimumCalls: 5, OpenDuration: 10 * time.Second, HalfOpenCalls: 2},
		Retry:           RetryConfig{MaxAttempts: 1},
	}
	c := startClient(t, sc, Options{Clock: clk})
	for range 5 {
		if code, _ := mustGet(t, c); code != 503 {
			t.Fatalf("status %d", code)
		}
	}
	if s, _ := c.BreakerState("svc"); s != breaker.Open {
		t.Fatalf("breaker %v, want open", s)
	}
	hits := totalHits(fleet)
	for range 20 {
		_, _, err := get(t, c, http.MethodGet, nil)
		if !isCircuitOpen(err) {
			t.Fatalf("err = %v, want a CircuitOpenError", err)
		}
	}
	if totalHits(fleet) != hits {
		t.Fatal("an open circuit let calls through")
	}
	for _, f := range fleet {
		f.status.Store(0)
	}
	clk.Advance(10 * time.Second)
	for range 2 {
		if code, _ := mustGet(t, c); code != 200 {
			t.Fatalf("probe status %d", code)
		}
	}
	if s, _ := c.BreakerState("svc"); s != breaker.Closed {
		t.Fatalf("breaker %v after good probes, want closed", s)
	}
}

// TestInstanceBreakerIsolatesInstance: an instance whose own circuit is open
// gets no traffic while the others keep serving.
func TestInstanceBreakerIsolatesInstance(t *testing.T) {
	fleet := startFleet(t, 3)
	fleet[1].status.Store(http.StatusInternalServerError)
	clk := fakeclock.New(time.Now())
	sc := ServiceConfig{
		Target:          fleetTarget(fleet),
		Balancer:        balance.Config{Policy: balance.RoundRobin},
		Outlier:         outlier.Config{Disabled: true},
		Breaker:         breaker.Config{Disabled: true},
		InstanceBreaker: breaker.Config{WindowSize: 4, MinimumCalls: 4, OpenDuration: time.Minute},
		Retry:           RetryConfig{MaxAttempts: 1},
	}
	c := startClient(t, sc, Options{Clock: clk})
	for range 12 {
		mustGet(t, c)
	}
	st, _ := c.Instances("svc")
	for _, s := range st {
		if (s.Breaker == breaker.Open) != (s.Addr == fleet[1].addr) {
			t.Fatalf("instance %s breaker %v", s.Addr, s.Breaker)
		}
	}
	before := fleet[1].hits.Load()
	for range 20 {
		if code, _ := mustGet(t, c); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	if fleet[1].hits.Load() != before {
		t.Fatal("instance with an open circuit got traffic")
	}
}

// TestPanicThreshold: with two of three instances ejected (below the 50 %
// panic threshold), traffic spreads over all of them again.
func TestPanicThreshold(t *testing.T) {
	fleet := startFleet(t, 3)
	fleet[0].status.Store(500)
	fleet[1].status.Store(500)
	clk := fakeclock.New(time.Now())
	sc := ServiceConfig{
		Target:          fleetTarget(fleet),
		Balancer:        balance.Config{Policy: balance.RoundRobin},
		Outlier:         outlier.Config{ConsecutiveServerErrors: 1, MaxEjectionPercent: 100},
		Breaker:         breaker.Config{Disabled: true},
		InstanceBreaker: breaker.Config{Disabled: true},
		Retry:           RetryConfig{MaxAttempts: 1},
	}
	c := startClient(t, sc, Options{Clock: clk})
	for range 3 {
		mustGet(t, c)
	}
	before := fleet[0].hits.Load() + fleet[1].hits.Load()
	for range 30 {
		mustGet(t, c)
	}
	if got := fleet[0].hits.Load() + fleet[1].hits.Load() - before; got < 15 {
		t.Fatalf("panic mode sent only %d of 30 calls to the ejected instances", got)
	}
}

// TestRetryPolicy checks which calls are retried, and where.
func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		header   http.Header
		dead     bool // the first instance refuses connections
		wantHits int64
	}{
		{name: "idempotent GET retried on three instances", method: http.MethodGet, wantHits: 3},
		{name: "POST not retried", method: http.MethodPost, wantHits: 1},
		{name: "PATCH not retried", method: http.MethodPatch, wantHits: 1},
		{name: "POST with idempotency key retried", method: http.MethodPost, header: http.Header{"Idempotency-Key": {"k1"}}, wantHits: 3},
		{name: "POST retried after connect failure", method: http.MethodPost, dead: true, wantHits: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fleet := startFleet(t, 3)
			for _, f := range fleet {
				f.status.Store(http.StatusServiceUnavailable)
			}
			target := fleetTarget(fleet)
			if tt.dead {
				// Only the dead address and one live instance: round robin
				// starts at the lowest address, so order them explicitly.
				fleet = fleet[:1]
				target = staticTarget(deadAddr(t), fleet[0].addr)
			}
			sc := quietHealth(ServiceConfig{Target: target, Balancer: balance.Config{Policy: balance.RoundRobin},
				Retry: RetryConfig{MaxAttempts: 3, Backoff: fastRetry}})
			c := startClient(t, sc, Options{})
			code, _, err := get(t, c, tt.method, tt.header)
			if err != nil {
				t.Fatal(err)
			}
			if code != http.StatusServiceUnavailable {
				t.Fatalf("status %d", code)
			}
			if got := totalHits(fleet); got != tt.wantHits {
				t.Fatalf("%d attempts reached instances, want %d", got, tt.wantHits)
			}
			if !tt.dead && tt.wantHits == 3 {
				for _, f := range fleet {
					if f.hits.Load() != 1 {
						t.Fatalf("retries reused an instance: hits %d/%d/%d", fleet[0].hits.Load(), fleet[1].hits.Load(), fleet[2].hits.Load())
					}
				}
			}
		})
	}
}

// TestRetryBudgetCapsAttempts: in a total outage every call fails and would
// be tried three times; the budget keeps attempts near 1.2 per call.
func TestRetryBudgetCapsAttempts(t *testing.T) {
	const calls = 300
	tests := []struct {
		name     string
		budget   retry.BudgetConfig
		min, max float64 // attempts per call
	}{
		{name: "no budget", budget: retry.BudgetConfig{Disabled: true}, min: 3, max: 3},
		{name: "20 percent budget", budget: retry.BudgetConfig{Ratio: 0.2, MinPerSecond: 0.1}, min: 1.15, max: 1.2 + 2.0/calls},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fleet := startFleet(t, 3)
			for _, f := range fleet {
				f.status.Store(http.StatusServiceUnavailable)
			}
			sc := quietHealth(ServiceConfig{Target: fleetTarget(fleet),
				Retry: RetryConfig{MaxAttempts: 3, Backoff: fastRetry, Budget: tt.budget}})
			c := startClient(t, sc, Options{})
			for range calls {
				mustGet(t, c)
			}
			amp := float64(totalHits(fleet)) / calls
			if amp < tt.min || amp > tt.max {
				t.Fatalf("load amplification %.3f, want [%.3f, %.3f]", amp, tt.min, tt.max)
			}
		})
	}
}

// TestPerAttemptTimeout: an attempt that hangs is abandoned after the
// per-attempt timeout and the retry answers from another instance.
func TestPerAttemptTimeout(t *testing.T) {
	fleet := startFleet(t, 2)
	hung := fleet[0]
	if fleet[1].addr < hung.addr {
		hung = fleet[1]
	}
	hung.delay.Store(int64(5 * time.Second))
	sc := quietHealth(ServiceConfig{Target: fleetTarget(fleet), Balancer: balance.Config{Policy: balance.RoundRobin},
		Retry: RetryConfig{MaxAttempts: 2, PerAttemptTimeout: 100 * time.Millisecond, Backoff: fastRetry}})
	c := startClient(t, sc, Options{})
	code, inst := mustGet(t, c) // round robin starts at the lowest address: the hung one
	if code != 200 || inst == hung.addr {
		t.Fatalf("status %d from %s", code, inst)
	}
	if hung.hits.Load() != 1 {
		t.Fatalf("hung instance hits = %d", hung.hits.Load())
	}
}

// TestCallerDeadlineBoundsRetries: retries never outlive the caller's
// context.
func TestCallerDeadlineBoundsRetries(t *testing.T) {
	fleet := startFleet(t, 2)
	for _, f := range fleet {
		f.delay.Store(int64(5 * time.Second))
	}
	sc := quietHealth(ServiceConfig{Target: fleetTarget(fleet), Retry: RetryConfig{MaxAttempts: 5, PerAttemptTimeout: time.Second}})
	c := startClient(t, sc, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/x", nil)
	_, err := c.HTTPClient().Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if h := totalHits(fleet); h != 1 {
		t.Fatalf("%d attempts, want 1 (no time left for retries)", h)
	}
}

// TestHedging: a hedge to another instance answers while the first attempt
// is stuck.
func TestHedging(t *testing.T) {
	fleet := startFleet(t, 2)
	slow := fleet[0]
	if fleet[1].addr < slow.addr {
		slow = fleet[1]
	}
	slow.delay.Store(int64(5 * time.Second))
	sc := quietHealth(ServiceConfig{Target: fleetTarget(fleet), Balancer: balance.Config{Policy: balance.RoundRobin},
		Retry: RetryConfig{MaxAttempts: 2, HedgeDelay: 20 * time.Millisecond, PerAttemptTimeout: 10 * time.Second}})
	sc.Timeout = 20 * time.Second
	c := startClient(t, sc, Options{})
	code, inst := mustGet(t, c)
	if code != 200 || inst == slow.addr {
		t.Fatalf("status %d from %s, want the hedge's answer", code, inst)
	}
	// Only idempotent calls are hedged: with both instances slower than
	// the hedge delay, a GET reaches two instances and a POST one.
	fleet = startFleet(t, 2)
	for _, f := range fleet {
		f.delay.Store(int64(100 * time.Millisecond))
	}
	sc.Target = fleetTarget(fleet)
	c = startClient(t, sc, Options{})
	if _, _, err := get(t, c, http.MethodPost, nil); err != nil {
		t.Fatal(err)
	}
	if h := totalHits(fleet); h != 1 {
		t.Fatalf("POST reached %d instances, want 1", h)
	}
	mustGet(t, c)
	if h := totalHits(fleet); h != 3 {
		t.Fatalf("GET reached %d instances, want 2", h-1)
	}
}

// TestAffinity: with ring_hash, a header key keeps its instance.
func TestAffinity(t *testing.T) {
	fleet := startFleet(t, 4)
	sc := quietHealth(ServiceConfig{Target: fleetTarget(fleet), Balancer: balance.Config{Policy: balance.RingHash},
		Affinity: AffinityConfig{Header: "X-User-ID", ClientIP: true}})
	c := startClient(t, sc, Options{})
	owners := map[string]string{}
	for i := range 40 {
		user := []string{"alice", "bob", "carol", "dave"}[i%4]
		_, inst, err := get(t, c, http.MethodGet, http.Header{"X-User-Id": {user}})
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := owners[user]; ok && prev != inst {
			t.Fatalf("%s moved from %s to %s", user, prev, inst)
		}
		owners[user] = inst
	}
	// Client IP from X-Forwarded-For when the header is absent.
	_, first, _ := get(t, c, http.MethodGet, http.Header{"X-Forwarded-For": {"203.0.113.7, 10.0.0.1"}})
	for range 5 {
		if _, inst, _ := get(t, c, http.MethodGet, http.Header{"X-Forwarded-For": {"203.0.113.7"}}); inst != first {
			t.Fatalf("client IP moved from %s to %s", first, inst)
		}
	}
}

func TestUnknownServiceAndNoDiscovery(t *testing.T) {
	fleet := startFleet(t, 1)
	c, err := New(Config{Services: map[string]ServiceConfig{"svc": {Target: fleetTarget(fleet)}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://other/x", nil)
	if _, err := c.RoundTrip(req); !errors.Is(err, ErrUnknownService) {
		t.Fatalf("err = %v, want ErrUnknownService", err)
	}
	// Run was never started: the call waits for discovery until its
	// deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/x", nil)
	if _, err := c.RoundTrip(req); !errors.Is(err, ErrNoInstances) {
		t.Fatalf("err = %v, want ErrNoInstances", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := ServiceConfig{Target: "static:///127.0.0.1:1"}
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "minimal", cfg: Config{Services: map[string]ServiceConfig{"a": ok}}},
		{name: "no services", cfg: Config{}, wantErr: true},
		{name: "missing target", cfg: Config{Services: map[string]ServiceConfig{"a": {}}}, wantErr: true},
		{name: "bad name", cfg: Config{Services: map[string]ServiceConfig{"a:80": ok}}, wantErr: true},
		{name: "bad policy", cfg: Config{Services: map[string]ServiceConfig{"a": {Target: ok.Target, Balancer: balance.Config{Policy: "random"}}}}, wantErr: true},
		{name: "too many attempts", cfg: Config{Services: map[string]ServiceConfig{"a": {Target: ok.Target, Retry: RetryConfig{MaxAttempts: 50}}}}, wantErr: true},
		{name: "attempt timeout above call timeout", cfg: Config{Services: map[string]ServiceConfig{"a": {Target: ok.Target, Timeout: time.Second, Retry: RetryConfig{PerAttemptTimeout: 2 * time.Second}}}}, wantErr: true},
		{name: "bad grpc code", cfg: Config{Services: map[string]ServiceConfig{"a": {Target: ok.Target, Retry: RetryConfig{GRPCRetryCodes: []string{"BROKEN"}}}}}, wantErr: true},
		{name: "bad grpc method", cfg: Config{Services: map[string]ServiceConfig{"a": {Target: ok.Target, Retry: RetryConfig{GRPCIdempotentMethods: []string{"Get"}}}}}, wantErr: true},
		{name: "bad status", cfg: Config{Services: map[string]ServiceConfig{"a": {Target: ok.Target, Retry: RetryConfig{RetryOnStatus: []int{42}}}}}, wantErr: true},
		{name: "bad breaker", cfg: Config{Services: map[string]ServiceConfig{"a": {Target: ok.Target, Breaker: breaker.Config{FailureRateThreshold: 150}}}}, wantErr: true},
		{name: "bad outlier", cfg: Config{Services: map[string]ServiceConfig{"a": {Target: ok.Target, Outlier: outlier.Config{MaxEjectionPercent: 101}}}}, wantErr: true},
		{name: "bad budget", cfg: Config{Services: map[string]ServiceConfig{"a": {Target: ok.Target, Retry: RetryConfig{Budget: retry.BudgetConfig{Ratio: 3}}}}}, wantErr: true},
		{name: "bad panic threshold", cfg: Config{Services: map[string]ServiceConfig{"a": {Target: ok.Target, PanicThreshold: 120}}}, wantErr: true},
		{name: "bad target", cfg: Config{Services: map[string]ServiceConfig{"a": {Target: "dns:///"}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			if _, nerr := New(tt.cfg, Options{}); (nerr != nil) != tt.wantErr {
				t.Fatalf("New() = %v, wantErr %v", nerr, tt.wantErr)
			}
		})
	}
}
