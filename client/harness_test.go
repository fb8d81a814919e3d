package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeInstance is one loopback HTTP server whose latency and status tests
// change at will.
type fakeInstance struct {
	srv    *httptest.Server
	addr   string
	delay  atomic.Int64 // nanoseconds
	status atomic.Int32 // 0 means 200
	hits   atomic.Int64

	mu      sync.Mutex
	headers []http.Header
}

func (f *fakeInstance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	f.mu.Lock()
	f.headers = append(f.headers, r.Header.Clone())
	f.mu.Unlock()
	if d := time.Duration(f.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("X-Instance", f.addr)
	if s := f.status.Load(); s != 0 {
		w.WriteHeader(int(s))
	}
	_, _ = io.WriteString(w, f.addr) // a failed write fails the call under test
}

func (f *fakeInstance) lastHeader() http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.headers) == 0 {
		return nil
	}
	return f.headers[len(f.headers)-1]
}

// startFleet starts n instances on 127.0.0.1.
func startFleet(t *testing.T, n int) []*fakeInstance {
	t.Helper()
	fleet := make([]*fakeInstance, n)
	for i := range fleet {
		f := &fakeInstance{}
		f.srv = httptest.NewServer(f)
		f.addr = f.srv.Listener.Addr().String()
		fleet[i] = f
		t.Cleanup(f.srv.Close)
	}
	return fleet
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func staticTarget(addrs ...string) string { return "static:///" + strings.Join(addrs, ",") }

func fleetTarget(fleet []*fakeInstance) string {
	var addrs []string
	for _, f := range fleet {
		addrs = append(addrs, f.addr)
	}
	return staticTarget(addrs...)
}

// startClient builds a client for one service "svc" and runs it until the
// test ends.
func startClient(t *testing.T, sc ServiceConfig, opts Options) *Client {
	t.Helper()
	c, err := New(Config{Services: map[string]ServiceConfig{"svc": sc}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		c.Close()
	})
	return c
}

// get calls the service and returns the status and the answering instance.
func get(t *testing.T, c *Client, method string, hdr http.Header) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, "http://svc/x", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodGet {
		req.Body, req.GetBody, req.ContentLength = nil, nil, 0
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, string(body), nil
}

func mustGet(t *testing.T, c *Client) (int, string) {
	t.Helper()
	code, inst, err := get(t, c, http.MethodGet, nil)
	if err != nil {
		t.Fatal(err)
	}
	return code, inst
}

func totalHits(fleet []*fakeInstance) int64 {
	var n int64
	for _, f := range fleet {
		n += f.hits.Load()
	}
	return n
}

func isCircuitOpen(err error) bool {
	var ce *CircuitOpenError
	return errors.As(err, &ce) && errors.Is(err, ErrCircuitOpen)
}
