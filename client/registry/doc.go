// Package registry registers a service instance with a Consul agent — or
// with Vigil, which serves the same HTTP API subset on its own listener
// (default :8500) — and keeps the registration alive.
//
// A Registration is the other half of discovery.Consul: the instance
// registers itself (PUT /v1/agent/service/register) with its address, tags,
// and the meta Vigil reads to scrape it (metrics_path, scrape_interval),
// then keeps a TTL check passing (PUT /v1/agent/check/pass/<id> every
// TTL/3) or leaves an HTTP check to the agent. When the agent answers that
// it does not know the service or check (it restarted, or lost its state)
// the instance registers again. When Run's context ends, it deregisters
// (PUT /v1/agent/service/deregister/<id>), so callers resolving the
// service through blocking queries stop picking it at once.
//
// It speaks HTTP and JSON itself, with the shapes of Consul's API package,
// so the client module needs no Consul dependency.
package registry
