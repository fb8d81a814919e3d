// Package pipeline batches the writes of concurrent receiver requests
// (group commit) for every signal: spans (Pipeline), log records
// (LogPipeline) and metric samples (MetricPipeline), all on one generic
// batcher. A request is acknowledged only after the batch holding it has
// been committed by the storage writer; memory is bounded by a queue
// counted in items (spans, records, samples), and a request the queue
// cannot take is refused at once with ingest.ErrQueueFull so that senders
// back off and retry; after shutdown began, with ingest.ErrShuttingDown.
// When a batch fails for a reason other than an unavailable database,
// its requests are written again one by one so that only the culprit
// fails. A committed batch of spans or log records is shown to a
// Committed hook before its requests are answered: the live tail, the
// span-derived series (ingest/derive) and the liveness series
// (ingest/liveness) see exactly what was stored.
//
// Metric samples enter as Prometheus's storage.AppendableV2: remote_write
// appends to a MetricPipeline appender and commits, which queues the
// request's samples and waits for their batch; the writer appends every
// sample of the batch to one appender of the store and commits once.
// Samples the store refuses fail alone (ingest.RefusedSamples). OTLP
// metrics enter through OTLPMetrics, which accumulates delta metrics into
// cumulative ones (DeltaAccumulator) and translates them with
// Prometheus's own OTLP translator into the same appendable. Metadata
// travels with the samples (AppendV2Options) or, for remote_write 1.0,
// apart through MetricPipeline.UpdateMetadata; the appender keeps its own
// copies of the strings it is given. Append returns the labels' hash as
// the series reference, so that Prometheus's scrape loop tracks series
// and writes their staleness markers.
//
// The package sits between the receivers of ingest/* and the stores of
// storage/postgres.
package pipeline
