package otlpmetrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigil-obs/vigil/ingest"
)

// ErrInvalidMetrics is wrapped by ConsumeMetrics errors for data points the
// translation refused (e.g. invalid histograms) or delta points that could
// not be accumulated (out of order, already counted); the other points of
// the request were stored.
var ErrInvalidMetrics = fmt.Errorf("invalid metrics: %w", ingest.ErrPartlyStored)

// Config selects Prometheus's OTLP translation options; the zero value is
// Prometheus's default (UnderscoreEscapingWithSuffixes, target_info on).
type Config struct {
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

// Consumer writes OTLP metrics into an AppendableV2. Safe for concurrent
// use: each call uses its own appender and converter.
type Consumer struct {
	app      storage.AppendableV2
	settings prometheusremotewrite.Settings
	delta    *Accumulator
	logger   *slog.Logger
}

// NewConsumer returns a consumer writing into app. A nil logger discards.
func NewConsumer(app storage.AppendableV2, cfg Config, logger *slog.Logger) *Consumer {
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
	return &Consumer{app: app, settings: s, delta: NewAccumulator(cfg.MaxDeltaStreams, cfg.DeltaStreamTTL),
		logger: logger.With("component", "otlp_metrics")}
}

// ConsumeMetrics turns delta sums and histograms into cumulative ones (see
// Accumulator), translates md and returns once every translated sample is
// committed. Points refused on the way are skipped and reported in an
// error wrapping ErrInvalidMetrics, after the valid rest was committed; any
// other error (storage, ctx) means nothing of md was stored. md is
// modified: its delta metrics become cumulative.
func (c *Consumer) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	dropped, deltaErr := c.delta.Convert(md)
	app := c.app.AppenderV2(ctx)
	conv := prometheusremotewrite.NewPrometheusConverter(app)
	annots, convErr := conv.FromMetrics(ctx, md, c.settings)
	if err := ctx.Err(); err != nil {
		_ = app.Rollback()
		return err
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("commit metrics: %w", err)
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
