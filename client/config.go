package client

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vigil-obs/vigil/client/balance"
	"github.com/vigil-obs/vigil/client/breaker"
	"github.com/vigil-obs/vigil/client/discovery"
	"github.com/vigil-obs/vigil/client/outlier"
	"github.com/vigil-obs/vigil/client/retry"
)

// Config declares the services a Client can call and their policies. It is
// plain data, decodable from YAML.
type Config struct {
	// Services maps a logical service name (the host of request URLs, the
	// endpoint of vigil:/// gRPC targets) to its policies.
	Services map[string]ServiceConfig `yaml:"services"`
}

// ServiceConfig holds every policy for one service. Zero fields take the
// defaults documented on each field and in README.md.
type ServiceConfig struct {
	// Target says how to discover instances, e.g.
	// "dns:///user.prod.svc.cluster.local:3001",
	// "dns+srv:///_http._tcp.user.prod.svc.cluster.local",
	// "static:///127.0.0.1:3001,127.0.0.1:3002=2". Required.
	Target string `yaml:"target"`
	// Timeout bounds a whole logical call, retries included, when the
	// caller's context has no earlier deadline (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// Balancer selects and tunes the balancing policy (default p2c_ewma).
	Balancer balance.Config `yaml:"balancer"`
	// Affinity says where a ring_hash balancer finds the call's key.
	Affinity AffinityConfig `yaml:"affinity"`
	// Outlier configures passive ejection of instances.
	Outlier outlier.Config `yaml:"outlier"`
	// PanicThreshold, in percent: when fewer than this share of instances
	// are healthy (not ejected, circuit not open), the client balances over
	// all of them, as Envoy does, rather than overload the few left
	// (default 50; negative disables).
	PanicThreshold float64 `yaml:"panic_threshold"`
	// Breaker is the service-wide circuit breaker over logical calls.
	Breaker breaker.Config `yaml:"breaker"`
	// InstanceBreaker is the per-instance circuit breaker over attempts.
	InstanceBreaker breaker.Config `yaml:"instance_breaker"`
	// Retry configures retries, the retry budget and hedging.
	Retry RetryConfig `yaml:"retry"`
}

// AffinityConfig names the source of affinity keys for ring_hash. The first
// source present on a call wins: a key set with WithAffinityKey, then Header,
// then the client IP.
type AffinityConfig struct {
	// Header is a request header (HTTP) or metadata key (gRPC) whose value
	// is the key, e.g. "X-User-ID".
	Header string `yaml:"header"`
	// ClientIP uses the end client's IP: the first X-Forwarded-For entry,
	// else X-Real-IP, else one set with WithClientIP.
	ClientIP bool `yaml:"client_ip"`
}

