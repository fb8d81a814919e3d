// Package promql answers PromQL queries: it configures Prometheus's own
// engine (github.com/prometheus/prometheus/promql) and runs it over a
// Queryable, in Vigil the PostgreSQL metric store. Every query is checked
// against Vigil's limits before the engine allocates anything for it
// (limits.go: expression size, bracket nesting and operators before
// parsing; range steps, subquery steps and regular-expression cost after),
// evaluations are bounded in concurrency, samples and time, and a store
// that implements ReadLimiter bounds what each query reads. web/api serves
// it as the Prometheus HTTP API; the rule manager of alerting evaluates
// through the same engine and Queryable.
package promql
