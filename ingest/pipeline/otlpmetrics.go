package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/prometheus/config"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigil-obs/vigil/ingest"
)

// ErrInvalidMetrics is wrapped by ConsumeMetrics errors for data points the
// translation refused (e.g. invalid histograms), delta points that could
// not be accumulated (out of order, already counted), or samples the store
// refused; the other points of the request were stored.
var ErrInvalidMetrics = fmt.Errorf("invalid metrics: %w", ingest.ErrPartlyStored)

// OTLPMetricsConfig selects Prometheus's OTLP translation options; the
// zero value is Prometheus's default (UnderscoreEscapingWithSuffixes,
// target_info on).
type OTLPMetricsConfig struct {
	// PromoteResourceAttributes are resource attributes copied onto every
	// series of the resource as labels (besides job and instance).
	PromoteResourceAttributes []string `yaml:"promote_resource_attributes"`
	// KeepIdentifyingResourceAttributes keeps service.name,
	// service.namespace and service.instance.id on target_info.
	KeepIdentifyingResourceAttributes bool `yaml:"keep_identifying_resource_attributes"`
	// ConvertHistogramsToNHCB stores explicit-bucket histograms as native
	// histograms with custom buckets instead of _bucket/_sum/_count series.
	ConvertHistogramsToNHCB bool `yaml:"convert_histograms_to_nhcb"`
	// MaxDeltaStreams bounds the delta streams accumulated into cumulative
	// series (default 100,000); points of further streams are refused.
	MaxDeltaStreams int `yaml:"max_delta_streams"`
	// DeltaStreamTTL is how long a delta stream's running total is kept
	// without a new point (default 1 h).
	DeltaStreamTTL time.Duration `yaml:"delta_stream_ttl"`
}

// Validate reports the first invalid setting.
func (c OTLPMetricsConfig) Validate() error {
	switch {
	case c.MaxDeltaStreams < 0:
		return errors.New("metrics.otlp.max_delta_streams must not be negative")
	case c.DeltaStreamTTL < 0:
		return errors.New("metrics.otlp.delta_stream_ttl must not be negative")
	}
	return nil
}

// OTLPMetrics is the metric consumer of the OTLP receivers: it turns OTLP
// metrics into Prometheus samples with Prometheus's own OTLP translation
// (storage/remote/otlptranslator/prometheusremotewrite), after
// accumulating delta metrics into cumulative ones (DeltaAccumulator), and
// commits them into an AppendableV2: in Vigil the MetricPipeline, so that
// they are group-committed with every other sample. It implements
// ingest.MetricConsumer. Safe for concurrent use: each call uses its own
// appender and converter.
type OTLPMetrics struct {
	app      promstorage.AppendableV2
	settings prometheusremotewrite.Settings
	delta    *DeltaAccumulator
	logger   *slog.Logger
}

// NewOTLPMetrics returns a consumer writing into app. Zero config fields
// take their defaults; a nil logger discards.
func NewOTLPMetrics(app promstorage.AppendableV2, cfg OTLPMetricsConfig, logger *slog.Logger) *OTLPMetrics {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := prometheusremotewrite.Settings{
		AddMetricSuffixes:                 true,
		KeepIdentifyingResourceAttributes: cfg.KeepIdentifyingResourceAttributes,
		ConvertHistogramsToNHCB:           cfg.ConvertHistogramsToNHCB,
		LookbackDelta:                     5 * time.Minute,
	}
	if len(cfg.PromoteResourceAttributes) > 0 {
		s.PromoteResourceAttributes = prometheusremotewrite.NewPromoteResourceAttributes(config.OTLPConfig{PromoteResourceAttributes: cfg.PromoteResourceAttributes})
	}
	return &OTLPMetrics{app: app, settings: s, delta: NewDeltaAccumulator(cfg.MaxDeltaStreams, cfg.DeltaStreamTTL),
		logger: logger.With("component", "otlp_metrics")}
}

// ConsumeMetrics turns delta sums and histograms into cumulative ones (see
// DeltaAccumulator), translates md and returns once every translated
// sample is committed. Points refused on the way, by the translation or
// by the store, are skipped and reported in an error wrapping
// ErrInvalidMetrics, after the valid rest was committed; any other error
// (the errors of ingest.MetricConsumer: queue full, shutting down,
// storage unavailable, ctx) means nothing of md was stored. md is
// modified: its delta metrics become cumulative.
func (c *OTLPMetrics) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	dropped, deltaErr := c.delta.Convert(md)
	app := c.app.AppenderV2(ctx)
	conv := prometheusremotewrite.NewPrometheusConverter(app)
	annots, convErr := conv.FromMetrics(ctx, md, c.settings)
	if err := ctx.Err(); err != nil {
		_ = app.Rollback()
		return err
	}
	if err := app.Commit(); err != nil {
		var refused *ingest.RefusedSamples
		if !errors.As(err, &refused) {
			return fmt.Errorf("commit metrics: %w", err)
		}
		convErr = errors.Join(convErr, refused)
	}
	if ws, _ := annots.AsStrings("", 5, 0); len(ws) > 0 {
		c.logger.DebugContext(ctx, "otlp metrics translated with warnings", "warnings", ws)
	}
	if deltaErr != nil {
		convErr = errors.Join(fmt.Errorf("%d delta points not accumulated: %w", dropped, deltaErr), convErr)
	}
	if convErr != nil {
		return fmt.Errorf("translate metrics: %w: %w", ErrInvalidMetrics, convErr)
	}
	return nil
}
