// Package consultest is an in-memory server for the subset of Consul's HTTP
// API that the client speaks (agent service registration, TTL check updates,
// deregistration, and the health endpoint with real blocking queries), for
// the tests of client/discovery, client/registry and the demo. It keeps one
// node and one index that every change raises.
package consultest
