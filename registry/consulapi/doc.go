// Package consulapi serves a subset of Consul's HTTP API over a
// registry.Registry, so that Consul clients (github.com/hashicorp/consul/api,
// the Node consul package, Prometheus's consul_sd_configs) work against
// Vigil by changing only the host. cmd/vigil serves the Handler on a
// listener of its own.
//
// Endpoints:
//
//	PUT /v1/agent/service/register[?replace-existing-checks]
//	PUT /v1/agent/service/deregister/:id
//	PUT /v1/agent/service/maintenance/:id?enable=&reason=
//	PUT /v1/agent/check/pass|warn|fail/:check_id[?note=]
//	PUT /v1/agent/check/update/:check_id        {"Status", "Output"}
//	GET /v1/agent/services, /v1/agent/service/:id, /v1/agent/checks, /v1/agent/self
//	GET /v1/health/service/:name[?passing&tag=…&filter=]
//	GET /v1/health/checks/:service, /v1/health/state/:state
//	GET /v1/catalog/services[?filter=], /v1/catalog/service/:name[?tag=…&filter=], /v1/catalog/nodes
//	GET /v1/status/leader
//	GET /v1/vigil/checks/:check_id/history[?limit=]   (Vigil's own)
//
// Reads are blocking queries: with index=N they wait (wait=, default 5 m,
// at most 10 m) until the registry's change index passes N, and every
// read answers X-Consul-Index, X-Consul-KnownLeader: true and
// X-Consul-LastContact: 0. near, stale, consistent, cached and dc are
// accepted and ignored; node-meta matches nothing, the one node having no
// metadata. While the Registry stops, waiting queries answer at once. The filter parameter takes the subset of Consul's
// filter language documented in filter.go; anything else is a 400.
// Checks carry two fields of Vigil's own that Consul's clients ignore,
// LastCheck and StatusSince, for pages that show when a check last ran.
//
// Errors are plain text as Consul's: 400 for a body or parameter that
// cannot be used (naming the field), 403 without a valid token when
// Options.Tokens is set, 404 for an unknown endpoint, service or check,
// 405 for a known endpoint asked with another method, 503 when the
// database cannot serve.
package consulapi
