// Package receiver is what Vigil's network receivers (ingest/otlp,
// ingest/jaeger, ingest/promremote) share, so that they answer the same
// failure the same way and start and stop alike:
//
//   - the answer to a failure: a consumer's error mapped to a gRPC code, a
//     reason label and a retry hint ([ConsumerStatus]); the gRPC code mapped
//     to an HTTP status ([HTTPStatus], [RemoteWriteStatus]); the retry hint
//     carried as a RetryInfo detail for gRPC and as Retry-After for HTTP
//     ([Retryable], [SetRetryAfter]); messages made valid UTF-8 and bounded
//     ([CleanMessage]);
//   - the path of one request through validation and the consumer, with the
//     ingest counters ([Exporter]);
//   - reading an HTTP body under the size limit and the in-flight byte
//     budget, decompressing it ([BodyReader]), and authentication
//     ([Authenticate]);
//   - the lifecycle of the servers: listeners bound when built
//     ([ListenGRPC], [ListenHTTP]), run together by a [Group] whose Run
//     returns once every goroutine ended, a shutdown bounded by
//     Config.ShutdownTimeout (reported unfinished only while a handler
//     still runs, not while a client holds an idle connection), and an
//     idempotent Close.
//
// It sits between the network and the consumers of package ingest; the
// protocols' own decoding and answer formats stay in their packages.
package receiver
