package jaeger

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigil-obs/vigil/ingest/internal/receiver"
)

// Defaults of Config. The addresses are Jaeger's and Zipkin's standard
// ports on the loopback interface: exposing a receiver is an explicit
// choice, as with the OTLP receiver. The limits and timeouts of HTTP and
// gRPC are every receiver's.
const (
	DefaultUDPCompactAddr  = "localhost:6831"
	DefaultUDPBinaryAddr   = "localhost:6832"
	DefaultHTTPAddr        = "localhost:14268"
	DefaultGRPCAddr        = "localhost:14250"
	DefaultZipkinAddr      = "localhost:9411"
	DefaultUDPQueueSize    = 1000
	DefaultUDPWorkers      = 16
	DefaultMaxRequestBytes = receiver.DefaultMaxRequestBytes
	DefaultRetryAfter      = receiver.DefaultRetryAfter
	DefaultShutdownTimeout = receiver.DefaultShutdownTimeout
	DefaultReadTimeout     = receiver.DefaultReadTimeout
	DefaultIdleTimeout     = receiver.DefaultIdleTimeout
	// DefaultMaxConcurrentStreams is per gRPC connection, as for the
	// OTLP receiver: more streams wait in the client.
	DefaultMaxConcurrentStreams = receiver.DefaultMaxConcurrentStreams
	// DefaultUDPSocketBufferBytes is the receive buffer asked for each
	// UDP socket: about 60 full-size datagrams, a burst of a few
	// milliseconds at line rate.
	DefaultUDPSocketBufferBytes = 4 << 20
)

// MaxDatagramBytes is the size of the buffers UDP datagrams are read into:
// the largest packet Jaeger clients and agents send (their
// max_packet_size). A longer datagram is cut by the kernel and counted as
// malformed (reason "truncated").
const MaxDatagramBytes = 65000

// Config configures a Receiver. Each address turns one transport on; an
// empty address turns it off.
type Config struct {
	// UDPCompactAddr is the UDP address of the Jaeger agent's compact
	// thrift port (6831). Like UDPBinaryAddr it accepts both encodings.
	UDPCompactAddr string `yaml:"udp_compact_addr"`
	// UDPBinaryAddr is the UDP address of the Jaeger agent's binary
	// thrift port (6832).
	UDPBinaryAddr string `yaml:"udp_binary_addr"`
	// HTTPAddr is the TCP address of the Jaeger collector's HTTP thrift
	// endpoint (14268, POST /api/traces).
	HTTPAddr string `yaml:"http_addr"`
	// GRPCAddr is the TCP address of the Jaeger collector's gRPC API
	// (14250, jaeger.api_v2.CollectorService).
	GRPCAddr string `yaml:"grpc_addr"`
	// ZipkinAddr is the TCP address of the Zipkin v2 HTTP API (9411,
	// POST /api/v2/spans).
	ZipkinAddr string `yaml:"zipkin_addr"`

	// UDPQueueSize bounds the datagrams read but not yet decoded, per UDP
	// port. When it is full the socket reader drops the datagram (counted
	// with reason "queue_full") rather than stop reading. Each queued
	// datagram holds a MaxDatagramBytes buffer, so a full queue holds
	// UDPQueueSize × 65,000 bytes. Zero means DefaultUDPQueueSize (1000).
	UDPQueueSize int `yaml:"udp_queue_size"`
	// UDPWorkers is the number of goroutines per UDP port that decode
	// datagrams and wait for their spans to be committed. Zero means
	// DefaultUDPWorkers (16).
	UDPWorkers int `yaml:"udp_workers"`
	// UDPSocketBufferBytes sets the kernel receive buffer of the UDP
	// sockets (SO_RCVBUF), which absorbs bursts while the reader is not
	// scheduled. Linux caps it at net.core.rmem_max (and reports twice
	// the size, its bookkeeping included); the effective size is logged
	// at start. Datagrams the kernel drops because it is full are
	// counted on Linux (reason "kernel_buffer"). Zero means
	// DefaultUDPSocketBufferBytes (4 MiB).
	UDPSocketBufferBytes int `yaml:"udp_socket_buffer_bytes"`

	// MaxRequestBytes bounds one HTTP request body, both as received and
	// after gzip decompression (larger ones get 413), and one gRPC
	// message (RESOURCE_EXHAUSTED). Zero means DefaultMaxRequestBytes
	// (16 MiB); at most 2 GiB - 1.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// RetryAfter is the delay suggested to senders when the pipeline
	// pushes back (HTTP Retry-After, rounded up to whole seconds; gRPC
	// RetryInfo). Zero means DefaultRetryAfter (1 s).
	RetryAfter time.Duration `yaml:"retry_after"`
	// ShutdownTimeout bounds how long Run waits, once its context is
	// cancelled, for HTTP and gRPC requests in flight and for queued
	// datagrams to be consumed. Zero means DefaultShutdownTimeout (5 s).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ReadTimeout bounds the reading of one HTTP or gRPC request, as the
	// OTLP receiver's does: for HTTP from its first byte to the end of
	// its body, for gRPC from the stream's headers to the arrival of its
	// message. Zero means DefaultReadTimeout (1 min).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout closes HTTP keep-alive connections idle for this long.
	// Zero means DefaultIdleTimeout (2 min).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxConcurrentStreams bounds the gRPC calls one connection may have
	// in progress. Zero means DefaultMaxConcurrentStreams (16).
	MaxConcurrentStreams uint32 `yaml:"max_concurrent_streams"`
}

