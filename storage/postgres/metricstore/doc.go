// Package metricstore is Vigil's PostgreSQL metric store: a Prometheus
// storage.AppendableV2 that every metric input writes through (the metric
// pipeline of ingest/pipeline, fed by remote_write, OTLP metrics,
// scraping, rule output and the span-derived series) and a
// storage.Queryable that PromQL (query/promql) reads through, with
// per-query read limits (Store.LimitedQuerier).
//
// Series are label-pair id arrays over a label dictionary (metric_labels);
// samples land in metric_samples, partitioned by two-hour window, one
// binary COPY per commit; the Compactor turns each past window into one
// metric_chunks row per series (Prometheus XOR and XOR2 chunks, and
// native histograms in Vigil's encoding, histogram.go) and drops the raw
// partition. Reads merge raw samples and chunks in one statement, so a
// compaction committing meanwhile hides nothing. The series a selection
// matches are cached per matcher set and dropped when a new series is
// created (selection.go, the series generation of migration 0009), unless
// this process created it: then the selection is advanced in place. The
// samples of the last hour that reads asked for are kept in the process
// (the head, head.go), so a selection read again reads from PostgreSQL
// only what is newer than it last read; late writes announce themselves
// through the late generation (migration 0013). Local writes feed the
// head once committed, and a selection is answered from the head alone
// when a reading of the batch sequence proves that nobody else wrote since
// (every sample write draws its batch number before its COPY and a closing
// value after its commit, on every replica). Errors come back as
// storage sentinels (storage.ErrUnavailable, storage.ErrLimitExceeded).
// docs/storage.md explains the schema and the compaction.
package metricstore
