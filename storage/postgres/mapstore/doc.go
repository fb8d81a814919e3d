// Package mapstore keeps the service map's shared state in PostgreSQL
// (migrations/0010_servicemap):
//
//   - the halves of calls that found no partner in the memory of the
//     replica that saw them (Offer, Expire), so that a client span and
//     its server span reaching two replicas still make one edge, counted
//     by exactly one of them;
//   - example traces of the edges (WriteEdgeTraces, EdgeTraces), which
//     the service map lists for an edge and a window;
//   - per-minute rollups of the calls of every edge and node
//     (WriteMapRollups, MapTotals; migrations/0011_servicemap_rollups),
//     from which the map of a window is computed.
//
// ingest/derive is the writer (a Store is its derive.PairStore and
// derive.RollupStore); query/servicemap reads the example traces and the
// rollups.
//
// # Rollups
//
// A key (servicemap_keys) is an edge or a node as counted by one replica
// in one incarnation; its counts only grow. WriteMapRollups upserts the
// keys of a flush (moving last_seen to the flush's minute) and their row
// of that minute in servicemap_rollups, in one transaction of two
// statements over arrays. MapTotals reads, in one statement, for every key
// alive in the window, its last row in the window and its last row in the
// KeyLookback before it (two descents of the primary key), and subtracts
// and sums them in Go: 1,200 keys over a day take about 15 ms
// (BenchmarkMapTotals). servicemap_rollups is partitioned by day and
// dropped by retention with the other tables; each WriteMapRollups then
// deletes at most 500 keys whose rows are all gone (their last_seen over
// a day old and its row missing), oldest first, so keys do not pile up. The store does not pair by
// itself: it keeps halves under their pairing key and hands back a row
// once both sides are in it. Errors come back classified by pgcore
// (storage.ErrUnavailable when the database cannot serve, or the
// context's error).
package mapstore
