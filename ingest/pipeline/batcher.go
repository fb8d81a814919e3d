package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/storage"
)

// batchConfig sizes a batcher, counted in items (spans, log records…).
type batchConfig struct {
	maxQueue, maxBatch, writers int
	writeTimeout                time.Duration
}

// batchSpec says what a batcher carries.
type batchSpec[T any] struct {
	signal string // metric label and log attribute: "traces", "logs"
	unit   string // metric name part: "spans", "log_records"
	count  func(T) int
	write  func(ctx context.Context, batch []T) error
	// committed, when set, sees every committed batch before its requests
	// are answered; it must not block.
	committed func(batch []T)
}

type batchItem[T any] struct {
	v    T
	n    int
	done chan error // buffered(1)
}

// batcher is the group-commit core shared by every signal's pipeline:
// concurrent requests queue under a bound counted in items, writer
// goroutines take everything queued (up to maxBatch items) and write it in
// one commit, and each request is answered with its batch's outcome. Safe
// for concurrent use.
type batcher[T any] struct {
	cfg    batchConfig
	spec   batchSpec[T]
	logger *slog.Logger

	mu      sync.Mutex
	queued  int  // items accepted and not yet answered
	closing bool // no new requests
	pending []*batchItem[T]
	wake    chan struct{} // signalled when pending grows

	queueDepth  prometheus.Gauge
	batchSize   prometheus.Histogram
	commitSecs  prometheus.Histogram
	batchErrors prometheus.Counter
}

func newBatcher[T any](cfg batchConfig, spec batchSpec[T], logger *slog.Logger, reg prometheus.Registerer) (*batcher[T], error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sig := prometheus.Labels{"signal": spec.signal}
	b := &batcher[T]{
		cfg: cfg, spec: spec, logger: logger.With("component", "pipeline", "signal", spec.signal),
		wake: make(chan struct{}, 1),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_pipeline_queue_" + spec.unit, Help: "Items accepted and waiting for commit."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_pipeline_batch_" + spec.unit, Help: "Items per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
		commitSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_pipeline_commit_duration_seconds", Help: "Time to write and commit one batch.",
			ConstLabels: sig, Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		batchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_pipeline_batch_errors_total", Help: "Batches whose write failed.", ConstLabels: sig}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{b.queueDepth, b.batchSize, b.commitSecs, b.batchErrors} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register %s pipeline metrics: %w", spec.signal, err)
			}
		}
	}
	return b, nil
}

// consume queues v and waits until it is committed; see
// ingest.TraceConsumer for the contract.
func (b *batcher[T]) consume(ctx context.Context, v T) error {
	n := b.spec.count(v)
	if n == 0 {
		return nil
	}
	it := &batchItem[T]{v: v, n: n, done: make(chan error, 1)}
	b.mu.Lock()
	switch {
	case b.closing:
		b.mu.Unlock()
		return ingest.ErrShuttingDown
	case b.queued > 0 && b.queued+n > b.cfg.maxQueue:
		b.mu.Unlock()
		return ingest.ErrQueueFull
	}
	b.queued += n
	b.pending = append(b.pending, it)
	b.queueDepth.Set(float64(b.queued))
	b.mu.Unlock()
	b.signal()

	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *batcher[T]) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// take removes up to maxBatch items worth of requests (at least one) from
// the queue; nil when it is empty.
func (b *batcher[T]) take() []*batchItem[T] {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 {
		return nil
	}
	n, i := 0, 0
	for i < len(b.pending) && (i == 0 || n+b.pending[i].n <= b.cfg.maxBatch) {
		n += b.pending[i].n
		i++
	}
	batch := append([]*batchItem[T](nil), b.pending[:i]...)
	b.pending = append(b.pending[:0], b.pending[i:]...)
	if len(b.pending) > 0 {
		b.signal() // let another idle writer pick up the rest
	}
	return batch
}

// run starts the writers and blocks until ctx is cancelled and everything
// accepted before that has been written (or has failed). Requests arriving
// after cancellation get ingest.ErrShuttingDown.
func (b *batcher[T]) run(ctx context.Context) error {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < b.cfg.writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.writeLoop(stop)
		}()
	}
	<-ctx.Done()
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	close(stop)
	wg.Wait()
	return nil
}

// writeLoop writes batches until stop is closed and the queue is drained.
// Batches are written with a context detached from run's, so shutdown
// drains what was accepted instead of failing it.
func (b *batcher[T]) writeLoop(stop <-chan struct{}) {
	for {
		if batch := b.take(); batch != nil {
			b.write(batch)
			continue
		}
		select {
		case <-b.wake:
		case <-stop:
			if batch := b.take(); batch != nil {
				b.write(batch)
				continue
			}
			return
		}
	}
}

func (b *batcher[T]) write(batch []*batchItem[T]) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.writeTimeout)
	defer cancel()
	vs := make([]T, len(batch))
	n := 0
	for i, it := range batch {
		vs[i] = it.v
		n += it.n
	}
	start := time.Now()
	err := b.spec.write(ctx, vs)
	b.commitSecs.Observe(time.Since(start).Seconds())
	if err == nil {
		b.batchSize.Observe(float64(n))
		b.finish(batch, nil)
		return
	}
	b.batchErrors.Inc()
	if errors.Is(err, storage.ErrUnavailable) || len(batch) == 1 {
		b.logger.Warn("write batch", "err", err, "items", n, "requests", len(batch))
		b.finish(batch, err)
		return
	}
	// A data error in one request must not fail its neighbours: write each
	// request of the batch on its own so only the culprit fails.
	b.logger.Warn("write batch; retrying requests one by one", "err", err, "requests", len(batch))
	for _, it := range batch {
		ierr := b.spec.write(ctx, []T{it.v})
		if ierr != nil {
			b.logger.Warn("write request", "err", ierr, "items", it.n)
		}
		b.finish([]*batchItem[T]{it}, ierr)
	}
}

// finish shows committed items to the committed hook, then answers the
// requests and releases their share of the queue.
func (b *batcher[T]) finish(batch []*batchItem[T], err error) {
	if err == nil && b.spec.committed != nil {
		vs := make([]T, len(batch))
		for i, it := range batch {
			vs[i] = it.v
		}
		b.spec.committed(vs)
	}
	n := 0
	for _, it := range batch {
		n += it.n
		it.done <- err
	}
	b.mu.Lock()
	b.queued -= n
	b.queueDepth.Set(float64(b.queued))
	b.mu.Unlock()
}
