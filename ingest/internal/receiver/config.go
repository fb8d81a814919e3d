package receiver

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vigil-obs/vigil/internal/inflight"
)

// Defaults of Config, the same for every receiver.
const (
	DefaultMaxRequestBytes = 16 << 20
	DefaultRetryAfter      = time.Second
	DefaultShutdownTimeout = 5 * time.Second
	DefaultReadTimeout     = time.Minute
	DefaultIdleTimeout     = 2 * time.Minute
	// DefaultMaxConcurrentStreams is per gRPC connection: OTel SDK
	// exporters keep one export in flight, the Collector's exporters a
	// few (sending_queue.num_consumers); more streams wait in the client.
	DefaultMaxConcurrentStreams = 16
)

// Config holds the settings every TCP transport of a receiver shares;
// the receivers' own Config types carry the same fields, documented
// there, under the same YAML keys.
type Config struct {
	MaxRequestBytes      int64
	RetryAfter           time.Duration
	ShutdownTimeout      time.Duration
	ReadTimeout          time.Duration
	IdleTimeout          time.Duration
	MaxConcurrentStreams uint32
}

// Validate reports the first invalid setting, naming its YAML key: a
// negative or too large size (gRPC and the budget count in int32), or a
// negative duration. Zero values are valid: they take the defaults.
func (c Config) Validate() error {
	switch {
	case c.MaxRequestBytes < 0 || c.MaxRequestBytes > math.MaxInt32:
		return fmt.Errorf("max_request_bytes %d is outside [0, %d]", c.MaxRequestBytes, math.MaxInt32)
	case c.RetryAfter < 0:
		return fmt.Errorf("retry_after %s is negative", c.RetryAfter)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("shutdown_timeout %s is negative", c.ShutdownTimeout)
	case c.ReadTimeout < 0:
		return fmt.Errorf("read_timeout %s is negative", c.ReadTimeout)
	case c.IdleTimeout < 0:
		return fmt.Errorf("idle_timeout %s is negative", c.IdleTimeout)
	}
	return nil
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	return c
}

// Budget returns b, or when b is nil a budget of the receiver's own of
// inflight.DefaultMaxBytes() (at least perRequest+1 bytes), without
// metrics. It returns an error when the budget cannot hold one request
// of perRequest bytes (maxRequestBytes, twice for a protocol charged its
// body compressed and decompressed), which would refuse every large
// request forever.
func Budget(b *inflight.Budget, maxRequestBytes int64, copies int) (*inflight.Budget, error) {
	perRequest := int64(copies) * maxRequestBytes
	if b == nil {
		var err error
		if b, err = inflight.New(max(inflight.DefaultMaxBytes(), perRequest+1), nil); err != nil {
			return nil, err
		}
	}
	if b.Limit() <= perRequest {
		msg := fmt.Sprintf("in-flight budget of %d bytes cannot hold one request of max_request_bytes %d", b.Limit(), maxRequestBytes)
		if copies > 1 {
			msg += ", compressed and decompressed"
		}
		return nil, errors.New(msg)
	}
	return b, nil
}
