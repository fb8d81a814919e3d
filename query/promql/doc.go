// Package promql answers PromQL queries: it configures Prometheus's own
// engine (github.com/prometheus/prometheus/promql) with Vigil's limits and
// runs it over a storage.Queryable, in Vigil the PostgreSQL metric store of
// storage/postgres. web/api serves it as the Prometheus HTTP API; the rule
// manager of alerting evaluates through the same engine and Queryable.
package promql
