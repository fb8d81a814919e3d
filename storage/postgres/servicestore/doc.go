// Package servicestore answers Vigil's service catalogue (query/services,
// served by web/api at GET /api/vigil/services): every service the span
// and log writers recorded in the services dictionary, when it was first
// and last seen, and which signals it still has stored.
//
// It is the one store that reads the tables of all three signals (spans,
// logs and their compacted log_blocks, metric_labels), and it only reads: rows get there through the
// span, log and metric stores (storage/postgres/spanstore, logstore,
// metricstore), and leave with their partitions.
package servicestore