// DefaultConfig returns the configuration of a receiver serving every
// transport on its standard port of the loopback interface.
func DefaultConfig() Config {
	return Config{
		UDPCompactAddr:  DefaultUDPCompactAddr,
		UDPBinaryAddr:   DefaultUDPBinaryAddr,
		HTTPAddr:        DefaultHTTPAddr,
		GRPCAddr:        DefaultGRPCAddr,
		ZipkinAddr:      DefaultZipkinAddr,
		UDPQueueSize:    DefaultUDPQueueSize,
		UDPWorkers:      DefaultUDPWorkers,
		MaxRequestBytes: DefaultMaxRequestBytes,
		RetryAfter:      DefaultRetryAfter,
		ShutdownTimeout: DefaultShutdownTimeout,
		ReadTimeout:     DefaultReadTimeout,
		IdleTimeout:     DefaultIdleTimeout,

		UDPSocketBufferBytes: DefaultUDPSocketBufferBytes,
		MaxConcurrentStreams: DefaultMaxConcurrentStreams,
	}
}

// Enabled reports whether at least one transport has an address. New
// refuses a configuration that serves nothing; callers check Enabled
// first to leave the receiver out.
func (c Config) Enabled() bool {
	return c.UDPCompactAddr != "" || c.UDPBinaryAddr != "" || c.HTTPAddr != "" || c.GRPCAddr != "" || c.ZipkinAddr != ""
}

// Validate reports the first invalid setting: no transport enabled, or a
// negative or too large size, count or duration.
func (c Config) Validate() error {
	switch {
	case !c.Enabled():
		return errors.New("jaeger config: every address is empty, nothing to serve")
	case c.UDPQueueSize < 0:
		return fmt.Errorf("jaeger config: udp_queue_size %d is negative", c.UDPQueueSize)
	case c.UDPWorkers < 0:
		return fmt.Errorf("jaeger config: udp_workers %d is negative", c.UDPWorkers)
	case c.UDPSocketBufferBytes < 0:
		return fmt.Errorf("jaeger config: udp_socket_buffer_bytes %d is negative", c.UDPSocketBufferBytes)
	}
	if err := c.transport().Validate(); err != nil {
		return fmt.Errorf("jaeger config: %w", err)
	}
	return nil
}

// transport returns the settings HTTP and gRPC share with the other
// receivers.
func (c Config) transport() receiver.Config {
	return receiver.Config{
		MaxRequestBytes: c.MaxRequestBytes, RetryAfter: c.RetryAfter, ShutdownTimeout: c.ShutdownTimeout,
		ReadTimeout: c.ReadTimeout, IdleTimeout: c.IdleTimeout, MaxConcurrentStreams: c.MaxConcurrentStreams,
	}
}

func (c Config) withDefaults() Config {
	if c.UDPQueueSize == 0 {
		c.UDPQueueSize = DefaultUDPQueueSize
	}
	if c.UDPWorkers == 0 {
		c.UDPWorkers = DefaultUDPWorkers
	}
	if c.UDPSocketBufferBytes == 0 {
		c.UDPSocketBufferBytes = DefaultUDPSocketBufferBytes
	}
	t := c.transport().WithDefaults()
	c.MaxRequestBytes, c.RetryAfter, c.ShutdownTimeout = t.MaxRequestBytes, t.RetryAfter, t.ShutdownTimeout
	c.ReadTimeout, c.IdleTimeout, c.MaxConcurrentStreams = t.ReadTimeout, t.IdleTimeout, t.MaxConcurrentStreams
	return c
}
