package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// SpanWriter durably stores a batch of traces in one commit. A nil error
// means every span of every element is committed; on error none of them
// is.
type SpanWriter interface {
	WriteTraces(ctx context.Context, batch []ptrace.Traces) error
}

// Config sizes the pipeline.
type Config struct {
	// MaxQueueSpans bounds the spans accepted but not yet committed. A
	// request that would exceed it is refused with ingest.ErrQueueFull
	// (unless the queue is empty, so one huge request still gets through).
	MaxQueueSpans int `yaml:"max_queue_spans"`
	// MaxBatchSpans caps the spans of one COPY.
	MaxBatchSpans int `yaml:"max_batch_spans"`
	// Writers is how many batches may be written concurrently.
	Writers int `yaml:"writers"`
	// WriteTimeout bounds one batch write.
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{MaxQueueSpans: 200_000, MaxBatchSpans: 20_000, Writers: 4, WriteTimeout: 30 * time.Second}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.MaxQueueSpans <= 0:
		return errors.New("pipeline.max_queue_spans must be positive")
	case c.MaxBatchSpans <= 0:
		return errors.New("pipeline.max_batch_spans must be positive")
	case c.Writers <= 0:
		return errors.New("pipeline.writers must be positive")
	case c.WriteTimeout <= 0:
		return errors.New("pipeline.write_timeout must be positive")
	}
	return nil
}

// Options holds the pipeline's dependencies.
type Options struct {
	Writer SpanWriter
	// Committed, when set, is called after each successful commit with
	// the requests it held, in queue order, before they are answered: the
	// service graph and span metrics (ingest/derive) count exactly what
	// was stored. It runs on a writer goroutine: it must not block, and it
	// must not modify the traces.
	Committed  func(batch []ptrace.Traces)
	Logger     *slog.Logger          // nil = discard
	Registerer prometheus.Registerer // nil = no metrics
}

// Pipeline is the group-commit span pipeline. It implements
// ingest.TraceConsumer. Safe for concurrent use.
type Pipeline struct {
	b *batcher[ptrace.Traces]
}

// New returns a pipeline; call Run to start its writers.
func New(cfg Config, opts Options) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Writer == nil {
		return nil, errors.New("pipeline: no writer")
	}
	b, err := newBatcher(batchConfig{cfg.MaxQueueSpans, cfg.MaxBatchSpans, cfg.Writers, cfg.WriteTimeout},
		batchSpec[ptrace.Traces]{signal: "traces", unit: "spans",
			count: func(td ptrace.Traces) int { return td.SpanCount() }, write: opts.Writer.WriteTraces,
			committed: opts.Committed},
		opts.Logger, opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Pipeline{b: b}, nil
}

// ConsumeTraces queues td and waits until it is committed. See
// ingest.TraceConsumer for the contract. If ctx ends first the call
// returns ctx.Err(), but the spans may still be committed later (the
// exporter's retry then stores them twice, never zero times).
func (p *Pipeline) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	return p.b.consume(ctx, td)
}

// Run starts the writers and blocks until ctx is cancelled and everything
// accepted before that has been written (or has failed). Requests arriving
// after cancellation get ingest.ErrShuttingDown.
func (p *Pipeline) Run(ctx context.Context) error { return p.b.run(ctx) }
