// Package mapstore keeps the service map's shared state in PostgreSQL
// (migrations/0010_servicemap):
//
//   - the halves of calls that found no partner in the memory of the
//     replica that saw them (Offer, Expire), so that a client span and
//     its server span reaching two replicas still make one edge, counted
//     by exactly one of them;
//   - example traces of the edges (WriteEdgeTraces, EdgeTraces), which
//     the service map lists for an edge and a window.
//
// ingest/derive is the writer (a Store is its derive.PairStore);
// query/servicemap reads the example traces. The store does not pair by
// itself: it keeps halves under their pairing key and hands back a row
// once both sides are in it. Errors come back classified by pgcore
// (storage.ErrUnavailable when the database cannot serve, or the
// context's error).
package mapstore
