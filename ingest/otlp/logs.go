package otlp

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/ingest"
)

// logs is the log signal: validation, consumption and the answer, shared
// by both transports. It mirrors traces.
type logs struct {
	consumer   ingest.LogConsumer
	limits     ingest.Limits
	retryAfter time.Duration
	logger     *slog.Logger
}

// export validates ld (removing invalid records in place), gives the rest
// to the consumer and returns the OTLP answer: a response, with a partial
// success when records were rejected, or a status when the request as a
// whole failed.
func (l *logs) export(ctx context.Context, ld plog.Logs, c *ingest.Counters, protocol string) (plogotlp.ExportResponse, *status.Status) {
	received := ld.LogRecordCount()
	c.Received(received)
	if received == 0 {
		return plogotlp.NewExportResponse(), nil
	}
	report := ingest.ValidateLogsReport(ld, l.limits)
	c.RejectedByValidation(report)
	kept := received - report.Rejected
	if report.Rejected > 0 {
		l.logger.DebugContext(ctx, "rejected log records", "protocol", protocol, "rejected", report.Rejected, "kept", kept, "problems", report.Message)
	}
	if kept == 0 {
		return plogotlp.ExportResponse{}, invalidArgument(fmt.Sprintf("all %d log records rejected: %s", received, report.Message))
	}
	if err := l.consumer.ConsumeLogs(ctx, ld); err != nil {
		st, reason := consumerStatus(ctx, l.logger, err, l.retryAfter, "log records")
		c.Rejected(reason, kept)
		l.logger.DebugContext(ctx, "consumer refused log records", "protocol", protocol, "log_records", kept, "code", st.Code().String(), "err", err)
		return plogotlp.ExportResponse{}, st
	}
	c.Stored(kept)
	resp := plogotlp.NewExportResponse()
	if report.Rejected > 0 {
		ps := resp.PartialSuccess()
		ps.SetRejectedLogRecords(int64(report.Rejected))
		ps.SetErrorMessage(cleanMessage(report.Message))
	}
	return resp, nil
}

// logsGRPC serves the OTLP LogsService.
type logsGRPC struct {
	plogotlp.UnimplementedGRPCServer
	logs     *logs
	counters *ingest.Counters
}

// Export implements plogotlp.GRPCServer.
func (s *logsGRPC) Export(ctx context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	resp, st := s.logs.export(ctx, req.Logs(), s.counters, ingest.ProtocolOTLPGRPC)
	if st != nil {
		return plogotlp.NewExportResponse(), st.Err()
	}
	return resp, nil
}

// logsRequestDescriptor describes ExportLogsServiceRequest, for error
// locations only.
var logsRequestDescriptor = (&collogspb.ExportLogsServiceRequest{}).ProtoReflect().Descriptor()

// logsHTTP decodes OTLP/HTTP log bodies.
type logsHTTP struct {
	logs     *logs
	counters *ingest.Counters
}

// export implements httpSignal.
func (s *logsHTTP) export(ctx context.Context, body []byte, enc encoding) ([]byte, *status.Status) {
	req := plogotlp.NewExportRequest()
	if err := enc.unmarshal(req, logsRequestDescriptor, body); err != nil {
		return nil, invalidArgument(fmt.Sprintf("decode %s ExportLogsServiceRequest: %v", enc, err))
	}
	resp, st := s.logs.export(ctx, req.Logs(), s.counters, ingest.ProtocolOTLPHTTP)
	if st != nil {
		return nil, st
	}
	out, err := enc.marshal(resp)
	if err != nil {
		return nil, status.New(codes.Internal, cleanMessage("encode response: "+err.Error()))
	}
	return out, nil
}
