package client

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/vigil-obs/vigil/client/breaker"
	"github.com/vigil-obs/vigil/client/outlier"
)

// instrumentationName names the tracer and meter.
const instrumentationName = "github.com/vigil-obs/vigil/client"

// Span and metric attribute keys of the client's own. HTTP and RPC ones follow
// the OpenTelemetry semantic conventions.
const (
	attrService     = "vigil.service"
	attrInstance    = "vigil.instance"
	attrAttempt     = "vigil.attempt"
	attrAttempts    = "vigil.attempts"
	attrRetryReason = "vigil.retry.reason"
	attrPanic       = "vigil.panic"
	attrOutcome     = "vigil.outcome"
	attrScope       = "vigil.breaker.scope"
	attrReason      = "vigil.reason"
	attrState       = "vigil.breaker.state"
)

// telemetry holds the client's metric instruments. Names are OTel style; a
// Prometheus translation turns vigil.client.requests into
// vigil_client_requests_total.
type telemetry struct {
	requests        metric.Int64Counter
	callDuration    metric.Float64Histogram
	attempts        metric.Int64Counter
	attemptDuration metric.Float64Histogram
	retries         metric.Int64Counter
	exhausted       metric.Int64Counter
	ejections       metric.Int64Counter
	readmissions    metric.Int64Counter
	transitions     metric.Int64Counter
	panics          metric.Int64Counter
	reg             metric.Registration
}

// durationBuckets suit service calls: 1 ms to 10 s.
var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func newTelemetry(mp metric.MeterProvider, c *Client) (*telemetry, error) {
	m := mp.Meter(instrumentationName)
	t := &telemetry{}
	var errs []error
	ctr := func(name, unit, desc string) metric.Int64Counter {
		i, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return i
	}
	hist := func(name, desc string) metric.Float64Histogram {
		i, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(durationBuckets...))
		errs = append(errs, err)
		return i
	}
	t.requests = ctr("vigil.client.requests", "{request}", "Logical calls, by service, method, outcome and final status.")
	t.callDuration = hist("vigil.client.request.duration", "Duration of logical calls, retries included.")
	t.attempts = ctr("vigil.client.attempts", "{attempt}", "Attempts sent to instances, by instance and outcome.")
	t.attemptDuration = hist("http.client.request.duration", "Duration of HTTP attempts (one per physical request).")
	t.retries = ctr("vigil.client.retries", "{retry}", "Retries and hedges made, by reason.")
	t.exhausted = ctr("vigil.client.retry_budget.exhausted", "{retry}", "Retries or hedges refused by the retry budget.")
	t.ejections = ctr("vigil.client.outlier.ejections", "{ejection}", "Instances ejected by outlier detection, by reason.")
	t.readmissions = ctr("vigil.client.outlier.readmissions", "{readmission}", "Ejected instances returned to service, by the reason of the ejection that ended.")
	t.transitions = ctr("vigil.client.breaker.transitions", "{transition}", "Circuit breaker state changes, by scope, instance and new state.")
	t.panics = ctr("vigil.client.panic_picks", "{pick}", "Picks made in panic mode, ignoring instance health.")

	breakerState, err := m.Int64ObservableGauge("vigil.client.breaker.state", metric.WithUnit("1"),
		metric.WithDescription("Circuit state: 0 closed, 1 half-open, 2 open; per service (scope=service) and instance."))
	errs = append(errs, err)
	ejected, err := m.Int64ObservableGauge("vigil.client.endpoint.ejected", metric.WithUnit("1"), metric.WithDescription("1 while an instance is ejected, with the reason of its ejection; 0 without a reason otherwise."))
	errs = append(errs, err)
	ewma, err := m.Float64ObservableGauge("vigil.client.endpoint.latency.ewma", metric.WithUnit("s"), metric.WithDescription("Peak-EWMA latency estimate per instance."))
	errs = append(errs, err)
	outstanding, err := m.Int64ObservableGauge("vigil.client.endpoint.outstanding", metric.WithUnit("{request}"), metric.WithDescription("Outstanding requests per instance."))
	errs = append(errs, err)
	staleness, err := m.Float64ObservableGauge("vigil.client.discovery.staleness", metric.WithUnit("s"),
		metric.WithDescription("Seconds the instance set has been served from the last known good answer because discovery fails; 0 when current."))
	errs = append(errs, err)
	instances, err := m.Int64ObservableGauge("vigil.client.discovery.instances", metric.WithUnit("{instance}"), metric.WithDescription("Instances in the set in use."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	t.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		now := c.clock.Now()
		for _, name := range c.names {
			s := c.services[name]
			svc := attribute.String(attrService, name)
			o.ObserveInt64(breakerState, stateValue(s.brk.State()), metric.WithAttributes(svc, attribute.String(attrScope, "service")))
			o.ObserveFloat64(staleness, s.watcher.Staleness().Seconds(), metric.WithAttributes(svc))
			eps := s.snapshot()
			o.ObserveInt64(instances, int64(len(eps)), metric.WithAttributes(svc))
			for _, ep := range eps {
				attrs := metric.WithAttributes(svc, attribute.String(attrInstance, ep.Addr))
				o.ObserveInt64(breakerState, stateValue(ep.brk.State()), metric.WithAttributes(svc, attribute.String(attrInstance, ep.Addr), attribute.String(attrScope, "instance")))
				if reason, ok := s.det.EjectionReason(ep.Addr); ok {
					o.ObserveInt64(ejected, 1, metric.WithAttributes(svc, attribute.String(attrInstance, ep.Addr), attribute.String(attrReason, string(reason))))
				} else {
					o.ObserveInt64(ejected, 0, attrs)
				}
				o.ObserveFloat64(ewma, ep.Latency(s.cfg.Balancer.EWMA, now).Seconds(), attrs)
				o.ObserveInt64(outstanding, ep.Outstanding(), attrs)
			}
		}
		return nil
	}, breakerState, ejected, ewma, outstanding, staleness, instances)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func stateValue(s breaker.State) int64 {
	switch s {
	case breaker.HalfOpen:
		return 1
	case breaker.Open:
		return 2
	}
	return 0
}

