// Package receivertest holds what the tests of every receiver share: a
// trace consumer that records what it gets (or fails, or holds calls), a
// helper running a receiver for the length of a test, and counter and
// retry-hint readers. Only tests import it.
package receivertest

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
)

// Runner is a receiver: Run serves until ctx is cancelled.
type Runner interface {
	Run(ctx context.Context) error
}

// Run runs r until the test ends; then it cancels r and checks that Run
// returned nil within stopTimeout.
func Run(t testing.TB, r Runner, stopTimeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(stopTimeout):
			t.Errorf("Run did not return %s after cancel", stopTimeout)
		}
	})
}

// HTTPClient returns a client whose idle connections close with the test.
func HTTPClient(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// Counter returns the value of the counter name with exactly these
// labels in g, 0 when absent.
func Counter(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if len(got) != len(labels) {
				continue
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// RetryDelay returns the delay of the RetryInfo among the details of a
// gRPC status, and whether there is one.
func RetryDelay(details []any) (time.Duration, bool) {
	for _, d := range details {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// Traces is an ingest.TraceConsumer that keeps copies of what it got, or
// fails with the error given to SetErr. After Hold, calls wait until
// Release or until their context ends. Safe for concurrent use.
type Traces struct {
	mu    sync.Mutex
	calls int
	got   []ptrace.Traces
	err   error
	gate  chan struct{}
	held  int
}

// ConsumeTraces implements ingest.TraceConsumer.
func (c *Traces) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	c.mu.Lock()
	gate := c.gate
	if gate != nil {
		c.held++
	}
	c.mu.Unlock()
	if gate != nil {
		defer func() {
			c.mu.Lock()
			c.held--
			c.mu.Unlock()
		}()
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.err != nil {
		return c.err
	}
	cp := ptrace.NewTraces()
	td.CopyTo(cp)
	c.got = append(c.got, cp)
	return nil
}

// SetErr makes the following calls fail with err; nil makes them succeed.
func (c *Traces) SetErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

// Hold makes the following calls wait until Release.
func (c *Traces) Hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gate = make(chan struct{})
}

// Release lets the calls waiting since Hold proceed, and the following
// ones not wait.
func (c *Traces) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gate != nil {
		close(c.gate)
		c.gate = nil
	}
}

// Held returns the number of calls waiting for Release.
func (c *Traces) Held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}

// Calls returns the number of calls that got past the hold.
func (c *Traces) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// Got returns copies of the traces stored so far, in call order.
func (c *Traces) Got() []ptrace.Traces {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ptrace.Traces(nil), c.got...)
}

// SpanNames returns the names of the spans stored so far, in order.
func (c *Traces) SpanNames() []string {
	var names []string
	for _, td := range c.Got() {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				spans := sss.At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					names = append(names, spans.At(k).Name())
				}
			}
		}
	}
	return names
}
