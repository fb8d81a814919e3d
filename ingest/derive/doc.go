// Package derive computes span metrics (RED: rate, errors, duration) and
// the service graph from the spans the span pipeline has committed, and
// writes them as Prometheus series through the metric pipeline, so that
// PromQL, Grafana, the alert rules and Jaeger's Monitor tab read them like
// any other metric; and it writes per-minute rollups of the same calls,
// from which the service map and /api/dependencies are read.
//
// It sits beside the span pipeline: ingest/pipeline calls
// Deriver.Committed with every committed batch; Deriver.Run flushes the
// aggregated series every flush interval into a storage.AppendableV2 (the
// metric pipeline, hence the metric store) and the rollups into a
// RollupStore, and, when several replicas share a database, pairs halves
// of calls through a PairStore (storage/postgres/mapstore is both).
//
// # Span metrics
//
// Every span, of any kind, counts in traces_span_metrics_calls and
// traces_span_metrics_duration (a classic histogram in milliseconds,
// buckets 0.1 … 60000 and +Inf) under service_name (the resource's
// service.name, "unknown_service" without one), span_name, span_kind
// (SPAN_KIND_SERVER, …), status_code (STATUS_CODE_ERROR when the span's
// status is Error; the Jaeger and Zipkin translators already map
// error=true into it) and the optional dimensions deployment_environment
// (resource deployment.environment.name or deployment.environment) and
// k8s_namespace_name (k8s.namespace.name), each absent when its attribute is.
// The names are those Jaeger's Monitor tab reads.
//
// span_name is the span's name, except for a span with http.route: then
// "<METHOD> <route>" with the method from http.request.method or
// http.method (the route alone without either), so "GET /users/123" with
// route /users/:id counts as "GET /users/:id". At most
// MaxOperationsPerService distinct names per service are held; further
// names count as "__overflow__" (vigil_derive_operations_folded_total).
//
// # Service graph
//
// Calls between services are found as in Tempo and the OpenTelemetry
// collector's servicegraph connector: a client or producer span is one
// half of a call, kept under (trace id, its own span id); a server or
// consumer span is the other half, kept under (trace id, its parent span
// id). When both halves of a key have been seen, in any order, in any
// batches, the call completes an edge client → server:
// traces_service_graph_request_total, _request_failed_total (either half
// has status Error), _request_client_seconds (the client half's duration)
// and _request_server_seconds (the server half's), classic histograms in
// seconds, under client, server, connection_type and the client_/server_
// dimensions. Producer/consumer pairs have connection_type
// "messaging_system"; plain pairs have none.
//
// Some calls complete from one half, both histograms then taking its
// duration:
//
//   - a client span with db.system (or db.system.name) is a call to a
//     database: server = db.name | db.namespace | server.address |
//     net.peer.name | db.system, connection_type "database";
//   - a server or consumer span without a parent is a call from outside:
//     client "user", connection_type "virtual_node";
//   - a client half left alone (see below) that names a peer
//     (peer.service | service.peer.name, Zipkin's remote service |
//     db.name | db.namespace | server.address | net.peer.name) is a
//     call to that virtual node, connection_type
//     "virtual_node"; a lone producer half naming its destination
//     (messaging.destination.name | messaging.destination |
//     messaging.system) is a call to it, connection_type
//     "messaging_system".
//
// A half left alone that names no peer, and every lone server or consumer
// half, counts in traces_service_graph_unpaired_spans_total{client=…} or
// {server=…}. At most MaxPending halves wait in memory: beyond, a new
// half is dropped and counted in traces_service_graph_dropped_spans_total.
//
// # Pairing across replicas
//
// A half waits PairingTimeout in memory. Without a PairStore it is then
// alone. With one, it is offered to the store, which parks it under its
// key in PostgreSQL, or, when the other half was parked there before by
// any replica, removes that row and returns the pair to this caller only.
// Halves parked longer than SharedPairingTimeout are removed by Expire
// and settled as lone halves by the replica that removed them. Every call
// is counted exactly once across replicas because each half, at every
// moment, is in exactly one place (one replica's memory, or one row of the
// store), and it leaves that place only by an atomic step that hands it to
// exactly one replica: the offer that completes a row deletes it in the
// same transaction, under the row lock that makes a concurrent offer of
// the other half wait and then find the row complete; an expiry deletes
// the row it returns and skips rows locked by an offer. A failed offer
// parks nothing and the halves stay in memory for the next flush. At
// shutdown Run hands every waiting half to the store, so another replica
// can still pair it.
//
// # Writing the series
//
// Every derived series carries vigil_replica (Config.Replica, by default
// "<hostname>-<6 hex digits>"), so replicas never write the same series
// and queries sum over it. Each flush appends every live series (counters,
// and histograms as _bucket, _sum and _count) to one appender with their
// metadata, and commits. Values are cumulative within the process: a
// failed flush is rolled back and counted
// (vigil_derive_flush_failures_total), the state is kept, and the next
// flush writes the cumulative values again. A series written for the first
// time (or again after it was forgotten) is preceded by a 0 at the time of
// the previous successful flush (the Deriver's creation for the first; a
// millisecond later for a series whose stale marker is at that time), so
// the increase over any window is exact from the stored samples. A commit
// the metric pipeline refuses because its queue is full is tried again
// within the flush. A series
// not updated for SeriesIdleTimeout gets a stale marker and is forgotten.
// At most MaxSeries series (span-metrics keys, edges and unpaired/dropped
// counters) are held; updates of new ones beyond are dropped and counted
// (vigil_derive_series_dropped_total). Calls become visible with the next
// flush.
//
// Each flush also writes, through the PairStore, at most one example trace
// per edge seen since the last flush, a failed call when there was one.
//
// # Map rollups
//
// With a RollupStore (Options.Rollups, or the PairStore when it is one),
// the Deriver also keeps the calls of the map by key: every edge (the
// dimensions of the traces_service_graph_* series) and every node (a
// service in its environment and namespace: its server and consumer
// spans, those with status Error, and their durations). The counts are
// those of the Prometheus series (calls, failed calls, server and client
// latencies in the buckets of storage.MapLatencyBounds, with their sums
// in seconds), cumulative from zero since the key was created. Each key
// gets an incarnation when it is created: a number unique within the
// replica (they count up from the wall clock's nanoseconds when the
// Deriver was made, so a restart under the same replica name never reuses
// one); an edge forgotten after SeriesIdleTimeout, and a node none of
// whose spans was seen for that long, get a new one when seen again.
//
// Each flush writes, in one call, the cumulative counts of every key that
// changed since they were last taken, stamped with the flush time
// truncated to the minute (a later flush in the same minute replaces the
// row). A failed write is counted (vigil_derive_map_rollup_failures_total)
// and its rows are kept and written with the next flush, updated by then
// if their key changed again; a key forgotten meanwhile is written too.
// Calls are therefore counted in the minute of the write that first held
// them. At most MaxSeries rows wait that way; beyond, rows are dropped
// (vigil_derive_map_rollups_dropped_total) and their calls show only when
// their key is written again. The map of a window [start, end) is, per
// key, its last row before end minus its last row before start
// (storage/postgres/mapstore's MapTotals).
//
// # Cost
//
// Committed runs on the ingest path: it reads each span's attributes in
// one pass, updates maps under one lock per resource, copies only the
// strings of new series and waiting halves, and does no I/O; a server or
// consumer span's node is reached through its span-metrics series, so the
// rollups add no map lookup. BenchmarkCommitted and BenchmarkFlush
// measure it, with and without rollups.
package derive
