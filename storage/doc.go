// Package storage is the leaf of Vigil's data flow: ingest and query depend
// on the values and sentinels declared here, and storage/postgres implements
// them. See docs/storage.md for the schema.
package storage
