package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-obs/vigil/ingest"
)

// MetricConfig sizes the metric pipeline; the fields mean what Config's
// mean, counted in samples (a histogram sample counts as one).
type MetricConfig struct {
	MaxQueueSamples int           `yaml:"max_queue_samples"`
	MaxBatchSamples int           `yaml:"max_batch_samples"`
	Writers         int           `yaml:"writers"`
	WriteTimeout    time.Duration `yaml:"write_timeout"`
}

// DefaultMetricConfig returns the documented defaults: 200,000 queued
// samples, 20,000 per commit, 2 writers, 30 s per batch.
func DefaultMetricConfig() MetricConfig {
	return MetricConfig{MaxQueueSamples: 200_000, MaxBatchSamples: 20_000, Writers: 2, WriteTimeout: 30 * time.Second}
}

// Validate reports the first invalid setting.
func (c MetricConfig) Validate() error {
	switch {
	case c.MaxQueueSamples <= 0:
		return errors.New("metrics.pipeline.max_queue_samples must be positive")
	case c.MaxBatchSamples <= 0:
		return errors.New("metrics.pipeline.max_batch_samples must be positive")
	case c.Writers <= 0:
		return errors.New("metrics.pipeline.writers must be positive")
	case c.WriteTimeout <= 0:
		return errors.New("metrics.pipeline.write_timeout must be positive")
	}
	return nil
}

// MetricOptions holds the metric pipeline's dependencies.
type MetricOptions struct {
	// Writer is the store: each batch is appended to one of its
	// appenders and committed once. Its Commit must return nil only once
	// every sample it accepted is durable; an Append error refuses that
	// sample alone.
	Writer     promstorage.AppendableV2
	Logger     *slog.Logger          // nil = discard
	Registerer prometheus.Registerer // nil = no metrics
}

// MetricPipeline is the group-commit metric pipeline, the same batcher
// as Pipeline for spans: the samples of concurrent requests are appended
// to one store appender and committed together, a request is answered
// once its batch committed, and a bounded queue pushes back with
// ingest.ErrQueueFull. The receivers see it as Prometheus's
// storage.AppendableV2 (see AppenderV2); OTLPMetrics translates OTLP
// metrics into it. Safe for concurrent use.
type MetricPipeline struct {
	b      *batcher[*sampleBatch]
	writer promstorage.AppendableV2
}

// NewMetrics returns a metric pipeline writing into opts.Writer; call Run
// to start its writers. Its metrics are vigil_pipeline_queue_samples,
// vigil_pipeline_batch_samples, and vigil_pipeline_commit_duration_seconds
// and vigil_pipeline_batch_errors_total with signal="metrics".
func NewMetrics(cfg MetricConfig, opts MetricOptions) (*MetricPipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Writer == nil {
		return nil, errors.New("metric pipeline: no writer")
	}
	p := &MetricPipeline{writer: opts.Writer}
	b, err := newBatcher(batchConfig{cfg.MaxQueueSamples, cfg.MaxBatchSamples, cfg.Writers, cfg.WriteTimeout},
		batchSpec[*sampleBatch]{signal: "metrics", unit: "samples",
			count: func(sb *sampleBatch) int { return len(sb.samples) }, write: p.write},
		opts.Logger, opts.Registerer)
	if err != nil {
		return nil, err
	}
	p.b = b
	return p, nil
}

// Run starts the writers and blocks until ctx is cancelled and everything
// accepted before that has been written (or has failed). Commits arriving
// after cancellation get ingest.ErrShuttingDown.
func (p *MetricPipeline) Run(ctx context.Context) error { return p.b.run(ctx) }

// AppenderV2 returns an appender over the pipeline. Its Append buffers
// the sample and never fails; it returns reference 0 (references are the
// store's, known once the batch is written), so callers pass 0. Commit
// queues the samples as one request and waits until the batch holding
// them has been committed, following the contract of package ingest: nil
// once every sample is durable; ingest.ErrQueueFull when the queue cannot
// take them now, ingest.ErrShuttingDown, an error wrapping
// storage.ErrUnavailable, or ctx.Err() when ctx ends first (the samples
// may still be committed later); an *ingest.RefusedSamples when the store
// refused some samples (their Append failed) and committed the others.
// The labels and histograms passed to Append are kept, not copied:
// callers must not modify them once appended (labels.Labels built by
// Prometheus's builders are never modified), even after a Commit that
// returned ctx.Err(), as the queued samples are still written. Metadata given in
// the options is kept per metric family, the first of each. The
// appender is not safe for concurrent use.
func (p *MetricPipeline) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return &pipelineAppender{p: p, ctx: ctx, b: &sampleBatch{}}
}

// MetadataUpdater is implemented by stores that keep metric metadata
// apart from samples, as Prometheus's remote_write 1.0 sends it.
type MetadataUpdater interface {
	UpdateMetadata(ctx context.Context, md map[string]metadata.Metadata) error
}

