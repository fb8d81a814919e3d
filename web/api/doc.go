// Package api serves Vigil's HTTP query APIs: the Jaeger query API, the
// native log API with its live tail, the service catalogue and the
// Prometheus HTTP API. The Jaeger query HTTP API is the JSON that the
// Jaeger UI and Grafana's Jaeger data source read from /api/services,
// /api/services/{service}/operations, /api/operations, /api/traces and
// /api/traces/{traceID}.
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
// The log API (logs.go) and the service catalogue (services.go) share this
// mapping; the Prometheus API (prom.go) has its own, with Prometheus's
// error types and statuses (promErrorStatus), and never shows storage
// text either.
//
// Bad input is answered the same way by every API, before any parameter
// is interpreted: a name or value of any query, form or path parameter
// that holds a NUL byte or invalid UTF-8, or is longer than MaxParamBytes
// (MaxExprBytes for PromQL expressions), is a 400 naming the parameter, in
// the API's own envelope (checkParams, checkParamValue). Escapes that
// decode to such bytes are refused too: \u0000 in Jaeger's JSON 'tags',
// and PromQL string escapes in label matchers (checkPromMatchers). None of
// it reaches PostgreSQL, whose text cannot hold a NUL byte.
//
// The OTLP→Jaeger conversion follows the OpenTelemetry Collector's Jaeger
// translator (pkg/translator/jaeger) and the adjusters the Jaeger query
// service applies before answering (tags sorted by key, the "event" log field
// first), so a trace looks in the Jaeger UI the way it would if Jaeger itself
// had stored it.
package api
