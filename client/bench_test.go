package client

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/vigil-obs/vigil/client/retry"
)

// BenchmarkOverhead compares a call through the client (discovery, P2C-EWMA,
// ejection and circuit bookkeeping, retry budget, spans and metrics with
// no-op providers) with the same call through a plain http.Client, on
// loopback, in the same run.
func BenchmarkOverhead(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok") // a client gone away fails its own call
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	call := func(b *testing.B, hc *http.Client, url string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
	b.Run("plain", func(b *testing.B) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr}
		b.ReportAllocs()
		for b.Loop() {
			call(b, hc, "http://"+addr+"/x")
		}
	})
	for _, v := range []struct {
		name string
		sc   ServiceConfig
	}{
		{"vigil", ServiceConfig{Target: "static:///" + addr}},
		// The same without a per-attempt timeout, which costs a context and
		// a timer per attempt.
		{"vigil_no_attempt_timeout", ServiceConfig{Target: "static:///" + addr, Retry: RetryConfig{PerAttemptTimeout: -1}}},
	} {
		b.Run(v.name, func(b *testing.B) {
			c, err := New(Config{Services: map[string]ServiceConfig{"svc": v.sc}}, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- c.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					b.Error(err)
				}
			}()
			hc := c.HTTPClient()
			call(b, hc, "http://svc/x") // wait for discovery outside the timing
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				call(b, hc, "http://svc/x")
			}
		})
	}
}

// BenchmarkOutageAmplification measures load amplification during a total
// outage: every instance answers 503 and each call may be tried three times.
// It reports attempts per logical call with and without the retry budget
// (defaults: 20 % of requests plus 3 per second over 10 s).
func BenchmarkOutageAmplification(b *testing.B) {
	var hits atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	var addrs []string
	for range 3 {
		srv := httptest.NewServer(handler)
		defer srv.Close()
		addrs = append(addrs, srv.Listener.Addr().String())
	}
	for _, tc := range []struct {
		name   string
		budget retry.BudgetConfig
	}{
		{name: "no_budget", budget: retry.BudgetConfig{Disabled: true}},
		{name: "budget", budget: retry.BudgetConfig{}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			sc := quietHealth(ServiceConfig{Target: staticTarget(addrs...),
				Retry: RetryConfig{MaxAttempts: 3, Backoff: fastRetry, Budget: tc.budget}})
			c, err := New(Config{Services: map[string]ServiceConfig{"svc": sc}}, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- c.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					b.Error(err)
				}
			}()
			hc := c.HTTPClient()
			get := func() {
				resp, err := hc.Get("http://svc/x")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
			get()
			hits.Store(0)
			calls := 0
			b.ResetTimer()
			for b.Loop() {
				get()
				calls++
			}
			b.ReportMetric(float64(hits.Load())/float64(calls), "attempts/call")
		})
	}
}
