// Package jaegerapi serves the Jaeger query HTTP API ([API]): the JSON
// that the Jaeger UI and Grafana's Jaeger data source read, at
// /api/services, /api/services/{service}/operations, /api/operations,
// /api/traces and /api/traces/{traceID}.
//
// It sits between the web server, which mounts it, and the trace query
// layer (query/traces), which owns the default and largest search window
// and limit; the handlers reach that layer through [TraceReader]. Answers
// come in Jaeger's envelope (api.Envelope) and errors go through the one
// mapping of the Jaeger-envelope APIs (api.ErrorStatus): bad parameters
// are 400 naming the parameter, an unknown trace 404, and storage
// failures a fixed message. Every parameter is first checked as every
// API checks it (api.CheckParams); escapes that decode to what PostgreSQL
// cannot hold (\u0000 in the JSON 'tags') are refused too.
//
// The OTLP→Jaeger conversion follows the OpenTelemetry Collector's Jaeger
// translator (pkg/translator/jaeger) and the adjusters the Jaeger query
// service applies before answering (tags sorted by key, the "event" log
// field first), so a trace looks in the Jaeger UI the way it would if
// Jaeger itself had stored it.
package jaegerapi
