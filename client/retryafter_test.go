package client

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/client/internal/fakeclock"
)

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	tests := []struct {
		status int
		header string
		want   time.Duration
		ok     bool
	}{
		{503, "5", 5 * time.Second, true},
		{429, "0", 0, true},
		{429, now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{503, now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{503, "", 0, false},
		{503, "-3", 0, false},
		{503, "soon", 0, false},
		{502, "5", 0, false}, // only 429 and 503 carry a pause
	}
	for _, tt := range tests {
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
		if tt.header != "" {
			resp.Header.Set("Retry-After", tt.header)
		}
		got, ok := retryAfter(resp, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%d %q: got %v, %v; want %v, %v", tt.status, tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

// TestRetryAfterHonoured: an instance answers 503 or 429 with Retry-After
// once; the retry waits for the pause on the injected clock (not the much
// shorter backoff), and is not made when the pause would outlive the call.
func TestRetryAfterHonoured(t *testing.T) {
	start := time.Now().Truncate(time.Second) // HTTP-dates have whole seconds
	tests := []struct {
		name   string
		status int
		header string
		pause  time.Duration // 0: no retry expected
	}{
		{"503 seconds", http.StatusServiceUnavailable, "5", 5 * time.Second},
		{"429 date", http.StatusTooManyRequests, start.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
		{"beyond deadline", http.StatusServiceUnavailable, "60", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if hits.Add(1) == 1 {
					w.Header().Set("Retry-After", tt.header)
					w.WriteHeader(tt.status)
				}
				_, _ = io.WriteString(w, "ok") // a failed write fails the call under test
			}))
			t.Cleanup(srv.Close)
			clk := fakeclock.New(start)
			sc := quietHealth(ServiceConfig{
				Target:  staticTarget(srv.Listener.Addr().String()),
				Timeout: 30 * time.Second,
				Retry:   RetryConfig{RetryOnStatus: []int{429, 503}},
			})
			c := startClient(t, sc, Options{Clock: clk})
			codes := make(chan int, 1)
			go func() {
				code, _, err := get(t, c, http.MethodGet, nil)
				if err != nil {
					t.Error(err)
				}
				codes <- code
			}()
			if tt.pause == 0 {
				if code := <-codes; code != tt.status || hits.Load() != 1 {
					t.Fatalf("status %d after %d attempts; want %d after 1", code, hits.Load(), tt.status)
				}
				return
			}
			for clk.Waiters() == 0 {
				time.Sleep(time.Millisecond)
			}
			clk.Advance(tt.pause - time.Second)
			time.Sleep(20 * time.Millisecond) // a retry sent too early would land now
			if n := hits.Load(); n != 1 {
				t.Fatalf("%d attempts before the pause was over", n)
			}
			clk.Advance(time.Second)
			if code := <-codes; code != http.StatusOK || hits.Load() != 2 {
				t.Fatalf("status %d after %d attempts; want 200 after 2", code, hits.Load())
			}
		})
	}
}
