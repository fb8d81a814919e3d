// Package registry is Vigil's service registry: services register the way
// they would with a Consul agent (registry/consulapi serves the HTTP API
// subset on its own listener), their health is checked by Vigil, and
// watchers — Prometheus's consul_sd_configs, Consul clients — learn of
// changes through blocking queries.
//
// Data flow: consulapi decodes a request and calls Register, Deregister,
// UpdateTTL or SetMaintenance; the Store (storage/postgres/registrystore)
// writes the change in one transaction that raises the registry-wide
// change index and notifies every replica (LISTEN/NOTIFY). Reads (State)
// come from one cached snapshot per index; Wait blocks a query until the
// index passes the client's. The elected replica runs the checks, stores
// their results (a status transition is kept in the history only when
// the status changes) and writes the health series through an
// AppendableV2 (the metric pipeline): consul_exporter's
// consul_health_service_status{check, node, service_id, service_name,
// status} (1 for the current status, 0 for the others) and
// consul_catalog_service_node_healthy{node, service_id, service_name},
// with stale markers when a check or service goes away.
//
// Implemented: services with ID, Name, Tags, Address, Port, Meta; HTTP
// checks (Method, Header, Body, TLSSkipVerify; 2xx passing, 429 warning,
// else critical), TCP checks (connect), gRPC checks (grpc.health.v1,
// "host:port/service", GRPCUseTLS), TTL checks (critical when not updated
// within the TTL); Interval, Timeout (default 10 s),
// DeregisterCriticalServiceAfter; an initial Status; maintenance mode as
// Consul does it (a critical check "_service_maintenance:<id>"). Check
// output is kept up to 4 KiB. Not implemented: script, Docker, UDP,
// H2PING, OS-service and alias checks, Connect and proxies, node checks,
// the KV store, sessions, ACLs beyond a fixed token list, several nodes or
// datacenters: every service is on one node (Config.NodeName).
//
// The index is registry-wide, not per table as in Consul: any change
// wakes every blocking query, which then answers with unchanged data. A
// check whose output changes on every run moves the index on every run.
//
// Several replicas: they share one database. Every replica serves the
// API, and a change made through any of them wakes the blocking queries
// of all (a replica that lost its LISTEN session re-reads the index every
// Config.PollInterval). The checks are run by one replica, elected with
// storage/postgres/leader on LeaderKey: a single scheduler keeps each
// check's rhythm (a new leader schedules every check one interval after
// its stored last run, so a hand-over neither skips nor doubles a run),
// TTL expiry and DeregisterCriticalServiceAfter are decided in one place,
// and the load of checking a registry's few thousand endpoints fits one
// replica. Sharing checks out by hashing over live replicas would spread
// that load, at the price of membership bookkeeping and double runs while
// membership changes. A replica that dies releases the lock with its
// session, and another takes over at its next campaign (the elector's
// interval, 1 s by default).
package registry

import "github.com/vigil-obs/vigil/storage/postgres/leader"

// LeaderKey is the advisory lock the replica that runs the checks holds
// ("vigilreg").
const LeaderKey = leader.Key(0x76696769_6c726567)
