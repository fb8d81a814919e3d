// Package discovery finds the instances of a logical service.
//
// A Resolver answers "which instances, and how long is the answer good for".
// Its single method takes the previous answer, which lets one interface cover
// both polling and push-style sources:
//
//   - Static returns a fixed list once, then blocks;
//   - DNS queries A/AAAA or SRV records through the system's (or given)
//     name servers and reports the records' TTL, so refreshes follow the zone
//     — which also covers Kubernetes headless services
//     (my-svc.my-ns.svc.cluster.local, or its _port._proto SRV names);
//   - Consul queries the health endpoint of Consul's HTTP API (or Vigil's
//     Consul-compatible one, on :8500 by default) with blocking queries:
//     Snapshot.Version carries X-Consul-Index, and each query is held by
//     the server until the set changes. It keeps Consul's client rules
//     (index reset when it goes backwards, rate-limited query starts,
//     backoff after failures); package registry is its other half. A
//     Kubernetes EndpointSlice watcher would fit the same interface, with
//     Version as its resourceVersion.
//
// A Watcher drives one Resolver: it keeps the last known good set when
// resolution fails or returns nothing, retries with backoff, and reports how
// stale its set is. Targets are written as URLs (dns:///host:port,
// dns+srv:///_http._tcp.name, static:///a:1,b:2=3,
// consul:///name?tag=v1&passing=true) and parsed by ParseTarget; further
// schemes are plugged in with Builders.
package discovery