// UpdateMetadata records the metadata of metric families in the writer
// when it is a MetadataUpdater, directly: metadata is small, idempotent
// and not worth a queue. With another writer it does nothing.
func (p *MetricPipeline) UpdateMetadata(ctx context.Context, md map[string]metadata.Metadata) error {
	if mu, ok := p.writer.(MetadataUpdater); ok {
		return mu.UpdateMetadata(ctx, md)
	}
	return nil
}

// sampleBatch is the samples of one commit, the item the batcher groups.
type sampleBatch struct {
	samples []bufferedSample
	meta    []familyMetadata
	// refused is set by the writer: the samples the store refused in the
	// last attempt to write this batch.
	refused []ingest.RefusedSample
}

// bufferedSample is one Append call.
type bufferedSample struct {
	ls    labels.Labels
	st, t int64
	v     float64
	h     *histogram.Histogram
	fh    *histogram.FloatHistogram
	meta  int32 // 1 + index in sampleBatch.meta of the family this sample introduced; 0 for none
}

type familyMetadata struct {
	family string
	md     metadata.Metadata
}

// write appends every sample of the batch to one appender of the store
// and commits them. Samples the store refuses are recorded in their own
// request; the commit's error fails the whole batch.
func (p *MetricPipeline) write(ctx context.Context, batch []*sampleBatch) error {
	app := p.writer.AppenderV2(ctx)
	for _, sb := range batch {
		sb.refused = sb.refused[:0]
		for i := range sb.samples {
			s := &sb.samples[i]
			var opts promstorage.AppendV2Options
			if s.meta > 0 {
				m := &sb.meta[s.meta-1]
				opts.MetricFamilyName, opts.Metadata = m.family, m.md
			}
			if _, err := app.Append(0, s.ls, s.st, s.t, s.v, s.h, s.fh, opts); err != nil {
				sb.refused = append(sb.refused, ingest.RefusedSample{Index: i, Err: err})
			}
		}
	}
	return app.Commit()
}

// pipelineAppender buffers one request's samples; see
// MetricPipeline.AppenderV2.
type pipelineAppender struct {
	p   *MetricPipeline
	ctx context.Context
	b   *sampleBatch

	families   map[string]int32 // families whose metadata is kept: their bufferedSample.meta
	lastFamily string           // of the last Append with metadata, to skip the map
}

// Append implements promstorage.AppenderV2.
func (a *pipelineAppender) Append(_ promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	if a.b == nil {
		return 0, errors.New("append after commit or rollback")
	}
	s := bufferedSample{ls: ls, st: st, t: t, v: v, h: h, fh: fh}
	if m := opts.Metadata; m.Type != "" || m.Help != "" || m.Unit != "" {
		fam := opts.MetricFamilyName
		if fam == "" {
			fam = ls.Get(model.MetricNameLabel)
		}
		if fam != a.lastFamily {
			idx, seen := a.families[fam]
			if !seen {
				if a.families == nil {
					a.families = map[string]int32{}
				}
				// The option's bytes live only during the call (the scrape
				// loop's buffer is reused): keep copies.
				fam = strings.Clone(fam)
				m = metadata.Metadata{Type: model.MetricType(strings.Clone(string(m.Type))), Help: strings.Clone(m.Help), Unit: strings.Clone(m.Unit)}
				a.b.meta = append(a.b.meta, familyMetadata{family: fam, md: m})
				idx = int32(len(a.b.meta))
				a.families[fam] = idx
				s.meta = idx
			}
			a.lastFamily = a.b.meta[idx-1].family
		}
	}
	a.b.samples = append(a.b.samples, s)
	return seriesRef(ls), nil
}

// seriesRef is the reference Append returns: the labels' hash, never 0.
// The pipeline ignores references passed in, but Prometheus's scrape loop
// tracks a series (and writes its staleness marker when it disappears)
// only when Append gave it a non-zero reference.
func seriesRef(ls labels.Labels) promstorage.SeriesRef {
	if ref := promstorage.SeriesRef(ls.Hash()); ref != 0 {
		return ref
	}
	return 1
}

// Commit implements promstorage.AppenderV2; see MetricPipeline.AppenderV2.
func (a *pipelineAppender) Commit() error {
	sb := a.b
	a.b = nil
	if sb == nil {
		return errors.New("commit after commit or rollback")
	}
	if err := a.p.b.consume(a.ctx, sb); err != nil {
		return err
	}
	if len(sb.refused) > 0 {
		return &ingest.RefusedSamples{Samples: sb.refused}
	}
	return nil
}

// Rollback implements promstorage.AppenderV2: the buffered samples are
// dropped.
func (a *pipelineAppender) Rollback() error {
	a.b = nil
	return nil
}
