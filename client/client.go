package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-obs/vigil/client/breaker"
	"github.com/vigil-obs/vigil/client/discovery"
)

// Errors returned by calls. Match them with errors.Is.
var (
	// ErrUnknownService: the request named a service missing from Config.
	ErrUnknownService = errors.New("unknown service")
	// ErrNoInstances: discovery has produced no instance yet, or none is
	// usable for this call.
	ErrNoInstances = errors.New("no usable instance")
	// ErrCircuitOpen: a circuit breaker rejected the call without trying it.
	// The error is a *CircuitOpenError.
	ErrCircuitOpen = errors.New("circuit open")
)

// CircuitOpenError is returned, wrapped, when an open circuit fails a call
// fast: the service's breaker, or every usable instance's.
type CircuitOpenError struct {
	// Service is the logical service.
	Service string
	// Instance is the instance whose breaker refused, empty for the
	// service's breaker.
	Instance string
	// Until is when the circuit lets probes through; zero when a half-open
	// circuit's probe slots are all taken.
	Until time.Time
}

// Error describes the rejection.
func (e *CircuitOpenError) Error() string {
	scope := "service " + e.Service
	if e.Instance != "" {
		scope += " instance " + e.Instance
	}
	if e.Until.IsZero() {
		return "circuit open for " + scope + " (half-open probes in flight)"
	}
	return "circuit open for " + scope + " until " + e.Until.Format(time.RFC3339Nano)
}

// Is matches ErrCircuitOpen and breaker.ErrOpen.
func (e *CircuitOpenError) Is(target error) bool {
	return target == ErrCircuitOpen || target == breaker.ErrOpen
}

// Clock is the client's time source. Tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options carries the Client's dependencies. Every field is optional.
type Options struct {
	// Logger receives state changes (ejections, circuit transitions,
	// discovery failures); nil discards.
	Logger *slog.Logger
	// TracerProvider creates the spans; nil means none.
	TracerProvider trace.TracerProvider
	// MeterProvider creates the metrics; nil means none.
	MeterProvider metric.MeterProvider
	// Propagator injects trace context into requests; nil means W3C
	// traceparent/tracestate and baggage.
	Propagator propagation.TextMapPropagator
	// Clock defaults to the system clock.
	Clock Clock
	// Transport performs HTTP attempts; nil means a clone of
	// http.DefaultTransport with more idle connections per host.
	Transport http.RoundTripper
	// Resolvers adds discovery schemes (e.g. "consul") beyond static, dns
	// and dns+srv.
	Resolvers map[string]discovery.Builder
	// Rand seeds balancing and jitter; nil means random. Tests pass a fixed
	// source for reproducible picks.
	Rand rand.Source
}

// Client calls logical services through discovery, balancing, ejection,
// circuit breaking and retries. Create it with New and keep Run running; its
// methods are safe for concurrent use.
type Client struct {
	cfg      Config
	logger   *slog.Logger
	clock    Clock
	base     http.RoundTripper
	prop     propagation.TextMapPropagator
	tracer   trace.Tracer
	tel      *telemetry
	services map[string]*service
	names    []string

	rmu sync.Mutex
	rnd *rand.Rand
}

// New validates cfg and builds a Client. No goroutine starts and no I/O
// happens until Run.
func New(cfg Config, opts Options) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("client config: %w", err)
	}
	c := &Client{cfg: cfg, logger: opts.Logger, clock: opts.Clock, base: opts.Transport, prop: opts.Propagator, services: map[string]*service{}}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	c.logger = c.logger.With("component", "vigil-client")
	if c.clock == nil {
		c.clock = systemClock{}
	}
	if c.base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		c.base = t
	}
	if c.prop == nil {
		c.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	tp := opts.TracerProvider
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	c.tracer = tp.Tracer(instrumentationName)
	mp := opts.MeterProvider
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	src := opts.Rand
	if src == nil {
		src = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
	c.rnd = rand.New(src)
	for name, sc := range cfg.Services {
		s, err := newService(c, name, sc, opts.Resolvers, rand.NewPCG(c.rnd.Uint64(), c.rnd.Uint64()))
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", name, err)
		}
		c.services[name] = s
		c.names = append(c.names, name)
	}
	slices.Sort(c.names)
	tel, err := newTelemetry(mp, c)
	if err != nil {
		return nil, fmt.Errorf("client telemetry: %w", err)
	}
	c.tel = tel
	return c, nil
}

// Run keeps every service's instance set current until ctx is cancelled,
// then returns nil once its goroutines have ended. Calls made before the
// first resolution of their service wait for it, within their deadline.
func (c *Client) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, name := range c.names {
		w := c.services[name].watcher
		g.Go(func() error { return w.Run(ctx) })
	}
	return g.Wait()
}

// Close releases the telemetry callbacks and idle connections. Calls made
// after Close still work but are no longer observed in metrics.
func (c *Client) Close() error {
	if t, ok := c.base.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	return c.tel.close()
}

// int64n returns a uniform value in [0, n) from the client's source.
func (c *Client) int64n(n int64) int64 {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.rnd.Int64N(n)
}

func (c *Client) service(name string) (*service, error) {
	s, ok := c.services[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownService, name)
	}
	return s, nil
}

// InstanceStatus is a point-in-time view of one instance, for admin pages
// and tests.
type InstanceStatus struct {
	// Addr is the instance's host:port.
	Addr string
	// Weight is its discovery weight.
	Weight int
	// Ejected says whether outlier detection has ejected it.
	Ejected bool
	// Breaker is the state of its own circuit.
	Breaker breaker.State
	// Outstanding counts calls in flight to it.
	Outstanding int64
	// Latency is the peak-EWMA latency estimate.
	Latency time.Duration
}

// Instances reports the instances of service, sorted by address.
func (c *Client) Instances(service string) ([]InstanceStatus, error) {
	s, err := c.service(service)
	if err != nil {
		return nil, err
	}
	now := c.clock.Now()
	eps := s.snapshot()
	out := make([]InstanceStatus, 0, len(eps))
	for _, ep := range eps {
		out = append(out, InstanceStatus{
			Addr:        ep.Addr,
			Weight:      ep.Weight,
			Ejected:     s.det.Ejected(ep.Addr),
			Breaker:     ep.brk.State(),
			Outstanding: ep.Outstanding(),
			Latency:     ep.Latency(s.cfg.Balancer.EWMA, now),
		})
	}
	return out, nil
}

// BreakerState reports the service-wide circuit's state.
func (c *Client) BreakerState(service string) (breaker.State, error) {
	s, err := c.service(service)
	if err != nil {
		return 0, err
	}
	return s.brk.State(), nil
}

type ctxKey int

const (
	affinityKey ctxKey = iota
	clientIPKey
	idempotentKey
)

// WithAffinityKey returns a context whose calls carry key as their ring_hash
// affinity key, ahead of any header or client IP.
func WithAffinityKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, affinityKey, key)
}

// WithClientIP returns a context carrying the end client's IP, for
// AffinityConfig.ClientIP when the request has no forwarding header.
func WithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, clientIPKey, ip)
}

// WithIdempotent returns a context whose calls the caller declares safe to
// retry whatever their method.
func WithIdempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey, true)
}

func isIdempotentCtx(ctx context.Context) bool {
	v, _ := ctx.Value(idempotentKey).(bool)
	return v
}