// RetryConfig configures retries. A call is retried only when it is
// idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE; a request carrying
// IdempotencyKeyHeader; a gRPC method listed in GRPCIdempotentMethods or a
// context marked with WithIdempotent), except that a call which never reached
// an instance (connection refused) is always retried. Retries go to another
// instance when one is usable, wait with full-jitter backoff, and draw from
// the retry budget.
type RetryConfig struct {
	// MaxAttempts counts the first attempt, retries and hedges (default 3;
	// 1 disables retries).
	MaxAttempts int `yaml:"max_attempts"`
	// PerAttemptTimeout bounds each attempt, inside the call's own deadline
	// (default 3s; negative means only the call's deadline).
	PerAttemptTimeout time.Duration `yaml:"per_attempt_timeout"`
	// Backoff sets the jittered wait between attempts (defaults 25ms base,
	// 1s cap).
	Backoff retry.Backoff `yaml:"backoff"`
	// Budget caps retries and hedges to a share of requests (defaults 20 %
	// plus 3 per second over 10s).
	Budget retry.BudgetConfig `yaml:"budget"`
	// RetryOnStatus lists HTTP statuses worth retrying (default 502, 503,
	// 504). Every 5xx counts against instance health regardless.
	RetryOnStatus []int `yaml:"retry_on_status"`
	// IdempotencyKeyHeader marks a non-idempotent HTTP request as safe to
	// retry when present (default "Idempotency-Key").
	IdempotencyKeyHeader string `yaml:"idempotency_key_header"`
	// GRPCRetryCodes lists gRPC status codes worth retrying, by name
	// (default UNAVAILABLE).
	GRPCRetryCodes []string `yaml:"grpc_retry_codes"`
	// GRPCIdempotentMethods lists full gRPC method names
	// ("/pkg.Service/Method", or "/pkg.Service/*") safe to retry.
	GRPCIdempotentMethods []string `yaml:"grpc_idempotent_methods"`
	// HedgeDelay, when positive, sends another attempt of an idempotent call
	// to a different instance if no answer came within it; the first
	// answer wins (default 0: off).
	HedgeDelay time.Duration `yaml:"hedge_delay"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c ServiceConfig) WithDefaults() ServiceConfig {
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	c.Balancer = c.Balancer.WithDefaults()
	c.Outlier = c.Outlier.WithDefaults()
	if c.PanicThreshold == 0 {
		c.PanicThreshold = 50
	}
	c.Breaker = c.Breaker.WithDefaults()
	c.InstanceBreaker = c.InstanceBreaker.WithDefaults()
	r := &c.Retry
	if r.MaxAttempts == 0 {
		r.MaxAttempts = 3
	}
	if r.PerAttemptTimeout == 0 {
		r.PerAttemptTimeout = 3 * time.Second
	}
	r.Backoff = r.Backoff.WithDefaults()
	r.Budget = r.Budget.WithDefaults()
	if r.RetryOnStatus == nil {
		r.RetryOnStatus = []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
	}
	if r.IdempotencyKeyHeader == "" {
		r.IdempotencyKeyHeader = "Idempotency-Key"
	}
	if r.GRPCRetryCodes == nil {
		r.GRPCRetryCodes = []string{"UNAVAILABLE"}
	}
	return c
}

// maxAttemptsLimit keeps a misconfiguration from turning into a retry storm.
const maxAttemptsLimit = 10

// Validate reports every invalid field of c, after defaults are applied.
func (c ServiceConfig) Validate() error {
	c = c.WithDefaults()
	var errs []error
	add := func(field string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	if c.Target == "" {
		add("target", errors.New("required"))
	} else {
		_, err := discovery.ParseTarget(c.Target)
		add("target", err)
	}
	if c.Timeout < 0 {
		add("timeout", fmt.Errorf("must be positive, got %v", c.Timeout))
	}
	add("balancer", c.Balancer.Validate())
	add("outlier", c.Outlier.Validate())
	if c.PanicThreshold > 100 {
		add("panic_threshold", fmt.Errorf("must be at most 100, got %v", c.PanicThreshold))
	}
	add("breaker", c.Breaker.Validate())
	add("instance_breaker", c.InstanceBreaker.Validate())
	r := c.Retry
	if r.MaxAttempts < 1 || r.MaxAttempts > maxAttemptsLimit {
		add("retry.max_attempts", fmt.Errorf("must be in [1, %d], got %d", maxAttemptsLimit, r.MaxAttempts))
	}
	if r.PerAttemptTimeout > 0 && r.PerAttemptTimeout > c.Timeout {
		add("retry.per_attempt_timeout", fmt.Errorf("must not exceed timeout (%v), got %v", c.Timeout, r.PerAttemptTimeout))
	}
	add("retry.backoff", r.Backoff.Validate())
	add("retry.budget", r.Budget.Validate())
	for _, s := range r.RetryOnStatus {
		if s < 100 || s > 599 {
			add("retry.retry_on_status", fmt.Errorf("%d is not an HTTP status", s))
		}
	}
	for _, name := range r.GRPCRetryCodes {
		if _, ok := grpcCode(name); !ok {
			add("retry.grpc_retry_codes", fmt.Errorf("unknown code %q", name))
		}
	}
	for _, m := range r.GRPCIdempotentMethods {
		if !strings.HasPrefix(m, "/") || strings.Count(m, "/") != 2 {
			add("retry.grpc_idempotent_methods", fmt.Errorf("%q is not /package.Service/Method", m))
		}
	}
	if r.HedgeDelay < 0 {
		add("retry.hedge_delay", fmt.Errorf("must not be negative, got %v", r.HedgeDelay))
	}
	return errors.Join(errs...)
}

// Validate checks every service and names the ones that are wrong.
func (c Config) Validate() error {
	if len(c.Services) == 0 {
		return errors.New("services: at least one service is required")
	}
	names := make([]string, 0, len(c.Services))
	for name := range c.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		if name == "" || strings.ContainsAny(name, ":/ ") {
			errs = append(errs, fmt.Errorf("service %q: name must be a host name without port", name))
			continue
		}
		if err := c.Services[name].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("service %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
