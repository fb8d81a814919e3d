// Package api serves Vigil's HTTP query APIs. This file set implements the
// Jaeger query HTTP API: the JSON that the Jaeger UI and Grafana's Jaeger data
// source read from /api/services, /api/services/{service}/operations,
// /api/operations, /api/traces and /api/traces/{traceID}.
//
// In the data flow it sits at the very end: query/traces answers questions
// over storage, and this package turns the answers (pdata ptrace.Traces) into
// Jaeger's UI JSON. Handlers hold no business logic: they parse parameters
// the way Jaeger's query service does, call a [TraceReader], convert, and
// write the response envelope
//
//	{"data": ..., "total": N, "limit": 0, "offset": 0, "errors": null}
//
// Every failure goes through one error→status mapping (see errorStatus):
// bad parameters are 400 with a message naming the parameter,
// storage.ErrNotFound is 404, storage.ErrUnavailable is 503, an expired
// deadline is 504, and anything else is a logged 500 with a generic message.
//
// The OTLP→Jaeger conversion follows the OpenTelemetry Collector's Jaeger
// translator (pkg/translator/jaeger) and the adjusters the Jaeger query
// service applies before answering (tags sorted by key, the "event" log field
// first), so a trace looks in the Jaeger UI the way it would if Jaeger itself
// had stored it.
package api
