// Package ingest declares the contract between Vigil's receivers (OTLP,
// Jaeger and Zipkin, remote_write, scraping) and the write pipeline:
// receivers decode each protocol, validate it, and hand it to a consumer
// that returns only once the data is durable.
//
// Spans, log records and OTLP metrics are handed over as pdata
// (TraceConsumer, LogConsumer, MetricConsumer). Prometheus samples go
// through Prometheus's storage.AppendableV2 (imported as promstorage in
// Vigil): a receiver appends a request's samples to an appender and
// commits them. The appendable the receivers get is the metric pipeline,
// whose appenders follow the same contract as the consumers: Append only
// buffers; Commit returns nil only once every sample is durably
// committed; it returns ErrQueueFull or ErrShuttingDown (retryable), an
// error wrapping storage.ErrUnavailable (retryable), ctx.Err() of the
// context the appender was made with, or a *RefusedSamples when the store
// refused some samples and committed the others. A receiver must not
// modify the labels and histograms it appended.
//
// The errors of this contract are answered alike by every receiver (see
// ingest/internal/receiver): a retryable refusal carries a retry delay,
// as gRPC RetryInfo and HTTP Retry-After.
//
// The receivers live in sub-packages (ingest/otlp, ingest/jaeger,
// ingest/promremote), what they share in ingest/internal/receiver; the
// batching pipeline and the translation of OTLP metrics into Prometheus
// samples live in ingest/pipeline.
package ingest
