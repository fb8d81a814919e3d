// Package promapi serves the Prometheus HTTP API ([API]) that Grafana's
// Prometheus data source and promtool use: /api/v1/query,
// /api/v1/query_range, /api/v1/series, /api/v1/labels,
// /api/v1/label/{name}/values, /api/v1/metadata and
// /api/v1/status/buildinfo.
//
// It sits between the web server, which mounts it, and the query layer:
// query/promql runs PromQL ([Engine]) and query/metrics answers series,
// labels and metadata ([MetadataQuerier]). Answers come in Prometheus's
// envelope ({"status", "data", "errorType", "error", "warnings"}) with
// Prometheus's error types and statuses (promErrorStatus): errors about
// the request or the query keep their text, storage failures get a fixed
// message so that no PostgreSQL text leaks.
//
// Every parameter is first checked as every API checks it
// (api.CheckParams, with PromQL expressions up to api.MaxExprBytes); PromQL
// string escapes in label matchers that decode to a NUL byte or invalid
// UTF-8 are refused too (checkPromMatchers), as bad_data.
package promapi
