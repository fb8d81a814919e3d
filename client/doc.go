// Package client is Vigil's reference client: how one service should call
// another in a fleet. A Client turns a logical service name into calls on its
// instances:
//
//   - discovery through a discovery.Resolver (static list, DNS A/AAAA or SRV
//     with TTL refresh, Consul's or Vigil's health API with blocking
//     queries, or any pluggable scheme), keeping the last known good set
//     when discovery fails; package registry registers an instance;
//   - balancing with a balance.Balancer (P2C over peak-EWMA latency by
//     default; round robin, smooth weighted round robin, least outstanding
//     requests, or consistent hashing with bounded load for affinity keys);
//   - passive outlier ejection per instance (5xx, local failures, success
//     rate, a 0.9 latency quantile k× the peers' median), bounded by a
//     maximum ejected share and a panic threshold below which health is
//     ignored;
//   - circuit breakers per service and per instance that fail fast with a
//     *CircuitOpenError;
//   - retries with full-jitter exponential backoff, per-attempt timeouts
//     inside the call's deadline, only for idempotent calls (or those
//     carrying an idempotency key), never to the instance that just failed
//     when another exists, capped by a retry budget; optional hedging.
//
// The same policies serve HTTP (Client.RoundTrip, Client.HTTPClient) and
// gRPC (Client.GRPCDialOptions with a vigil:///service target). Every
// decision is observable: an OpenTelemetry span per logical call and per
// attempt, metrics for requests, attempts, retries, budget exhaustion,
// ejections, breaker states and latency estimates, and W3C trace context on
// every attempt. Package otelsetup exports them over OTLP to Vigil.
//
// The client sits at the edge of Vigil's data flow: it produces the telemetry
// that Vigil ingests, and imports nothing from the server.
package client
