// Package jaegerapi serves the Jaeger query HTTP API ([API]): the JSON
// that the Jaeger UI and Grafana's Jaeger data source read, at
// /api/services, /api/services/{service}/operations, /api/operations,
// /api/traces and /api/traces/{traceID}; and, once the service-map query
// layer is given ([API.SetServiceMap]), jaeger-query's dependency links
// at /api/dependencies and its Monitor tab at /api/metrics/calls,
// /api/metrics/errors, /api/metrics/latencies and /api/metrics/minstep.
//
// It sits between the web server, which mounts it, and two query layers:
// the trace query layer (query/traces), which owns the default and
// largest search window and limit, reached through [TraceReader]; and
// the service-map query layer (query/servicemap), reached through
// [ServiceMapReader], which owns the dependency and Monitor defaults. The
// dependency links are counted exactly from the service-graph deriver's
// per-minute rollups over the lookback widened to whole minutes; the
// Monitor answers with the PromQL jaeger-query runs over a Prometheus
// metrics store, over the span-metrics series. Answers come in Jaeger's
// envelope (api.Envelope), except the Monitor's, which are Jaeger's
// api_v2/metrics MetricFamily JSON as jaeger-query writes it; errors go
// through the one mapping of the Jaeger-envelope APIs (api.ErrorStatus):
// bad parameters are 400 naming the parameter (the Monitor's read as
// jaeger-query's "unable to parse param ..."), an unknown trace 404, and
// storage failures a fixed message. A search that stopped at the store's
// bound before it examined its whole window answers the traces it found
// with one envelope error of code 206 (TruncatedCode) naming where it
// stopped. Every parameter is first checked as
// every API checks it (api.CheckParams); escapes that decode to what
// PostgreSQL cannot hold (\u0000 in the JSON 'tags') are refused too.
//
// The OTLP→Jaeger conversion follows the OpenTelemetry Collector's Jaeger
// translator (pkg/translator/jaeger) and the adjusters the Jaeger query
// service applies before answering (tags sorted by key, the "event" log
// field first), so a trace looks in the Jaeger UI the way it would if
// Jaeger itself had stored it: a Jaeger or Zipkin client's span shows its
// tags as sent, and a tag made from a span field (span.kind, the status
// tags) only where the span does not carry it (spanTags says which and
// why).
package jaegerapi
