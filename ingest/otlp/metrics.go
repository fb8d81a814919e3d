package otlp

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receiver"
)

// metrics is the metric signal.
type metrics = signal[pmetric.Metrics, pmetricotlp.ExportRequest, pmetricotlp.ExportResponse]

// newMetrics returns the metric signal over consumer.
func newMetrics(consumer ingest.MetricConsumer, limits ingest.Limits, retryAfter time.Duration, logger *slog.Logger) *metrics {
	return &metrics{
		exporter: receiver.Exporter[pmetric.Metrics]{
			Noun: "metric data points", Count: pmetric.Metrics.DataPointCount, Validate: ingest.ValidateMetricsReport,
			Consume: consumer.ConsumeMetrics, Limits: limits, RetryAfter: retryAfter, Logger: logger,
			Partial: func(err error) (string, bool) {
				if errors.Is(err, ingest.ErrPartlyStored) {
					return err.Error(), true
				}
				return "", false
			},
		},
		newRequest:  pmetricotlp.NewExportRequest,
		data:        pmetricotlp.ExportRequest.Metrics,
		descriptor:  metricsRequestDescriptor,
		newResponse: pmetricotlp.NewExportResponse,
		partial: func(r pmetricotlp.ExportResponse, rejected int64, msg string) {
			r.PartialSuccess().SetRejectedDataPoints(rejected)
			r.PartialSuccess().SetErrorMessage(msg)
		},
	}
}

// metricsGRPC serves the OTLP MetricsService.
type metricsGRPC struct {
	pmetricotlp.UnimplementedGRPCServer
	metrics  *metrics
	counters *ingest.Counters
}

// Export implements pmetricotlp.GRPCServer.
func (s *metricsGRPC) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	return s.metrics.exportGRPC(ctx, req, s.counters)
}

// metricsRequestDescriptor describes the export request, for error
// locations.
var metricsRequestDescriptor = (&colmetricspb.ExportMetricsServiceRequest{}).ProtoReflect().Descriptor()
