// Package api holds what Vigil's HTTP query APIs share, and the service
// catalogue. Each API family has a package of its own beneath it:
//
//   - jaegerapi: the Jaeger query API, the JSON that the Jaeger UI and
//     Grafana's Jaeger data source read (/api/services, /api/operations,
//     /api/traces, …);
//   - logsapi: the native log API, search, volume over time, the logs of
//     a trace and the live tail (/api/logs, …);
//   - promapi: the Prometheus HTTP API that Grafana's Prometheus data
//     source and promtool use (/api/v1/query, …);
//
// and this package serves the service catalogue ([Services]), the UI's
// landing page: /api/vigil/services.
//
// In the data flow the APIs sit at the very end: every answer comes from
// the query layer (query/…), which owns the defaults and bounds of each
// question. The handlers hold no business logic: they parse parameters,
// call the query layer through small interfaces declared where they are
// used, and write the response envelope. cmd/vigil builds each API and
// hands it to the web package, which mounts it.
//
// What is shared lives here:
//
//   - the parameter checks every API applies before it interprets a
//     parameter ([CheckParams], [CheckValue], [MaxParamBytes],
//     [MaxExprBytes]): a name or value of any query, form or path
//     parameter that holds a NUL byte or invalid UTF-8, or is longer than
//     its limit, is a 400 naming the parameter, in the API's own
//     envelope, and never reaches PostgreSQL, whose text cannot hold a
//     NUL byte;
//   - the Jaeger envelope ([Envelope]) in which the Jaeger API and the
//     catalogue answer (the log API uses its error entries,
//     [EnvelopeError]), its writer ([Responder]) and its one error→status
//     mapping ([ErrorStatus]);
//   - the strict parsing of query strings, path parameters and trace IDs
//     that the Jaeger and log APIs share ([ParseQuery], [PathValue],
//     [ParseTraceID]).
//
// The Jaeger envelope is
//
//	{"data": ..., "total": N, "limit": 0, "offset": 0, "errors": null}
//
// and its mapping answers a [RequestError] with 400 and a message naming
// the parameter, storage.ErrNotFound with 404, storage.ErrUnavailable
// with 503, an expired deadline with 504, a client gone with 499, and
// anything else with a logged 500 and a generic message, so that no
// storage text reaches the client.
//
// The Prometheus API has its own envelope and error mapping, with
// Prometheus's error types (see promapi).
package api
