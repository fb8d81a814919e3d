package otlp

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vigil-obs/vigil/ingest"
)

// Defaults of Config. The addresses are loopback-only, as the OpenTelemetry
// Collector's are: exposing the receiver is an explicit choice.
const (
	DefaultGRPCAddr        = "localhost:4317"
	DefaultHTTPAddr        = "localhost:4318"
	DefaultMaxRequestBytes = 16 << 20
	DefaultRetryAfter      = time.Second
	DefaultShutdownTimeout = 5 * time.Second
)

// Config configures a Receiver.
type Config struct {
	// GRPCAddr is the TCP address of the OTLP/gRPC server; empty turns
	// gRPC off.
	GRPCAddr string `yaml:"grpc_addr"`
	// HTTPAddr is the TCP address of the OTLP/HTTP server; empty turns
	// HTTP off.
	HTTPAddr string `yaml:"http_addr"`
	// MaxRequestBytes bounds one request, both as received and after
	// decompression (gzip bombs are cut off at this size). Larger
	// requests are refused with HTTP 413 or gRPC RESOURCE_EXHAUSTED.
	// Zero means DefaultMaxRequestBytes (16 MiB); at most 2 GiB - 1.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// RetryAfter is the delay suggested to exporters when the pipeline
	// pushes back (HTTP Retry-After, rounded up to whole seconds; gRPC
	// RetryInfo). Zero means DefaultRetryAfter (1 s).
	RetryAfter time.Duration `yaml:"retry_after"`
	// ShutdownTimeout bounds how long Run waits for requests in flight
	// once its context is cancelled before it closes connections. Zero
	// means DefaultShutdownTimeout (5 s).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Limits bounds what one span may carry; see ingest.Limits. Zero
	// fields take ingest's defaults.
	Limits ingest.Limits `yaml:"limits"`
}

// DefaultConfig returns the configuration of a receiver listening on the
// standard OTLP ports of the loopback interface with default limits.
func DefaultConfig() Config {
	return Config{
		GRPCAddr:        DefaultGRPCAddr,
		HTTPAddr:        DefaultHTTPAddr,
		MaxRequestBytes: DefaultMaxRequestBytes,
		RetryAfter:      DefaultRetryAfter,
		ShutdownTimeout: DefaultShutdownTimeout,
		Limits:          ingest.DefaultLimits(),
	}
}

// Validate reports the first invalid setting: no transport enabled, or a
// negative or too large size, or a negative duration.
func (c Config) Validate() error {
	switch {
	case c.GRPCAddr == "" && c.HTTPAddr == "":
		return errors.New("otlp config: grpc_addr and http_addr are both empty, nothing to serve")
	case c.MaxRequestBytes < 0 || c.MaxRequestBytes > math.MaxInt32:
		return fmt.Errorf("otlp config: max_request_bytes %d is outside [0, %d]", c.MaxRequestBytes, math.MaxInt32)
	case c.RetryAfter < 0:
		return fmt.Errorf("otlp config: retry_after %s is negative", c.RetryAfter)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("otlp config: shutdown_timeout %s is negative", c.ShutdownTimeout)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	c.Limits = c.Limits.WithDefaults()
	return c
}
