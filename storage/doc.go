// Package storage is the leaf of Vigil's data flow: ingest and query depend
// on the value types (trace, log and service queries and records, the
// per-query ReadLimits, the service graph's halves of calls, map rollups
// and edge traces) and the sentinels (ErrNotFound, ErrUnavailable,
// ErrLimitExceeded) declared here, and the stores under storage/postgres
// implement them. Its subpackage semconv holds the attribute names that
// changed between semantic-convention generations, which the stores'
// searches treat as aliases. It imports no SQL driver. See docs/storage.md for the
// schema and docs/architecture.md for where it sits.
package storage
