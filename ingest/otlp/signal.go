package otlp

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receiver"
)

// signal is one OTLP signal (traces, logs, metrics): the export path
// shared with the other receivers (validation, consumer, counters) and
// the OTLP answer, for both transports. D is the pdata payload, Req and
// Resp the export request and response types.
type signal[D any, Req, Resp otlpMessage] struct {
	exporter receiver.Exporter[D]

	newRequest  func() Req
	data        func(Req) D
	descriptor  protoreflect.MessageDescriptor // of Req, for error locations
	newResponse func() Resp
	partial     func(r Resp, rejected int64, msg string)
}

// export validates d (removing invalid items in place), gives the rest to
// the consumer and returns the OTLP answer: a response, with a partial
// success when items were rejected, or a status when the request as a
// whole failed.
func (s *signal[D, Req, Resp]) export(ctx context.Context, d D, c *ingest.Counters, protocol string) (Resp, *status.Status) {
	res := s.exporter.Export(ctx, d, c, protocol)
	if res.Status != nil {
		var none Resp
		return none, res.Status
	}
	resp := s.newResponse()
	if res.Message != "" {
		s.partial(resp, int64(res.Rejected), receiver.CleanMessage(res.Message))
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
		return nil, receiver.InvalidArgument(fmt.Sprintf("decode %s %s: %v", enc, h.signal.descriptor.Name(), err))
	}
	resp, st := h.signal.export(ctx, h.signal.data(req), h.counters, ingest.ProtocolOTLPHTTP)
	if st != nil {
		return nil, st
	}
	out, err := enc.marshal(resp)
	if err != nil {
		return nil, status.New(codes.Internal, receiver.CleanMessage("encode response: "+err.Error()))
	}
	return out, nil
}
