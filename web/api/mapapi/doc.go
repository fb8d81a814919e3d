// Package mapapi serves Vigil's native service-map API: the map of a
// window (GET /api/vigil/servicemap), its nodes and edges with exact call
// counts, error ratios, latency quantiles and the reference client's
// decisions, and the example traces of one edge
// (GET /api/vigil/servicemap/traces).
//
// It sits between the web server, which mounts it (New returns a
// web.Mounter that cmd/vigil hands to web.New), and the service-map query
// layer (query/servicemap), which owns the default window, the longest
// one and the trace limits, and reads the deriver's per-minute rollups;
// the handlers reach it through [Reader]. A map's window is widened to
// whole minutes (start down, end up) and its "start" and "end" in the
// answer are that widened window, the one its figures and rates are of.
// Answers are {"data": ..., "errors": null}; errors go through the one
// mapping of the Jaeger-envelope APIs (api.ErrorStatus): bad parameters,
// an unknown filter attribute and a window longer than the retention are
// 400 naming the parameter, storage failures a fixed message. Every
// parameter is first checked as every API checks it (api.CheckParams).
package mapapi
