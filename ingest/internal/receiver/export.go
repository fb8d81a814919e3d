package receiver

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/ingest"
)

// Exporter is the path of one signal's decoded data through validation
// and the consumer, shared by every transport that carries it. D is the
// pdata payload (ptrace.Traces, plog.Logs, pmetric.Metrics). The fields
// are set once; Export is safe for concurrent use when Consume is.
type Exporter[D any] struct {
	// Noun names the items in messages and logs: "spans", "log records".
	Noun string
	// Count returns the items of d.
	Count func(D) int
	// Validate removes invalid items from d in place and reports them.
	Validate func(D, ingest.Limits) ingest.ValidationReport
	// Consume is the consumer (see ingest.TraceConsumer for the
	// contract).
	Consume func(context.Context, D) error
	// Partial, when set, recognises a consumer error that still means
	// "the valid rest is stored" (ingest.ErrPartlyStored) and returns the
	// message to report as a partial success.
	Partial func(error) (msg string, ok bool)

	Limits     ingest.Limits
	RetryAfter time.Duration
	Logger     *slog.Logger
}

// Result is what became of the items of one request.
type Result struct {
	// Status is nil when the valid items were stored, else the answer for
	// the whole request: INVALID_ARGUMENT when every item was invalid, or
	// ConsumerStatus of the consumer's error.
	Status *status.Status
	// Reason is the ingest.Reason* label of a consumer refusal; empty on
	// success and when validation rejected everything.
	Reason string
	// Rejected counts the items validation removed.
	Rejected int
	// Message names the items validation removed and, after a partial
	// success, what the consumer refused; empty when nothing was. Not
	// cleaned.
	Message string
}

// Export validates d in place (removing invalid items), gives the rest to
// the consumer and reports the outcome, updating c (a nil c counts
// nothing). It returns success only after the consumer returned nil (or
// a partial success), so the caller may acknowledge.
func (e *Exporter[D]) Export(ctx context.Context, d D, c *ingest.Counters, protocol string) Result {
	received := e.Count(d)
	c.Received(received)
	if received == 0 {
		return Result{}
	}
	report := e.Validate(d, e.Limits)
	c.RejectedByValidation(report)
	kept := received - report.Rejected
	res := Result{Rejected: report.Rejected, Message: report.Message}
	if report.Rejected > 0 {
		e.Logger.DebugContext(ctx, "rejected "+e.Noun, "protocol", protocol, "rejected", report.Rejected, "kept", kept, "problems", report.Message)
	}
	if kept == 0 {
		res.Status = InvalidArgument(fmt.Sprintf("all %d %s rejected: %s", received, e.Noun, report.Message))
		return res
	}
	if err := e.Consume(ctx, d); err != nil {
		warning, ok := "", false
		if e.Partial != nil {
			warning, ok = e.Partial(err)
		}
		if !ok {
			res.Status, res.Reason = ConsumerStatus(ctx, e.Logger, err, e.RetryAfter, e.Noun)
			c.Rejected(res.Reason, kept)
			e.Logger.DebugContext(ctx, "consumer refused "+e.Noun, "protocol", protocol, "items", kept, "code", res.Status.Code().String(), "err", err)
			return res
		}
		if res.Message != "" {
			res.Message += "; "
		}
		res.Message += warning
	}
	c.Stored(kept)
	return res
}
