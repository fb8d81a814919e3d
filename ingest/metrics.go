package ingest

import (
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Protocol label values of the ingest metrics. Every receiver uses one
// constant per transport so that the label stays bounded; later receivers
// add theirs here (e.g. "jaeger_udp", "jaeger_http", "zipkin_http").
const (
	ProtocolOTLPGRPC = "otlp_grpc"
	ProtocolOTLPHTTP = "otlp_http"

	// ProtocolJaegerUDPCompact counts spans of Jaeger agent datagrams in
	// compact thrift, whichever UDP port they arrived on.
	ProtocolJaegerUDPCompact = "jaeger_udp_compact"
	// ProtocolJaegerUDPBinary counts spans of Jaeger agent datagrams in
	// binary thrift, whichever UDP port they arrived on.
	ProtocolJaegerUDPBinary = "jaeger_udp_binary"
	// ProtocolJaegerHTTP counts spans of the Jaeger collector's HTTP
	// thrift endpoint (POST /api/traces).
	ProtocolJaegerHTTP = "jaeger_http"
	// ProtocolJaegerGRPC counts spans of the Jaeger collector's gRPC API
	// (jaeger.api_v2.CollectorService/PostSpans).
	ProtocolJaegerGRPC = "jaeger_grpc"
	// ProtocolZipkinHTTP counts spans of Zipkin v2 (POST /api/v2/spans,
	// JSON or protobuf).
	ProtocolZipkinHTTP = "zipkin_http"
)

// Reason label values of the rejected counters for data refused by the
// consumer. Validation reasons are the Reason* constants of validate.go.
const (
	ReasonQueueFull   = "queue_full"  // the consumer returned ErrQueueFull
	ReasonUnavailable = "unavailable" // ErrShuttingDown or storage.ErrUnavailable
	ReasonCanceled    = "canceled"    // the request's context ended first
	ReasonError       = "error"       // any other consumer error
)

// Metrics holds the counters every receiver updates, one series per
// protocol (and reason). Build one per process with NewMetrics and share
// it between receivers. A nil *Metrics is valid and counts nothing. Safe
// for concurrent use.
//
// For each protocol, received = rejected (all reasons) + stored once the
// requests in flight have been answered: a span is received when decoded,
// then either rejected (by validation, or because the consumer refused the
// request) or stored (the consumer returned nil). Requests that cannot be
// decoded have no span count and are not counted here.
type Metrics struct {
	spans  itemVecs
	logs   itemVecs // vigil_ingest_log_records_*
	points itemVecs // vigil_ingest_metric_points_*
}

type itemVecs struct {
	received *prometheus.CounterVec
	rejected *prometheus.CounterVec
	stored   *prometheus.CounterVec
}

func newItemVecs(item, what string) itemVecs {
	return itemVecs{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "ingest", Name: item + "_received_total",
			Help: "Number of " + what + " decoded by the receivers, by protocol.",
		}, []string{"protocol"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "ingest", Name: item + "_rejected_total",
			Help: "Number of " + what + " received but not stored, by protocol and reason (validation failure or consumer refusal).",
		}, []string{"protocol", "reason"}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "ingest", Name: item + "_stored_total",
			Help: "Number of " + what + " acknowledged as durably stored by the consumer, by protocol.",
		}, []string{"protocol"}),
	}
}

func (v itemVecs) collectors() []prometheus.Collector {
	return []prometheus.Collector{v.received, v.rejected, v.stored}
}

// NewMetrics creates the ingest counters and registers them on reg. With a
// nil reg the counters work but are not exported. It returns an error when
// registration fails, e.g. because the counters are already registered on
// reg (create one Metrics per registry).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{spans: newItemVecs("spans", "spans"), logs: newItemVecs("log_records", "log records"),
		points: newItemVecs("metric_points", "metric data points")}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range slices.Concat(m.spans.collectors(), m.logs.collectors(), m.points.collectors()) {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register ingest metrics: %w", err)
	}
	return m, nil
}

// Spans returns the span counters of one protocol (use a Protocol*
// constant). The received and stored series of that protocol exist at 0
// from this call on. A nil *Metrics returns nil, whose methods do nothing.
// Receivers call it once at construction.
func (m *Metrics) Spans(protocol string) *Counters {
	if m == nil {
		return nil
	}
	return m.spans.bind(protocol)
}

// MetricPoints returns the metric data point counters of one protocol, as
// Spans does for spans.
func (m *Metrics) MetricPoints(protocol string) *Counters {
	if m == nil {
		return nil
	}
	return m.points.bind(protocol)
}

// Logs returns the log record counters of one protocol, as Spans does for
// spans.
func (m *Metrics) Logs(protocol string) *Counters {
	if m == nil {
		return nil
	}
	return m.logs.bind(protocol)
}

func (v itemVecs) bind(protocol string) *Counters {
	return &Counters{
		received: v.received.WithLabelValues(protocol),
		stored:   v.stored.WithLabelValues(protocol),
		rejected: v.rejected.MustCurryWith(prometheus.Labels{"protocol": protocol}),
	}
}

// Counters counts the items of one signal (spans, later metric points and
// log records) for one protocol. A nil *Counters counts nothing. Safe for
// concurrent use.
type Counters struct {
	received prometheus.Counter
	stored   prometheus.Counter
	rejected *prometheus.CounterVec // curried with the protocol
}

// Received adds n decoded items.
func (c *Counters) Received(n int) {
	if c == nil || n <= 0 {
		return
	}
	c.received.Add(float64(n))
}

// Stored adds n items the consumer acknowledged as durable.
func (c *Counters) Stored(n int) {
	if c == nil || n <= 0 {
		return
	}
	c.stored.Add(float64(n))
}

// Rejected adds n items not stored for reason, one of the Reason*
// constants (a bounded set: never a free-form message).
func (c *Counters) Rejected(reason string, n int) {
	if c == nil || n <= 0 {
		return
	}
	c.rejected.WithLabelValues(reason).Add(float64(n))
}

// RejectedByValidation adds the rejections of a validation report, one
// series per reason.
func (c *Counters) RejectedByValidation(r ValidationReport) {
	if c == nil {
		return
	}
	for reason, n := range r.Reasons {
		c.Rejected(reason, n)
	}
}
