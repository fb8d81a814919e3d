// Package api serves Vigil's HTTP query APIs:
//
//   - the Jaeger query API ([Jaeger]), the JSON that the Jaeger UI and
//     Grafana's Jaeger data source read: /api/services,
//     /api/services/{service}/operations, /api/operations, /api/traces and
//     /api/traces/{traceID};
//   - the native log API ([Logs]): search with cursor pagination
//     (/api/logs), volume over time (/api/logs/histogram), the logs of a
//     trace (/api/traces/{traceID}/logs) and the live tail over a
//     WebSocket (/api/logs/tail);
//   - the service catalogue ([Services]), the UI's landing page:
//     /api/vigil/services;
//   - the Prometheus HTTP API ([Prometheus]) that Grafana's Prometheus data
//     source and promtool use: /api/v1/query, /api/v1/query_range,
//     /api/v1/series, /api/v1/labels, /api/v1/label/{name}/values,
//     /api/v1/metadata and /api/v1/status/buildinfo.
//
// In the data flow it sits at the very end: every answer comes from the
// query layer, which owns the defaults and bounds of each question
// (windows, limits, deadlines): query/traces for the Jaeger API,
// query/logs for the log API, query/services for the catalogue, and
// query/promql (PromQL) and query/metrics (series, labels, metadata) for
// the Prometheus API. The handlers hold no business logic: they parse
// parameters, call the query layer through the small interfaces declared
// here ([TraceReader], [LogReader], [ServiceCatalog], [PromQLEngine],
// [MetadataQuerier]), and write the response envelope. The Jaeger API,
// the log API and the catalogue answer in Jaeger's envelope
//
//	{"data": ..., "total": N, "limit": 0, "offset": 0, "errors": null}
//
// (the log API without total, limit and offset, and with next_cursor); the
// Prometheus API in Prometheus's ({"status", "data", "errorType",
// "error", "warnings"}).
//
// Each envelope has one error→status mapping, and neither shows storage
// text. errorStatus serves the Jaeger envelope: bad parameters are 400
// with a message naming the parameter, storage.ErrNotFound is 404,
// storage.ErrUnavailable is 503, an expired deadline is 504, a client gone
// is 499, a live-tail client over its quota is 429 and a full hub 503, and
// anything else is a logged 500 with a generic message. promErrorStatus
// serves the Prometheus API with Prometheus's error types and statuses:
// errors about the request or the query keep their text, storage failures
// get a fixed message.
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
