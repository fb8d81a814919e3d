package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/storage"
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
	Writer     SpanWriter
	Logger     *slog.Logger          // nil = discard
	Registerer prometheus.Registerer // nil = no metrics
}

type request struct {
	td    ptrace.Traces
	spans int
	done  chan error // buffered(1)
}

// Pipeline is the group-commit span pipeline. It implements
// ingest.TraceConsumer. Safe for concurrent use.
type Pipeline struct {
	cfg    Config
	writer SpanWriter
	logger *slog.Logger

	mu      sync.Mutex
	queued  int  // spans accepted and not yet answered
	closing bool // no new requests
	pending []*request
	wake    chan struct{} // signalled when pending grows or closing is set

	queueDepth  prometheus.Gauge
	batchSpans  prometheus.Histogram
	commitSecs  prometheus.Histogram
	batchErrors prometheus.Counter
}

// New returns a pipeline; call Run to start its writers.
func New(cfg Config, opts Options) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Writer == nil {
		return nil, errors.New("pipeline: no writer")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{
		cfg: cfg, writer: opts.Writer, logger: logger.With("component", "pipeline"),
		wake: make(chan struct{}, 1),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_pipeline_queue_spans", Help: "Spans accepted and waiting for commit."}),
		batchSpans: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_pipeline_batch_spans", Help: "Spans per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
		commitSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_pipeline_commit_duration_seconds", Help: "Time to write and commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		batchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_pipeline_batch_errors_total", Help: "Batches whose write failed."}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{p.queueDepth, p.batchSpans, p.commitSecs, p.batchErrors} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register pipeline metrics: %w", err)
			}
		}
	}
	return p, nil
}

// ConsumeTraces queues td and waits until it is committed. See
// ingest.TraceConsumer for the contract. If ctx ends first the call
// returns ctx.Err(), but the spans may still be committed later (the
// exporter's retry then stores them twice, never zero times).
func (p *Pipeline) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	n := td.SpanCount()
	if n == 0 {
		return nil
	}
	req := &request{td: td, spans: n, done: make(chan error, 1)}
	p.mu.Lock()
	switch {
	case p.closing:
		p.mu.Unlock()
		return ingest.ErrShuttingDown
	case p.queued > 0 && p.queued+n > p.cfg.MaxQueueSpans:
		p.mu.Unlock()
		return ingest.ErrQueueFull
	}
	p.queued += n
	p.pending = append(p.pending, req)
	p.queueDepth.Set(float64(p.queued))
	p.mu.Unlock()
	p.signal()

	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Pipeline) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take removes up to MaxBatchSpans worth of requests (at least one) from
// the queue. It returns nil when the queue is empty.
func (p *Pipeline) take() []*request {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) == 0 {
		return nil
	}
	spans, i := 0, 0
	for i < len(p.pending) && (i == 0 || spans+p.pending[i].spans <= p.cfg.MaxBatchSpans) {
		spans += p.pending[i].spans
		i++
	}
	batch := append([]*request(nil), p.pending[:i]...)
	p.pending = append(p.pending[:0], p.pending[i:]...)
	if len(p.pending) > 0 {
		// Let another idle writer pick up the rest.
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	return batch
}

// Run starts the writers and blocks until ctx is cancelled and everything
// accepted before that has been written (or has failed). Requests arriving
// after cancellation get ingest.ErrShuttingDown.
func (p *Pipeline) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < p.cfg.Writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.writeLoop(stop)
		}()
	}
	<-ctx.Done()
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	close(stop)
	wg.Wait()
	return nil
}

// writeLoop writes batches until stop is closed and the queue is drained.
// Batches are written with a context detached from Run's, so shutdown
// drains what was accepted instead of failing it.
func (p *Pipeline) writeLoop(stop <-chan struct{}) {
	for {
		if batch := p.take(); batch != nil {
			p.write(batch)
			continue
		}
		select {
		case <-p.wake:
		case <-stop:
			if batch := p.take(); batch != nil {
				p.write(batch)
				continue
			}
			return
		}
	}
}

func (p *Pipeline) write(batch []*request) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.WriteTimeout)
	defer cancel()
	tds := make([]ptrace.Traces, len(batch))
	spans := 0
	for i, r := range batch {
		tds[i] = r.td
		spans += r.spans
	}
	start := time.Now()
	err := p.writer.WriteTraces(ctx, tds)
	p.commitSecs.Observe(time.Since(start).Seconds())
	if err == nil {
		p.batchSpans.Observe(float64(spans))
		p.finish(batch, nil)
		return
	}
	p.batchErrors.Inc()
	if errors.Is(err, storage.ErrUnavailable) || len(batch) == 1 {
		p.logger.Warn("write batch", "err", err, "spans", spans, "requests", len(batch))
		p.finish(batch, err)
		return
	}
	// A data error in one request must not fail its neighbours: write each
	// request of the batch on its own so only the culprit fails.
	p.logger.Warn("write batch; retrying requests one by one", "err", err, "requests", len(batch))
	for _, r := range batch {
		rerr := p.writer.WriteTraces(ctx, []ptrace.Traces{r.td})
		if rerr != nil {
			p.logger.Warn("write request", "err", rerr, "spans", r.spans)
		}
		p.finish([]*request{r}, rerr)
	}
}

func (p *Pipeline) finish(batch []*request, err error) {
	n := 0
	for _, r := range batch {
		n += r.spans
		r.done <- err
	}
	p.mu.Lock()
	p.queued -= n
	p.queueDepth.Set(float64(p.queued))
	p.mu.Unlock()
}
