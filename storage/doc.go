// Package storage is the leaf of Vigil's data flow: ingest and query depend
// on the value types (trace, log and service queries and records, the
// per-query ReadLimits, the service graph's halves of calls, map rollups
// and edge traces) and the sentinels (ErrNotFound, ErrUnavailable,
// ErrLimitExceeded) declared here, and the stores under storage/postgres
// implement them. Its subpackage semconv holds the attribute names that
// changed between semantic-convention generations, which the stores'
// searches treat as aliases. A trace search answers FoundTraces, which
// says when the store stopped at its bound before the whole window
// (Truncated, SearchedFrom). The top-level fields of a JSON log body, for
// attribute filters, come from one scanner (EachJSONBodyField,
// JSONBodyFields) that answers as encoding/json would. It imports no SQL
// driver. See docs/storage.md for the
// schema and docs/architecture.md for where it sits.
package storage
