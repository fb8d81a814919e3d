package ingest

import (
	"context"

	"go.opentelemetry.io/collector/pdata/plog"
)

// LogConsumer takes decoded, validated log records.
//
// ConsumeLogs returns nil only once every record of ld is durably
// committed to the database; it never acknowledges data that was not
// stored. It returns ErrQueueFull or ErrShuttingDown (retryable), an error
// wrapping storage.ErrUnavailable when the database cannot be reached
// (retryable), or ctx.Err(). The consumer does not modify ld, but it may
// keep reading it until it returns, and a consumer that publishes
// committed records (the live tail) may keep reading it after; callers
// must not mutate ld once they passed it. Safe for concurrent use.
type LogConsumer interface {
	ConsumeLogs(ctx context.Context, ld plog.Logs) error
}

// LogConsumerFunc adapts a function to LogConsumer.
type LogConsumerFunc func(ctx context.Context, ld plog.Logs) error

// ConsumeLogs calls f(ctx, ld).
func (f LogConsumerFunc) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	return f(ctx, ld)
}
