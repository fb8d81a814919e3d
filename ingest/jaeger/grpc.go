package jaeger

import (
	"context"

	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receiver"
)

// collectorGRPC serves jaeger.api_v2.CollectorService, the API Jaeger
// agents and the OTel Collector's Jaeger exporter use.
type collectorGRPC struct {
	api_v2.UnimplementedCollectorServiceServer
	exp      *exporter
	counters *ingest.Counters
}

// PostSpans implements api_v2.CollectorServiceServer. It answers only
// once the valid spans are committed; INVALID_ARGUMENT when none is valid,
// RESOURCE_EXHAUSTED or UNAVAILABLE (with RetryInfo) when the pipeline
// pushes back.
func (s *collectorGRPC) PostSpans(ctx context.Context, req *api_v2.PostSpansRequest) (*api_v2.PostSpansResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "empty PostSpansRequest")
	}
	td, err := protoToTraces([]*model.Batch{&req.Batch})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, receiver.CleanMessage("translate batch: "+err.Error()))
	}
	res := s.exp.Export(ctx, td, s.counters, ingest.ProtocolJaegerGRPC)
	if res.Status != nil {
		return nil, res.Status.Err()
	}
	return &api_v2.PostSpansResponse{}, nil
}
