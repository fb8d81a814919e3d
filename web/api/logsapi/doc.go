// Package logsapi serves Vigil's native log API ([API]): search with
// cursor pagination (/api/logs), volume over time (/api/logs/histogram),
// the logs of a trace (/api/traces/{traceID}/logs) and the live tail over
// a WebSocket (/api/logs/tail).
//
// It sits between the web server, which mounts it, and the log query
// layer (query/logs), which owns every default and maximum (window,
// limit, histogram buckets, the records of one trace); the handlers reach
// it through [Reader]. The live tail subscribes to the hub
// (internal/tail) that the log pipeline publishes committed records on,
// and is bounded per client address and per token ([TailConfig]), in
// all (the hub's subscriber limit) and in idle time.
//
// Answers are {"data": [...], "next_cursor": "..."} with errors as in the
// Jaeger envelope; the error mapping is api.ErrorStatus with the live
// tail's refusals in front of it (a foreign origin 403, a client over its
// quota 429, a full hub 503).
package logsapi
