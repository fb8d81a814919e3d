// Package metrics answers the metadata questions of the Prometheus HTTP
// API: which series match a set of selectors, which label names and
// values they carry, and the type, help and unit of metric families. It
// sits between web/api (/api/v1/series, /api/v1/labels,
// /api/v1/label/{name}/values, /api/v1/metadata) and the metric store,
// which it sees through Prometheus's storage.Queryable (imported as
// promstorage) and a [MetadataReader]. PromQL itself is query/promql's.
//
// It merges the answers of several selectors, removes duplicates, sorts
// and cuts them to the request's limit as Prometheus does, so that the
// API handlers only parse parameters and write envelopes.
package metrics
