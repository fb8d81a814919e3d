// Package pipeline batches span writes across concurrent receiver requests
// (group commit). A request is acknowledged only after the batch holding it
// has been committed by the storage writer; memory is bounded by a span
// budget, and a full queue is refused at once with ingest.ErrQueueFull so
// exporters back off. It sits between the receivers of ingest/* and
// storage/postgres.
package pipeline
