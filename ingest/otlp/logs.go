package otlp

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receiver"
)

// logs is the log signal.
type logs = signal[plog.Logs, plogotlp.ExportRequest, plogotlp.ExportResponse]

// newLogs returns the log signal over consumer.
func newLogs(consumer ingest.LogConsumer, limits ingest.Limits, retryAfter time.Duration, logger *slog.Logger) *logs {
	return &logs{
		exporter: receiver.Exporter[plog.Logs]{
			Noun: "log records", Count: plog.Logs.LogRecordCount, Validate: ingest.ValidateLogsReport,
			Consume: consumer.ConsumeLogs, Limits: limits, RetryAfter: retryAfter, Logger: logger,
		},
		newRequest:  plogotlp.NewExportRequest,
		data:        plogotlp.ExportRequest.Logs,
		descriptor:  logsRequestDescriptor,
		newResponse: plogotlp.NewExportResponse,
		partial: func(r plogotlp.ExportResponse, rejected int64, msg string) {
			r.PartialSuccess().SetRejectedLogRecords(rejected)
			r.PartialSuccess().SetErrorMessage(msg)
		},
	}
}

// logsGRPC serves the OTLP LogsService.
type logsGRPC struct {
	plogotlp.UnimplementedGRPCServer
	logs     *logs
	counters *ingest.Counters
}

// Export implements plogotlp.GRPCServer.
func (s *logsGRPC) Export(ctx context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	return s.logs.exportGRPC(ctx, req, s.counters)
}

// logsRequestDescriptor describes the export request, for error locations.
var logsRequestDescriptor = (&collogspb.ExportLogsServiceRequest{}).ProtoReflect().Descriptor()
