// Command vigil-demo runs a small fleet built on Vigil's reference client, to
// produce realistic telemetry for a Vigil server: a gateway and three
// instances of the seed's user service, all in one process.
//
//	vigil-demo -otlp-endpoint 127.0.0.1:4317 -load 20
//
// The gateway (default 127.0.0.1:3000) serves GET /users/{id} and POST /users
// by calling user-service through the client (P2C-EWMA balancing, ejection,
// circuit breakers, retries with a budget). Each user-service instance
// (default 127.0.0.1:3001-3003) serves the seed's /users/{id}. Every service
// serves /health, /ready and /metrics (the seed's http_requests_total,
// http_request_duration_seconds with buckets 0.1, 0.5, 1, 2, 5, and
// active_connections), logs JSON to stdout, and exports traces, metrics and
// logs over OTLP gRPC.
//
// Faults on command: POST /admin/fault?instance=3&mode=slow&delay=800ms (or
// mode=fail&rate=0.5, or mode=ok) on the gateway, or /admin/fault on an
// instance itself; GET /admin/instances on the gateway shows what the client
// thinks of each instance. The -fault flag sets instance 3's fault at start.
package main
