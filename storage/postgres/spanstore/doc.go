// Package spanstore is Vigil's PostgreSQL span store: it writes the spans
// the trace pipeline (ingest/pipeline) commits, one binary COPY per batch
// into the spans table partitioned by day, and answers query/traces: the
// service and operation lists, a trace by id and trace search.
//
// A span is one narrow row: what search filters on (times, duration,
// service, operation, status, trace id, an attribute Bloom filter) in
// columns, and everything else in a compact payload (payload.go) whose
// attribute keys and short values are ids of the dictionaries shared with
// the log store (storage/postgres/internal/dict). Errors come back as
// storage sentinels (storage.ErrNotFound, storage.ErrUnavailable), never
// as pgx types of a retryable kind. Tag filters treat the attribute names
// that changed between semantic-convention generations as aliases
// (storage/semconv) and match values by Jaeger's string forms (an integer
// 500 by "500"). Each written batch also records in span_tags, per
// service and attribute, where its values occur (tags.go: postings for
// rare values, time ranges for the others), so that search (search.go)
// skips the time a tag cannot be in and reads rare tags' traces directly;
// a search examines a bounded number of spans and says when it stopped
// before the end of its window (storage.FoundTraces). docs/storage.md
// explains the schema and the search.
package spanstore
