// Package logstore is Vigil's PostgreSQL log store: it writes the records
// the log pipeline (ingest/pipeline) commits, one binary COPY per batch
// into the logs table partitioned by two-hour window (its rows sorted by
// window, service and time, so that the COPY fills one partition after
// another and index entries arrive in key order), and answers
// query/logs: search with cursor pagination, the volume histogram and the
// logs of a trace. RunPendingCleaner merges the text index's pending
// entries every few seconds, so that no COPY of the pipeline stalls to do
// it (pending.go).
//
// A record is one narrow row: times, ids, severity and the body's text in
// columns, the hashes of the body's tokens computed here (tokens.go) for
// the text index, whose candidates' bodies are then tested for the tokens
// themselves, an attribute Bloom filter, and the rest in a compact
// payload (payload.go) whose attribute keys and short values are ids of
// the dictionaries shared with the span store
// (storage/postgres/internal/dict). attr. filters treat the renamed
// semantic-convention attributes as aliases (the kind-independent part of
// storage/semconv).
//
// Closed windows are compacted (compact.go, Compactor) into log_blocks:
// one row per service and run of at most 1,000 records, their fields in
// zstd-compressed column streams (block.go), with block-level columns and
// indexes (time range, service, severity, trace ids, hashed tokens,
// attribute Bloom) that narrow a search to blocks; the records of a
// candidate block are then tested exactly as SQL tests a raw row
// (blockread.go), and every read merges raw rows and blocks, so a query
// answers the same before and after compaction. A candidate block's data
// is indexed by record rather than decoded (dataView), a text search
// looks for its tokens in all the block's bodies at once (bodyHits), and
// only the records that match are built.
//
// Errors come back as storage sentinels (storage.ErrUnavailable when the
// database cannot be reached). docs/storage.md explains the schema, the
// text search and the block format.
package logstore
