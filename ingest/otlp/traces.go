package otlp

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/ingest"
)

// traces is the trace signal: validation, consumption and the answer,
// shared by both transports.
type traces struct {
	consumer   ingest.TraceConsumer
	limits     ingest.Limits
	retryAfter time.Duration
	logger     *slog.Logger
}

// export validates td (removing invalid spans in place), gives the rest to
// the consumer and returns the OTLP answer: a response, with a partial
// success when spans were rejected, or a status when the request as a
// whole failed.
func (t *traces) export(ctx context.Context, td ptrace.Traces, c *ingest.Counters, protocol string) (ptraceotlp.ExportResponse, *status.Status) {
	received := td.SpanCount()
	c.Received(received)
	if received == 0 {
		return ptraceotlp.NewExportResponse(), nil
	}
	report := ingest.ValidateTracesReport(td, t.limits)
	c.RejectedByValidation(report)
	kept := received - report.Rejected
	if report.Rejected > 0 {
		t.logger.DebugContext(ctx, "rejected spans", "protocol", protocol, "rejected", report.Rejected, "kept", kept, "problems", report.Message)
	}
	if kept == 0 {
		return ptraceotlp.ExportResponse{}, invalidArgument(fmt.Sprintf("all %d spans rejected: %s", received, report.Message))
	}
	if err := t.consumer.ConsumeTraces(ctx, td); err != nil {
		st, reason := consumerStatus(ctx, t.logger, err, t.retryAfter, "spans")
		c.Rejected(reason, kept)
		t.logger.DebugContext(ctx, "consumer refused spans", "protocol", protocol, "spans", kept, "code", st.Code().String(), "err", err)
		return ptraceotlp.ExportResponse{}, st
	}
	c.Stored(kept)
	resp := ptraceotlp.NewExportResponse()
	if report.Rejected > 0 {
		ps := resp.PartialSuccess()
		ps.SetRejectedSpans(int64(report.Rejected))
		ps.SetErrorMessage(cleanMessage(report.Message))
	}
	return resp, nil
}

// tracesGRPC serves the OTLP TraceService.
type tracesGRPC struct {
	ptraceotlp.UnimplementedGRPCServer
	traces   *traces
	counters *ingest.Counters
}

// Export implements ptraceotlp.GRPCServer.
func (s *tracesGRPC) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	resp, st := s.traces.export(ctx, req.Traces(), s.counters, ingest.ProtocolOTLPGRPC)
	if st != nil {
		return ptraceotlp.NewExportResponse(), st.Err()
	}
	return resp, nil
}

// traceRequestDescriptor describes ExportTraceServiceRequest, for error
// locations only: decoding itself is pdata's.
var traceRequestDescriptor = (&coltracepb.ExportTraceServiceRequest{}).ProtoReflect().Descriptor()

// tracesHTTP decodes OTLP/HTTP trace bodies.
type tracesHTTP struct {
	traces   *traces
	counters *ingest.Counters
}

// export implements httpSignal.
func (s *tracesHTTP) export(ctx context.Context, body []byte, enc encoding) ([]byte, *status.Status) {
	req := ptraceotlp.NewExportRequest()
	if err := enc.unmarshal(req, traceRequestDescriptor, body); err != nil {
		return nil, invalidArgument(fmt.Sprintf("decode %s ExportTraceServiceRequest: %v", enc, err))
	}
	resp, st := s.traces.export(ctx, req.Traces(), s.counters, ingest.ProtocolOTLPHTTP)
	if st != nil {
		return nil, st
	}
	out, err := enc.marshal(resp)
	if err != nil {
		return nil, status.New(codes.Internal, cleanMessage("encode response: "+err.Error()))
	}
	return out, nil
}
