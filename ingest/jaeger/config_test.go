package jaeger

import (
	"net"
	"strings"
	"testing"

	"github.com/vigil-obs/vigil/internal/inflight"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"nothing enabled", func(c *Config) { *c = Config{} }, "nothing to serve"},
		{"negative queue", func(c *Config) { c.UDPQueueSize = -1 }, "udp_queue_size"},
		{"negative workers", func(c *Config) { c.UDPWorkers = -1 }, "udp_workers"},
		{"negative socket buffer", func(c *Config) { c.UDPSocketBufferBytes = -1 }, "udp_socket_buffer_bytes"},
		{"huge request", func(c *Config) { c.MaxRequestBytes = 1 << 40 }, "max_request_bytes"},
		{"negative retry", func(c *Config) { c.RetryAfter = -1 }, "retry_after"},
		{"negative shutdown", func(c *Config) { c.ShutdownTimeout = -1 }, "shutdown_timeout"},
		{"negative read timeout", func(c *Config) { c.ReadTimeout = -1 }, "read_timeout"},
		{"negative idle timeout", func(c *Config) { c.IdleTimeout = -1 }, "idle_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestNewOnlyEnabledTransports(t *testing.T) {
	b := setup(t, func(c *Config, _ *Options) { *c = Config{UDPBinaryAddr: "127.0.0.1:0", ZipkinAddr: "127.0.0.1:0"} })
	if b.r.UDPCompactAddr() != "" || b.r.HTTPAddr() != "" || b.r.GRPCAddr() != "" {
		t.Errorf("disabled transports bound: %q %q %q", b.r.UDPCompactAddr(), b.r.HTTPAddr(), b.r.GRPCAddr())
	}
	if b.r.UDPBinaryAddr() == "" || b.r.ZipkinAddr() == "" {
		t.Errorf("enabled transports not bound")
	}
}

func TestNewRefusesTooSmallBudget(t *testing.T) {
	small, err := inflight.New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := loopbackConfig()
	cfg.MaxRequestBytes = 1 << 20
	if _, err := New(cfg, Options{Traces: &recorder{}, Budget: small}); err == nil || !strings.Contains(err.Error(), "cannot hold one request") {
		t.Fatalf("New with a budget of one request: %v", err)
	}
}

func TestNewErrorsReleaseEverything(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := loopbackConfig()
	cfg.ZipkinAddr = busy.Addr().String()
	if _, err := New(cfg, Options{Traces: &recorder{}}); err == nil || !strings.Contains(err.Error(), "listen zipkin") {
		t.Fatalf("New with a busy port: %v", err)
	}
	if _, err := New(loopbackConfig(), Options{}); err == nil {
		t.Fatal("New without a consumer succeeded")
	}
	// Close without Run releases every socket.
	r, err := New(loopbackConfig(), Options{Traces: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	addr := r.HTTPAddr()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still bound after Close: %v", err)
	}
	ln.Close()
}
