// Package promql answers PromQL queries: it configures Prometheus's own
// engine (github.com/prometheus/prometheus/promql) with Vigil's limits and
// runs it over a Prometheus storage.Queryable (imported as promstorage),
// in Vigil the metric store of storage/postgres/metricstore. web/api
// serves it as the query and query_range routes of the Prometheus HTTP
// API (series, labels and metadata are query/metrics'); the rule manager
// of alerting evaluates through the same engine and Queryable.
package promql
