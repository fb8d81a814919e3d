package ingest

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// ErrQueueFull is returned by a consumer whose bounded queue cannot take the
// request now. It is retryable: receivers answer gRPC RESOURCE_EXHAUSTED or
// HTTP 429 with Retry-After so that exporters back off and retry.
var ErrQueueFull = errors.New("ingest queue full")

// ErrShuttingDown is returned once the pipeline stopped accepting data. It is
// retryable (gRPC UNAVAILABLE, HTTP 503).
var ErrShuttingDown = errors.New("ingest pipeline shutting down")

// TraceConsumer takes decoded, validated spans.
//
// ConsumeTraces returns nil only once every span of td is durably committed
// to the database; it never acknowledges data that was not stored. It returns
// ErrQueueFull or ErrShuttingDown (retryable), an error wrapping
// storage.ErrUnavailable when the database cannot be reached (retryable), or
// ctx.Err(). The consumer does not modify td, but it may keep reading it
// until it returns; callers must not mutate td concurrently. Safe for
// concurrent use.
type TraceConsumer interface {
	ConsumeTraces(ctx context.Context, td ptrace.Traces) error
}

// ErrPartlyStored is wrapped by a consumer's error when it stored the
// valid part of the data and refused the rest (translation warnings,
// unsupported points): receivers answer success with a partial-success
// message naming what was refused, never a retryable error.
var ErrPartlyStored = errors.New("partly stored")

// MetricConsumer takes decoded, validated metrics. ConsumeMetrics returns
// nil only once every data point is durably committed, with the same
// errors as TraceConsumer, or an error wrapping ErrPartlyStored when some
// points were refused and the rest committed.
type MetricConsumer interface {
	ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error
}

// TraceConsumerFunc adapts a function to TraceConsumer.
type TraceConsumerFunc func(ctx context.Context, td ptrace.Traces) error

// ConsumeTraces calls f(ctx, td).
func (f TraceConsumerFunc) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	return f(ctx, td)
}
