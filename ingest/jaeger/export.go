package jaeger

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receiver"
)

// exporter validates decoded spans and hands the valid ones to the
// consumer; every transport of the package goes through it, as the OTLP
// receiver's do.
type exporter = receiver.Exporter[ptrace.Traces]

// newExporter returns the span exporter over consumer.
func newExporter(consumer ingest.TraceConsumer, limits ingest.Limits, retryAfter time.Duration, logger *slog.Logger) *exporter {
	return &exporter{
		Noun: "spans", Count: ptrace.Traces.SpanCount, Validate: ingest.ValidateTracesReport,
		Consume: consumer.ConsumeTraces, Limits: limits, RetryAfter: retryAfter, Logger: logger,
	}
}
