// Package jaeger is Vigil's receiver for legacy tracing protocols, a
// drop-in for a Jaeger collector and agent and for a Zipkin server:
//
//   - Jaeger agent UDP, compact thrift (default port 6831) and binary
//     thrift (6832), Agent.emitBatch (and emitZipkinBatch). Each port
//     accepts both encodings, told apart by the first byte of the datagram
//     (0x82 compact, 0x80 binary): jaeger-client for Node sends binary
//     thrift to 6831, which a real Jaeger agent rejects;
//   - Jaeger collector HTTP (14268): POST /api/traces with a binary thrift
//     jaeger.Batch (application/x-thrift or
//     application/vnd.apache.thrift.binary; compact with
//     application/vnd.apache.thrift.compact), optionally gzip-compressed;
//   - Jaeger collector gRPC (14250): jaeger.api_v2.CollectorService/PostSpans;
//   - Zipkin v2 (9411): POST /api/v2/spans, JSON or protobuf
//     (application/x-protobuf), optionally gzip-compressed.
//
// It decodes with the Jaeger IDL thrift and protobuf types and translates
// with the OpenTelemetry Collector contrib Jaeger and Zipkin translators
// into pdata, then follows the OTLP receiver's path:
// ingest.ValidateTracesReport and the same ingest.TraceConsumer (the
// group-commit pipeline), so that these spans are stored and read like
// OTLP ones. Their tags are kept as the client sent them, keys and value
// types: the translators' renaming of http.status_code to
// http.response.status_code is turned off (its feature gates, at New), and
// what they still change (error=true and otel.status_code taken into the
// status, hostname and jaeger.version renamed) is put back (tags.go). A
// search by either generation of a renamed name finds both (storage/semconv).
//
// HTTP and gRPC acknowledge (202 Accepted, as Jaeger and Zipkin do; gRPC
// OK) only once the consumer has committed the valid spans; invalid input
// gets 400 / INVALID_ARGUMENT with a message naming the problem, pipeline
// push-back 429 / RESOURCE_EXHAUSTED or 503 / UNAVAILABLE with a retry
// delay, like the OTLP receiver: the answers, the reading of bodies and
// the lifecycle of the HTTP and gRPC servers are those of every receiver
// (ingest/internal/receiver). Ingest bearer tokens (internal/auth)
// apply to HTTP and gRPC. HTTP and gRPC requests are read under the
// in-flight byte budget shared with the other receivers
// (internal/inflight) and Config.ReadTimeout, as in the OTLP receiver: a
// request the budget cannot cover gets 429 / RESOURCE_EXHAUSTED with a
// retry delay.
//
// UDP has neither acknowledgement nor back-pressure nor credentials: no
// token is checked, so expose these ports only to trusted senders. Each
// port has one reader goroutine that only reads, into pooled buffers of
// MaxDatagramBytes (65,000) bytes, and hands datagrams to a bounded queue
// (Config.UDPQueueSize) drained by Config.UDPWorkers workers that decode,
// validate and wait for the consumer. The reader never blocks on the
// pipeline: when the queue is full it drops the datagram, and when the
// consumer answers ErrQueueFull a worker drops the datagram's spans; both
// are counted (vigil_ingest_jaeger_udp_packets_dropped_total by reason,
// and vigil_ingest_spans_rejected_total{reason="queue_full"}). On Linux
// the datagrams the kernel drops because the socket's receive buffer
// (Config.UDPSocketBufferBytes) is full are counted too, with reason
// "kernel_buffer", from the SO_RXQ_OVFL counter the kernel attaches to
// the next datagram delivered. Malformed datagrams are counted
// (vigil_ingest_jaeger_udp_packets_malformed_total) and never affect
// other datagrams.
package jaeger