func (t *telemetry) close() error {
	if t.reg == nil {
		return nil
	}
	return t.reg.Unregister()
}

func (t *telemetry) call(ctx context.Context, service, method string, status int, result string, d time.Duration) {
	attrs := metric.WithAttributes(
		attribute.String(attrService, service),
		attribute.String("http.request.method", method),
		attribute.Int("http.response.status_code", status),
		attribute.String(attrOutcome, result))
	t.requests.Add(ctx, 1, attrs)
	t.callDuration.Record(ctx, d.Seconds(), attrs)
}

func (t *telemetry) attempt(ctx context.Context, service, instance, method string, status int, result string, d time.Duration) {
	t.attempts.Add(ctx, 1, metric.WithAttributes(
		attribute.String(attrService, service),
		attribute.String(attrInstance, instance),
		attribute.String(attrOutcome, result)))
	if method == "" {
		return
	}
	host, port := splitHostPort(instance)
	t.attemptDuration.Record(ctx, d.Seconds(), metric.WithAttributes(
		attribute.String("http.request.method", method),
		attribute.Int("http.response.status_code", status),
		attribute.String("server.address", host),
		attribute.Int("server.port", port)))
}

func (t *telemetry) retry(ctx context.Context, service, reason string) {
	t.retries.Add(ctx, 1, metric.WithAttributes(attribute.String(attrService, service), attribute.String(attrRetryReason, reason)))
}

func (t *telemetry) budgetExhausted(ctx context.Context, service string) {
	t.exhausted.Add(ctx, 1, metric.WithAttributes(attribute.String(attrService, service)))
}

// ejection counts an ejection, or a return to service, by reason.
func (t *telemetry) ejection(service string, e outlier.Event) {
	c := t.readmissions
	if e.Ejected {
		c = t.ejections
	}
	c.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String(attrService, service),
		attribute.String(attrInstance, e.Addr),
		attribute.String(attrReason, string(e.Reason))))
}

func (t *telemetry) breakerTransition(service, instance string, to breaker.State) {
	scope := "instance"
	if instance == "" {
		scope = "service"
	}
	t.transitions.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String(attrService, service),
		attribute.String(attrInstance, instance),
		attribute.String(attrScope, scope),
		attribute.String(attrState, to.String())))
}

func (t *telemetry) panicPick(service string) {
	t.panics.Add(context.Background(), 1, metric.WithAttributes(attribute.String(attrService, service)))
}
