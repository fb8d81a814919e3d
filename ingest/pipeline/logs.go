package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/plog"
)

// LogWriter durably stores a batch of logs in one commit. A nil error
// means every record of every element is committed; on error none is.
type LogWriter interface {
	WriteLogs(ctx context.Context, batch []plog.Logs) error
}

// LogConfig sizes the log pipeline; the fields mean what Config's mean,
// counted in log records.
type LogConfig struct {
	MaxQueueRecords int           `yaml:"max_queue_records"`
	MaxBatchRecords int           `yaml:"max_batch_records"`
	Writers         int           `yaml:"writers"`
	WriteTimeout    time.Duration `yaml:"write_timeout"`
}

// DefaultLogConfig returns the documented defaults: 200,000 queued
// records, 20,000 per COPY, 2 writers, 30 s per batch.
func DefaultLogConfig() LogConfig {
	return LogConfig{MaxQueueRecords: 200_000, MaxBatchRecords: 20_000, Writers: 2, WriteTimeout: 30 * time.Second}
}

// Validate reports the first invalid setting.
func (c LogConfig) Validate() error {
	switch {
	case c.MaxQueueRecords <= 0:
		return errors.New("logs.pipeline.max_queue_records must be positive")
	case c.MaxBatchRecords <= 0:
		return errors.New("logs.pipeline.max_batch_records must be positive")
	case c.Writers <= 0:
		return errors.New("logs.pipeline.writers must be positive")
	case c.WriteTimeout <= 0:
		return errors.New("logs.pipeline.write_timeout must be positive")
	}
	return nil
}

// LogOptions holds the log pipeline's dependencies.
type LogOptions struct {
	Writer LogWriter
	// Committed, when set, is called after each successful commit with
	// the requests it held, in queue order, before they are answered (so
	// a live-tail client sees a record no later than the exporter's
	// acknowledgement). It runs on a writer goroutine: it must not block,
	// and it must not modify the logs, which it may keep (they are no
	// longer touched by the pipeline or the receivers).
	Committed  func(batch []plog.Logs)
	Logger     *slog.Logger          // nil = discard
	Registerer prometheus.Registerer // nil = no metrics
}

// LogPipeline is the group-commit log pipeline, the same batcher as
// Pipeline for spans: concurrent requests are batched into one COPY, a
// request is answered once its batch committed, and a bounded queue pushes
// back with ingest.ErrQueueFull. It implements ingest.LogConsumer. Safe for
// concurrent use.
type LogPipeline struct {
	b *batcher[plog.Logs]
}

// NewLogs returns a log pipeline; call Run to start its writers. Its
// metrics are vigil_pipeline_queue_log_records,
// vigil_pipeline_batch_log_records, and
// vigil_pipeline_commit_duration_seconds and
// vigil_pipeline_batch_errors_total with signal="logs".
func NewLogs(cfg LogConfig, opts LogOptions) (*LogPipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Writer == nil {
		return nil, errors.New("log pipeline: no writer")
	}
	b, err := newBatcher(batchConfig{cfg.MaxQueueRecords, cfg.MaxBatchRecords, cfg.Writers, cfg.WriteTimeout},
		batchSpec[plog.Logs]{signal: "logs", unit: "log_records",
			count: func(ld plog.Logs) int { return ld.LogRecordCount() }, write: opts.Writer.WriteLogs,
			committed: opts.Committed},
		opts.Logger, opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &LogPipeline{b: b}, nil
}

// ConsumeLogs queues ld and waits until it is committed. See
// ingest.LogConsumer for the contract. If ctx ends first the call returns
// ctx.Err(), but the records may still be committed later.
func (p *LogPipeline) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	return p.b.consume(ctx, ld)
}

// Run starts the writers and blocks until ctx is cancelled and everything
// accepted before that has been written (or has failed).
func (p *LogPipeline) Run(ctx context.Context) error { return p.b.run(ctx) }
