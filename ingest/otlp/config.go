package otlp

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receiver"
)

// Defaults of Config. The addresses are loopback-only, as the OpenTelemetry
// Collector's are: exposing the receiver is an explicit choice. The other
// defaults are every receiver's.
const (
	DefaultGRPCAddr        = "localhost:4317"
	DefaultHTTPAddr        = "localhost:4318"
	DefaultMaxRequestBytes = receiver.DefaultMaxRequestBytes
	DefaultRetryAfter      = receiver.DefaultRetryAfter
	DefaultShutdownTimeout = receiver.DefaultShutdownTimeout
	DefaultReadTimeout     = receiver.DefaultReadTimeout
	DefaultIdleTimeout     = receiver.DefaultIdleTimeout
	// DefaultMaxConcurrentStreams is per gRPC connection: OTel SDK
	// exporters keep one export in flight, the Collector's exporters a
	// few (sending_queue.num_consumers); more streams wait in the client.
	DefaultMaxConcurrentStreams = receiver.DefaultMaxConcurrentStreams
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
	// ReadTimeout bounds the reading of one request: for HTTP from its
	// first byte to the end of its body (http.Server.ReadTimeout), for
	// gRPC from the stream's headers to the arrival of its message. A
	// client sending more slowly is cut off (HTTP 408 when cut during the
	// body, gRPC CANCELLED), so it cannot hold a connection and its bytes
	// for longer; waiting for the pipeline afterwards is not bounded by
	// it. Zero means DefaultReadTimeout (1 min).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout closes HTTP keep-alive connections idle for this long.
	// Zero means DefaultIdleTimeout (2 min).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxConcurrentStreams bounds the gRPC calls one connection may have
	// in progress; further calls wait in the client. Each may be
	// receiving a message of up to MaxRequestBytes, which the in-flight
	// budget only sees once it has arrived. Zero means
	// DefaultMaxConcurrentStreams (16).
	MaxConcurrentStreams uint32 `yaml:"max_concurrent_streams"`
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
		ReadTimeout:     DefaultReadTimeout,
		IdleTimeout:     DefaultIdleTimeout,
		Limits:          ingest.DefaultLimits(),

		MaxConcurrentStreams: DefaultMaxConcurrentStreams,
	}
}

// Validate reports the first invalid setting: no transport enabled, or a
// negative or too large size, or a negative duration. That the in-flight
// budget can hold one request of MaxRequestBytes is checked by New.
func (c Config) Validate() error {
	if c.GRPCAddr == "" && c.HTTPAddr == "" {
		return errors.New("otlp config: grpc_addr and http_addr are both empty, nothing to serve")
	}
	if err := c.transport().Validate(); err != nil {
		return fmt.Errorf("otlp config: %w", err)
	}
	return nil
}

// transport returns the settings the receiver shares with the others.
func (c Config) transport() receiver.Config {
	return receiver.Config{
		MaxRequestBytes: c.MaxRequestBytes, RetryAfter: c.RetryAfter, ShutdownTimeout: c.ShutdownTimeout,
		ReadTimeout: c.ReadTimeout, IdleTimeout: c.IdleTimeout, MaxConcurrentStreams: c.MaxConcurrentStreams,
	}
}

func (c Config) withDefaults() Config {
	t := c.transport().WithDefaults()
	c.MaxRequestBytes, c.RetryAfter, c.ShutdownTimeout = t.MaxRequestBytes, t.RetryAfter, t.ShutdownTimeout
	c.ReadTimeout, c.IdleTimeout, c.MaxConcurrentStreams = t.ReadTimeout, t.IdleTimeout, t.MaxConcurrentStreams
	c.Limits = c.Limits.WithDefaults()
	return c
}
