// Package servicemap answers questions about who calls whom: the service
// map of a window (nodes and edges with their exact call counts, error
// ratios, latency quantiles and the reference client's circuit-breaker,
// ejection and retry-budget marks), Jaeger's dependency links and Jaeger's
// Monitor tab (call rates, error ratios and latency quantiles per service
// or operation).
//
// It sits between the APIs (web/api/mapapi, web/api/jaegerapi) and what
// the service-graph and span-metrics deriver (ingest/derive) writes:
//
//   - the map and the dependency links read the deriver's per-minute
//     rollups ([Options].Rollups, storage/postgres/mapstore): one row per
//     edge or service node, replica, incarnation and minute, with
//     cumulative calls, failures and latency histograms. The store sums
//     the increase of every key over a window in one statement, so a
//     map's cost grows with its edges and not with the samples of the
//     window;
//   - the marks come from the reference client's series
//     (vigil_client_breaker_state_ratio, …) read through the metric
//     store's Prometheus Queryable ([Options].Metrics): few series, read
//     as the samples they are;
//   - the Monitor runs the PromQL queries jaeger-query builds over a
//     Prometheus metrics store (over traces_span_metrics_*) through
//     Vigil's engine ([Options].Engine);
//   - the example traces of an edge come from the store the deriver
//     records them in ([Options].EdgeTraces).
//
// # Windows and exact counts
//
// A map or dependency window is widened to whole minutes, the rollups'
// resolution: its start rounded down, its end up (at least one minute);
// Map.Start and Map.End report the window the figures are of, and rates
// are per second of it. Within one incarnation of a key (the deriver
// starts a new one when it creates the key, at start-up or after it was
// idled out) the counts are cumulative from zero, so the calls of a
// window are, summed over keys, the count at the window's last row minus
// the count at the key's last row before the window (no older than
// Config.KeyLookback, which must exceed the deriver's
// series_idle_timeout), or the whole count for an incarnation that began
// inside the window. No extrapolation is involved, unlike PromQL's
// increase(). Quantiles are interpolated within the buckets of
// storage.MapLatencyBounds by Prometheus's BucketQuantile, as
// histogram_quantile does: an edge's from its server half's latencies
// (its client half's when no server half was seen), a service's from its
// server and consumer spans, a database, peer or messaging node's from
// the edges into it.
//
// The defaults and bounds of these questions live here: the default map
// window (DefaultWindow), the largest one (Config.MaxLookback, the
// retention), the key lookback (DefaultKeyLookback), the edge-trace
// limits (DefaultTraceLimit, MaxTraceLimit).
package servicemap
