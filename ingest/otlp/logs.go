package otlp

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"

	"github.com/vigil-obs/vigil/ingest"
)

// logs is the log signal.
type logs = signal[plog.Logs, plogotlp.ExportRequest, plogotlp.ExportResponse]

// newLogs returns the log signal over consumer.
func newLogs(consumer ingest.LogConsumer, limits ingest.Limits, retryAfter time.Duration, logger *slog.Logger) *logs {
	return &logs{
		noun:        "log records",
		count:       plog.Logs.LogRecordCount,
		validate:    ingest.ValidateLogsReport,
		consume:     consumer.ConsumeLogs,
		newRequest:  plogotlp.NewExportRequest,
		data:        plogotlp.ExportRequest.Logs,
		descriptor:  logsRequestDescriptor,
		newResponse: plogotlp.NewExportResponse,
		partial: func(r plogotlp.ExportResponse, rejected int64, msg string) {
			r.PartialSuccess().SetRejectedLogRecords(rejected)
			r.PartialSuccess().SetErrorMessage(msg)
		},
		limits: limits, retryAfter: retryAfter, logger: logger,
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
