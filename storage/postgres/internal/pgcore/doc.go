// Package pgcore is the SQL plumbing every PostgreSQL store of Vigil
// shares: the binary COPY encoder that all writers (spans, logs, metric
// samples, compacted chunks) use, COPY with its retry on a missing
// partition (CopyIn; CopyAllIn for several streams committed together),
// the session advisory lock of a job one replica runs at a time (TryLock:
// the compactors), the one varint decoder behind every stored encoding (span and
// log payloads, resources, histogram samples, chunk segments), statement
// arguments for SQL built from constant parts, and the classification of
// database errors (Classify): every error a store returns matches a
// storage sentinel (storage.ErrUnavailable), ErrStatement, ErrCorrupt or
// a context error, and keeps the driver's text for logs without holding
// any pgx type.
//
// It sits under the stores (storage/postgres/spanstore, logstore,
// metricstore, servicestore) and the internal dictionaries
// (storage/postgres/internal/dict); it knows no table. Receivers hand data
// to the ingest pipeline, the pipeline to a store, and the store encodes it
// here; query/* reads through the stores, which decode here.
package pgcore
