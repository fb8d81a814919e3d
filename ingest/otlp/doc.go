// Package otlp is Vigil's OTLP receiver: it accepts OTLP/gRPC (default port
// 4317) and OTLP/HTTP (default port 4318, protobuf or JSON, optionally
// gzip-, deflate- or zstd-compressed) exports of traces, metrics and logs,
// decodes them into pdata, validates them (ingest.ValidateTracesReport
// and its siblings), and hands the valid rest to an ingest consumer,
// answering only once the consumer has made it durable.
//
// It implements the OTLP 1.x server semantics: partial success when some
// items were rejected, INVALID_ARGUMENT/400 with a message naming the
// offending field when nothing can be accepted, and retryable answers
// (RESOURCE_EXHAUSTED/429, UNAVAILABLE/503, with a retry delay) when the
// pipeline pushes back, so that exporters retry and nothing acknowledged is
// lost. These answers, the reading of bodies and the servers' lifecycle
// are shared with the other receivers (ingest/internal/receiver).
//
// Memory is bounded across receivers by the in-flight byte budget they
// share (Options.Budget, internal/inflight): an HTTP body is read into a
// buffer that grows with the bytes that arrive (after decompression) and
// is charged as it grows, a gRPC message is charged once grpc-go has read
// it, and the charge is held until the request is answered. A request
// the budget cannot cover is refused with 429 / RESOURCE_EXHAUSTED and a
// retry delay rather than buffered. Config.ReadTimeout cuts clients that
// send a request too slowly (408, or CANCELLED for gRPC), and
// Config.MaxConcurrentStreams bounds the gRPC calls of one connection.
//
// Each signal is one service on the gRPC server and one path on the HTTP
// server (/v1/traces, /v1/metrics, /v1/logs), enabled by its consumer
// being set in Options. In Vigil the metric consumer is
// pipeline.OTLPMetrics, which translates into the group-commit metric
// pipeline.
package otlp
