package otlp

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receiver"
)

// traces is the trace signal.
type traces = signal[ptrace.Traces, ptraceotlp.ExportRequest, ptraceotlp.ExportResponse]

// newTraces returns the trace signal over consumer.
func newTraces(consumer ingest.TraceConsumer, limits ingest.Limits, retryAfter time.Duration, logger *slog.Logger) *traces {
	return &traces{
		exporter: receiver.Exporter[ptrace.Traces]{
			Noun: "spans", Count: ptrace.Traces.SpanCount, Validate: ingest.ValidateTracesReport,
			Consume: consumer.ConsumeTraces, Limits: limits, RetryAfter: retryAfter, Logger: logger,
		},
		newRequest:  ptraceotlp.NewExportRequest,
		data:        ptraceotlp.ExportRequest.Traces,
		descriptor:  traceRequestDescriptor,
		newResponse: ptraceotlp.NewExportResponse,
		partial: func(r ptraceotlp.ExportResponse, rejected int64, msg string) {
			r.PartialSuccess().SetRejectedSpans(rejected)
			r.PartialSuccess().SetErrorMessage(msg)
		},
	}
}

// tracesGRPC serves the OTLP TraceService.
type tracesGRPC struct {
	ptraceotlp.UnimplementedGRPCServer
	traces   *traces
	counters *ingest.Counters
}

// Export implements ptraceotlp.GRPCServer.
func (s *tracesGRPC) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	return s.traces.exportGRPC(ctx, req, s.counters)
}

// traceRequestDescriptor describes the export request, for error locations.
var traceRequestDescriptor = (&coltracepb.ExportTraceServiceRequest{}).ProtoReflect().Descriptor()
