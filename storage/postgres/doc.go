// Package postgres is what Vigil's PostgreSQL stores share with the code
// that wires them (cmd/vigil): Open connects a pool with the session
// settings every query relies on, Migrate applies the embedded migrations
// under an advisory lock, SchemaVersion tells readiness, and Partitions
// keeps the time partitions of every table (created ahead, created on
// demand for a late write, dropped after retention, which a table's
// compacted or index form, log_blocks and span_tags, takes from the table
// it serves; a drop locks the parent table first, as readers do; Run is
// the maintenance loop). Errors come back as storage sentinels
// (storage.ErrUnavailable when the database cannot be reached), never as
// pgx types of a retryable kind.
//
// The stores live below it, one package per signal, each with its SQL
// beside it:
//
//	spanstore     spans: COPY writer, trace by id, trace search
//	logstore      log records: COPY writer, search, histogram, trace logs
//	metricstore   Prometheus series and samples: appender, Queryable, compaction
//	servicestore  the service catalogue, the one reader of every signal's tables
//	alertstore    alerts, silences and the notification log shared by replicas
//	mapstore      halves of calls waiting for a partner, the map's rollups, edge traces
//	registrystore the Consul-compatible registry's services, checks and change index
//	leader        one replica per job, under a session advisory lock
//	internal/pgcore  COPY encoding, varint decoding, error classification
//	internal/dict    dictionaries and payload blocks shared by spans and logs
//
// Receivers hand data to ingest/pipeline, which commits it through a
// store's writer; query/* reads through the stores. docs/storage.md
// explains the schema.
package postgres
