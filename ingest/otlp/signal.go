package otlp

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/vigil-obs/vigil/ingest"
)

// signal is one OTLP signal (traces, logs, metrics): validation,
// consumption and the answer, shared by both transports. D is the pdata
// payload, Req and Resp the export request and response types.
type signal[D any, Req, Resp otlpMessage] struct {
	noun string // "spans", "log records", "metric data points"

	count    func(D) int
	validate func(D, ingest.Limits) ingest.ValidationReport
	consume  func(context.Context, D) error
	// accepted maps a consumer error that still means "the valid rest is
	// stored" (a translation warning) to a partial-success message; nil
	// when the signal has none.
	accepted func(error) (msg string, ok bool)

	newRequest  func() Req
	data        func(Req) D
	descriptor  protoreflect.MessageDescriptor // of Req, for error locations
	newResponse func() Resp
	partial     func(r Resp, rejected int64, msg string)

	limits     ingest.Limits
	retryAfter time.Duration
	logger     *slog.Logger
}

// export validates d (removing invalid items in place), gives the rest to
// the consumer and returns the OTLP answer: a response, with a partial
// success when items were rejected, or a status when the request as a
// whole failed.
func (s *signal[D, Req, Resp]) export(ctx context.Context, d D, c *ingest.Counters, protocol string) (Resp, *status.Status) {
	var none Resp
	received := s.count(d)
	c.Received(received)
	if received == 0 {
		return s.newResponse(), nil
	}
	report := s.validate(d, s.limits)
	c.RejectedByValidation(report)
	kept := received - report.Rejected
	if report.Rejected > 0 {
		s.logger.DebugContext(ctx, "rejected "+s.noun, "protocol", protocol, "rejected", report.Rejected, "kept", kept, "problems", report.Message)
	}
	if kept == 0 {
		return none, invalidArgument(fmt.Sprintf("all %d %s rejected: %s", received, s.noun, report.Message))
	}
	msg := report.Message
	if err := s.consume(ctx, d); err != nil {
		warning, ok := "", false
		if s.accepted != nil {
			warning, ok = s.accepted(err)
		}
		if !ok {
			st, reason := consumerStatus(ctx, s.logger, err, s.retryAfter, s.noun)
			c.Rejected(reason, kept)
			s.logger.DebugContext(ctx, "consumer refused "+s.noun, "protocol", protocol, "items", kept, "code", st.Code().String(), "err", err)
			return none, st
		}
		if msg != "" {
			msg += "; "
		}
		msg += warning
	}
	c.Stored(kept)
	resp := s.newResponse()
	if msg != "" {
		s.partial(resp, int64(report.Rejected), cleanMessage(msg))
	}
	return resp, nil
}

// exportGRPC serves a gRPC Export call of the signal.
func (s *signal[D, Req, Resp]) exportGRPC(ctx context.Context, req Req, c *ingest.Counters) (Resp, error) {
	resp, st := s.export(ctx, s.data(req), c, ingest.ProtocolOTLPGRPC)
	if st != nil {
		return s.newResponse(), st.Err()
	}
	return resp, nil
}

// signalHTTP decodes OTLP/HTTP bodies of one signal; it implements
// httpSignal.
type signalHTTP[D any, Req, Resp otlpMessage] struct {
	signal   *signal[D, Req, Resp]
	counters *ingest.Counters
}

func (h *signalHTTP[D, Req, Resp]) export(ctx context.Context, body []byte, enc encoding) ([]byte, *status.Status) {
	req := h.signal.newRequest()
	if err := enc.unmarshal(req, h.signal.descriptor, body); err != nil {
		return nil, invalidArgument(fmt.Sprintf("decode %s %s: %v", enc, h.signal.descriptor.Name(), err))
	}
	resp, st := h.signal.export(ctx, h.signal.data(req), h.counters, ingest.ProtocolOTLPHTTP)
	if st != nil {
		return nil, st
	}
	out, err := enc.marshal(resp)
	if err != nil {
		return nil, status.New(codes.Internal, cleanMessage("encode response: "+err.Error()))
	}
	return out, nil
}
