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
//
// With -consul-addr (Vigil's Consul-compatible API, e.g. 127.0.0.1:8500),
// each user-service instance registers itself there (meta
// metrics_path=/metrics and scrape_interval, so Vigil scrapes it), keeps a
// TTL check passing (-consul-ttl, passed every TTL/3), registers again if the
// registry forgot it, and deregisters on exit; the gateway then discovers
// the instances through consul:///user-service with blocking queries instead
// of the static addresses. Without the flag nothing is registered. A token,
// if the registry needs one, comes from CONSUL_HTTP_TOKEN.
//
//	vigil-demo -consul-addr 127.0.0.1:8500 -load 20
package main
