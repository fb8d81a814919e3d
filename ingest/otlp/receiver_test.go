package otlp

import (
	"context"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/internal/inflight"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{name: "default", mutate: func(*Config) {}},
		{name: "grpc only", mutate: func(c *Config) { c.HTTPAddr = "" }},
		{name: "zero sizes take defaults", mutate: func(c *Config) { c.MaxRequestBytes, c.RetryAfter, c.ShutdownTimeout = 0, 0, 0 }},
		{name: "no transport", mutate: func(c *Config) { c.GRPCAddr, c.HTTPAddr = "", "" }, wantErr: "grpc_addr and http_addr are both empty"},
		{name: "negative size", mutate: func(c *Config) { c.MaxRequestBytes = -1 }, wantErr: "max_request_bytes -1 is outside"},
		{name: "size too large", mutate: func(c *Config) { c.MaxRequestBytes = math.MaxInt32 + 1 }, wantErr: "max_request_bytes 2147483648 is outside"},
		{name: "negative retry", mutate: func(c *Config) { c.RetryAfter = -time.Second }, wantErr: "retry_after -1s is negative"},
		{name: "negative shutdown", mutate: func(c *Config) { c.ShutdownTimeout = -time.Second }, wantErr: "shutdown_timeout -1s is negative"},
		{name: "negative read timeout", mutate: func(c *Config) { c.ReadTimeout = -time.Second }, wantErr: "read_timeout -1s is negative"},
		{name: "negative idle timeout", mutate: func(c *Config) { c.IdleTimeout = -time.Second }, wantErr: "idle_timeout -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	consumer := ingest.TraceConsumerFunc(func(context.Context, ptrace.Traces) error { return nil })
	small, err := inflight.New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		opts    Options
		wantErr string
	}{
		{name: "invalid config", cfg: Config{}, opts: Options{Traces: consumer}, wantErr: "both empty"},
		{name: "no consumer", cfg: Config{HTTPAddr: "127.0.0.1:0"}, wantErr: "no consumer set"},
		{name: "grpc address busy", cfg: Config{GRPCAddr: busy.Addr().String()}, opts: Options{Traces: consumer}, wantErr: "listen grpc"},
		{name: "http address busy", cfg: Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: busy.Addr().String()}, opts: Options{Traces: consumer}, wantErr: "listen http"},
		{name: "bad address", cfg: Config{HTTPAddr: "127.0.0.1:99999"}, opts: Options{Traces: consumer}, wantErr: "listen http"},
		{name: "budget smaller than a request", cfg: Config{HTTPAddr: "127.0.0.1:0", MaxRequestBytes: 1 << 20}, opts: Options{Traces: consumer, Budget: small},
			wantErr: "in-flight budget of 1048576 bytes cannot hold one request of max_request_bytes 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cfg, tt.opts)
			if err == nil {
				_ = r.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSingleTransport(t *testing.T) {
	consumer := ingest.TraceConsumerFunc(func(context.Context, ptrace.Traces) error { return nil })
	for _, cfg := range []Config{{GRPCAddr: "127.0.0.1:0"}, {HTTPAddr: "127.0.0.1:0"}} {
		r, err := New(cfg, Options{Traces: consumer}) // nil logger, metrics and auth
		if err != nil {
			t.Fatal(err)
		}
		if (r.GRPCAddr() == "") != (cfg.GRPCAddr == "") || (r.HTTPAddr() == "") != (cfg.HTTPAddr == "") {
			t.Errorf("config %+v bound grpc %q http %q", cfg, r.GRPCAddr(), r.HTTPAddr())
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func TestCloseWithoutRun(t *testing.T) {
	r, err := New(Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}, Options{Traces: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{r.GRPCAddr(), r.HTTPAddr()}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("address %s still bound after Close: %v", a, err)
		}
		ln.Close()
	}
}

func TestRunTwice(t *testing.T) {
	r, err := New(Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}, Options{Traces: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatalf("Run with a cancelled context = %v, want nil", err)
	}
	if err := r.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already run") {
		t.Fatalf("second Run = %v", err)
	}
}

// blockingConsumer blocks every call until release is closed or the
// request's context ends.
type blockingConsumer struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newBlockingConsumer() *blockingConsumer {
	return &blockingConsumer{entered: make(chan struct{}), release: make(chan struct{})}
}

func (c *blockingConsumer) ConsumeTraces(ctx context.Context, _ ptrace.Traces) error {
	c.once.Do(func() { close(c.entered) })
	select {
	case <-c.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestRunDrains checks that cancelling Run lets requests in flight finish
// within the shutdown timeout, and that Run refuses new connections and
// returns only afterwards.
func TestRunDrains(t *testing.T) {
	for _, transport := range []string{"grpc", "http"} {
		t.Run(transport, func(t *testing.T) {
			consumer := newBlockingConsumer()
			r, err := New(Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ShutdownTimeout: 10 * time.Second}, Options{Traces: consumer})
			if err != nil {
				t.Fatal(err)
			}
			b := &bundle{r: r}
			ctx, cancel := context.WithCancel(context.Background())
			runDone := make(chan error, 1)
			go func() { runDone <- r.Run(ctx) }()

			reqDone := make(chan error, 1)
			go func() {
				if transport == "grpc" {
					_, err := b.grpcClient(t).Export(context.Background(), newRequest("a"))
					reqDone <- err
					return
				}
				req, _ := http.NewRequest(http.MethodPost, "http://"+r.HTTPAddr()+"/v1/traces", strings.NewReader(string(mustProto(t, newRequest("a")))))
				req.Header.Set("Content-Type", contentTypeProto)
				resp, err := httpClient(t).Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = status.Errorf(codes.Unknown, "status %d", resp.StatusCode)
					}
				}
				reqDone <- err
			}()
			<-consumer.entered
			cancel()
			select {
			case err := <-runDone:
				t.Fatalf("Run returned %v with a request in flight", err)
			case <-time.After(100 * time.Millisecond):
			}
			close(consumer.release)
			if err := <-reqDone; err != nil {
				t.Fatalf("request in flight failed: %v", err)
			}
			select {
			case err := <-runDone:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after the request finished")
			}
			if c, err := net.DialTimeout("tcp", r.HTTPAddr(), time.Second); err == nil {
				c.Close()
				t.Fatal("HTTP address still accepts connections after Run returned")
			}
		})
	}
}

// TestRunShutdownBound checks that a request stuck in the consumer does
// not hold Run beyond ShutdownTimeout.
func TestRunShutdownBound(t *testing.T) {
	consumer := newBlockingConsumer()
	r, err := New(Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ShutdownTimeout: 200 * time.Millisecond}, Options{Traces: consumer})
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{r: r}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- r.Run(ctx) }()
	reqDone := make(chan error, 1)
	go func() {
		_, err := b.grpcClient(t).Export(context.Background(), newRequest("a"))
		reqDone <- err
	}()
	<-consumer.entered
	start := time.Now()
	cancel()
	select {
	case err := <-runDone:
		if err == nil || !strings.Contains(err.Error(), "requests still running after 200ms") {
			t.Fatalf("Run = %v, want the forced stop reported", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Run took %s to return", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := <-reqDone; status.Code(err) == codes.OK {
		t.Fatal("stuck request succeeded")
	}
}
