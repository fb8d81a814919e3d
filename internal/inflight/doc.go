// Package inflight bounds the memory that ingest requests hold at once.
//
// One [Budget] of bytes is shared by every receiver that buffers whole
// requests: OTLP/HTTP and OTLP/gRPC, the Jaeger collector's HTTP and gRPC
// APIs, Zipkin, and Prometheus remote_write. A request takes bytes from
// the budget as it reads them and gives them back when it has been
// answered; when the budget cannot cover the next bytes, the request is
// refused with a retryable answer (HTTP 429 or 503 with Retry-After, gRPC
// RESOURCE_EXHAUSTED with RetryInfo) instead of being buffered, so that
// exporters back off and retry and nothing acknowledged is lost.
//
// What a request is charged:
//
//   - HTTP bodies are read by [ReadAll] into a buffer that grows in
//     doubling steps as bytes actually arrive, never sized from the
//     declared Content-Length; the capacity of that buffer (the
//     decompressed body when the request is compressed) is charged before
//     each step. A remote_write body, a snappy block decoded whole, is
//     charged as it arrives and then for its decompressed size. A client that declares a large body and sends little
//     holds only the first step (8 KiB) or twice what it sent. A declared
//     length larger than what the budget has free is refused before
//     anything is read, rather than half-way.
//   - gRPC messages are read by grpc-go before any handler runs, so
//     [Budget.GRPCServerOptions] charges each request message's
//     decompressed size as soon as it has arrived, refuses the call when
//     that does not fit, and refuses new streams up front while the budget
//     has no room for a message of the largest allowed size.
//   - The charge is held until the request has been answered: the decoded
//     data (pdata, about 3.3 times the size of a protobuf body of small
//     spans) lives exactly as long, while the pipeline commits it, so the
//     charge stands for it too, and [DefaultMaxBytes] leaves room for it.
//     Copies the pipeline keeps after answering are bounded by the
//     pipeline's own queue limits, not by this budget.
//
// UDP datagrams (the Jaeger agent ports) are not charged: their memory is
// bounded by the receiver's queue of fixed-size buffers.
//
// The package sits between the network and the decoders of ingest/...: it
// never looks at the payload.
package inflight
