package jaeger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/storage"
)

// maxMessageBytes bounds the messages put in answers; decoder errors can
// quote large parts of the input.
const maxMessageBytes = 2048

// exporter validates decoded spans and hands the valid ones to the
// consumer; every transport of the package goes through it.
type exporter struct {
	consumer   ingest.TraceConsumer
	limits     ingest.Limits
	retryAfter time.Duration
	logger     *slog.Logger
}

// exportResult is what became of the spans of one request or datagram.
type exportResult struct {
	// st is nil when the valid spans were stored, else the answer for the
	// whole request: InvalidArgument when every span was invalid, or the
	// mapping of the consumer's error.
	st *status.Status
	// reason is the ingest.Reason* label of a consumer refusal; empty on
	// success and when validation rejected everything.
	reason string
	// rejected counts the spans validation removed; message names them.
	rejected int
	message  string
}

// export validates td in place (removing invalid spans), gives the rest to
// the consumer and reports the outcome, updating c. It returns success
// only after the consumer returned nil, so the caller may acknowledge.
func (e *exporter) export(ctx context.Context, td ptrace.Traces, c *ingest.Counters, protocol string) exportResult {
	received := td.SpanCount()
	c.Received(received)
	if received == 0 {
		return exportResult{}
	}
	report := ingest.ValidateTracesReport(td, e.limits)
	c.RejectedByValidation(report)
	kept := received - report.Rejected
	res := exportResult{rejected: report.Rejected, message: report.Message}
	if report.Rejected > 0 {
		e.logger.DebugContext(ctx, "rejected spans", "protocol", protocol, "rejected", report.Rejected, "kept", kept, "problems", report.Message)
	}
	if kept == 0 {
		res.st = status.New(codes.InvalidArgument, cleanMessage(fmt.Sprintf("all %d spans rejected: %s", received, report.Message)))
		return res
	}
	if err := e.consumer.ConsumeTraces(ctx, td); err != nil {
		res.st, res.reason = e.consumerStatus(ctx, err)
		c.Rejected(res.reason, kept)
		e.logger.DebugContext(ctx, "consumer refused spans", "protocol", protocol, "spans", kept, "code", res.st.Code().String(), "err", err)
		return res
	}
	c.Stored(kept)
	return res
}

// consumerStatus maps an error of the consumer to the answer senders get
// and to the reason label of the rejected counters, logging the errors
// that are Vigil's fault. Messages are fixed strings: the consumer's error
// may carry database details.
func (e *exporter) consumerStatus(ctx context.Context, err error) (*status.Status, string) {
	switch {
	case errors.Is(err, ingest.ErrQueueFull):
		return retryable(codes.ResourceExhausted, "ingest queue full, retry later", e.retryAfter), ingest.ReasonQueueFull
	case errors.Is(err, ingest.ErrShuttingDown):
		return retryable(codes.Unavailable, "ingest pipeline shutting down, retry later", e.retryAfter), ingest.ReasonUnavailable
	case errors.Is(err, storage.ErrUnavailable):
		return retryable(codes.Unavailable, "storage unavailable, retry later", e.retryAfter), ingest.ReasonUnavailable
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, "request canceled before the spans were stored"), ingest.ReasonCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "deadline exceeded before the spans were stored"), ingest.ReasonCanceled
	default:
		e.logger.ErrorContext(ctx, "store spans", "err", err)
		return status.New(codes.Internal, "internal error storing spans"), ingest.ReasonError
	}
}

// retryable returns a status carrying a RetryInfo detail, the delay gRPC
// senders (and the OTel Collector's exporters) wait before retrying.
func retryable(code codes.Code, msg string, after time.Duration) *status.Status {
	st := status.New(code, msg)
	if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)}); err == nil {
		return withInfo
	}
	return st
}

// overBudget is the status of a request refused because the in-flight
// byte budget shared by the receivers is spent.
func overBudget(retryAfter time.Duration) *status.Status {
	return retryable(codes.ResourceExhausted, "too many request bytes in flight, retry later", retryAfter)
}

// cleanMessage makes msg valid UTF-8 (protobuf strings must be) and
// bounded in size.
func cleanMessage(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if len(msg) <= maxMessageBytes {
		return msg
	}
	cut := maxMessageBytes
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "..."
}
