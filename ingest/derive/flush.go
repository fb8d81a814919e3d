package derive

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/storage"
)

const (
	// finalFlushTimeout bounds the flush Run makes once its context ended.
	finalFlushTimeout = 10 * time.Second
	// expireBatch and maxExpireBatches bound the halves one flush takes
	// out of the PairStore; the rest wait for the next flush.
	expireBatch      = 1000
	maxExpireBatches = 100
	// queueFullAttempts and queueFullBackoff retry a commit the metric
	// pipeline refused because its queue was full.
	queueFullAttempts = 4
	queueFullBackoff  = 250 * time.Millisecond
)

// Run flushes every FlushInterval until ctx ends, then flushes once more
// (with a fresh bounded context, handing every waiting half to the
// PairStore when there is one) and returns nil. Flush errors are logged.
func (d *Deriver) Run(ctx context.Context) error {
	if !d.cfg.Enabled {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(d.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
			err := d.flush(fctx, true)
			cancel()
			if err != nil {
				d.logger.WarnContext(fctx, "final flush of derived series", "err", err)
			}
			return nil
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, d.cfg.FlushInterval)
			err := d.Flush(fctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				d.logger.WarnContext(ctx, "flush derived series", "err", err)
			}
		}
	}
}

// Flush writes the series as of now, offers halves older than PairingTimeout to the
// PairStore, expires those parked longer than SharedPairingTimeout, and writes edge traces.
// Pairs completed by the PairStore are counted before the series are written.
// When the series cannot be committed, the appender is rolled back, the
// failure counted, and the in-memory state kept: the next flush writes the
// cumulative values again. Flushes are serialised; Flush is safe to call
// concurrently with Committed.
func (d *Deriver) Flush(ctx context.Context) error { return d.flush(ctx, false) }

func (d *Deriver) flush(ctx context.Context, final bool) error {
	d.flushMu.Lock()
	defer d.flushMu.Unlock()
	began := time.Now()
	defer func() { d.m.flushDuration.Observe(time.Since(began).Seconds()) }()
	now := d.now()
	errs := []error{d.pair(ctx, now, final)}
	examples, err := d.writeSeries(ctx, now)
	if err != nil {
		d.m.flushFailures.Inc()
		errs = append(errs, err)
	}
	if d.pairs != nil && len(examples) > 0 {
		if err := d.pairs.WriteEdgeTraces(ctx, examples); err != nil {
			d.m.edgeTraceFails.Inc()
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pair settles the halves waiting longer than PairingTimeout (all of
// them when final and there is a PairStore): through the PairStore when
// there is one, else as lone halves; and settles the halves the PairStore
// expires.
func (d *Deriver) pair(ctx context.Context, now time.Time, final bool) error {
	cutoff := now.Add(-d.cfg.PairingTimeout)
	var offer []Half
	d.mu.Lock()
	for k, p := range d.pending {
		if p.arrived > cutoff.UnixNano() && !(final && d.pairs != nil) {
			continue
		}
		delete(d.pending, k)
		h := p.half(k)
		if d.pairs == nil {
			d.aloneLocked(&h, now)
			continue
		}
		h.ParkedAt = now
		offer = append(offer, h)
	}
	d.mu.Unlock()
	if d.pairs == nil {
		return nil
	}
	var errs []error
	if len(offer) > 0 {
		pairs, err := d.pairs.Offer(ctx, offer)
		d.mu.Lock()
		if err != nil {
			// Nothing was parked: the halves wait in memory for the
			// next flush.
			for i := range offer {
				d.halfLocked(&offer[i], cutoff, now)
			}
			errs = append(errs, fmt.Errorf("offer halves: %w", err))
		}
		for i := range pairs {
			d.pairedLocked(&pairs[i].Client, &pairs[i].Server, now)
		}
		d.mu.Unlock()
	}
	before := now.Add(-d.cfg.SharedPairingTimeout)
	for range maxExpireBatches {
		halves, err := d.pairs.Expire(ctx, before, expireBatch)
		if err != nil {
			errs = append(errs, fmt.Errorf("expire halves: %w", err))
			break
		}
		d.mu.Lock()
		for i := range halves {
			d.aloneLocked(&halves[i], now)
		}
		d.mu.Unlock()
		if len(halves) < expireBatch {
			break
		}
	}
	return errors.Join(errs...)
}

// sample is one sample of a flush.
type sample struct {
	ls  labels.Labels
	t   int64
	v   float64
	fam uint8
}

// staleSeries is a series marked stale in a flush, deleted once the
// flush has committed.
type staleSeries struct {
	key any
	s   series
}

// snapshot is the samples of a flush, taken under Deriver.mu.
type snapshot struct {
	d             *Deriver
	now           time.Time
	nowMs, baseMs int64
	idleCut       time.Time
	samples       []sample
	fresh         []*seriesState
	stale         []staleSeries
	b             labels.ScratchBuilder
	vals          []float64
}

// visit adds the samples of the series of m to sn.
func visit[K comparable, S series](sn *snapshot, m map[K]S) {
	for k, s := range m {
		st := s.state()
		if st.changed {
			st.changed = false
			st.lastActive = sn.now
		}
		if st.ls == nil {
			s.build(&sn.b, sn.d.replica)
		}
		if st.written && st.lastActive.Before(sn.idleCut) {
			for i, ls := range st.ls {
				sn.samples = append(sn.samples, sample{ls, sn.nowMs, math.Float64frombits(value.StaleNaN), st.fams[i]})
			}
			sn.stale = append(sn.stale, staleSeries{k, s})
			continue
		}
		if !st.written {
			t := sn.baseMs
			if len(sn.d.justStaled) > 0 {
				if _, ok := sn.d.justStaled[k]; ok {
					// Its stale marker is at baseMs.
					t = min(sn.baseMs+1, sn.nowMs-1)
				}
			}
			for i, ls := range st.ls {
				sn.samples = append(sn.samples, sample{ls, t, 0, st.fams[i]})
			}
			sn.fresh = append(sn.fresh, st)
		}
		sn.vals = s.values(sn.vals[:0])
		for i, ls := range st.ls {
			sn.samples = append(sn.samples, sample{ls, sn.nowMs, sn.vals[i], st.fams[i]})
		}
	}
}

// writeSeries appends every live series to one appender and commits. It
// returns the example traces of the flush, whether or not the commit
// succeeded.
func (d *Deriver) writeSeries(ctx context.Context, now time.Time) ([]storage.EdgeTrace, error) {
	sn := &snapshot{d: d, now: now, nowMs: now.UnixMilli(), idleCut: now.Add(-d.cfg.SeriesIdleTimeout)}
	var examples []storage.EdgeTrace
	d.mu.Lock()
	sn.samples = make([]sample, 0, d.lastSamples+d.lastSamples/8+64)
	sn.baseMs = d.lastOK.UnixMilli()
	if sn.baseMs >= sn.nowMs {
		sn.baseMs = sn.nowMs - 1
	}
	for k, s := range d.edges {
		if s.example.set {
			examples = append(examples, storage.EdgeTrace{Client: k.client, Server: k.server, ConnectionType: k.conn,
				TraceID: s.example.traceID, Time: s.example.start, Duration: s.example.duration, Failed: s.example.failed})
			s.example = exampleTrace{}
		}
	}
	visit(sn, d.red)
	visit(sn, d.edges)
	visit(sn, d.counts)
	d.lastSamples = len(sn.samples)
	d.mu.Unlock()

	if err := d.commit(ctx, sn.samples); err != nil {
		return examples, err
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastOK = now
	for _, st := range sn.fresh {
		st.written = true
	}
	clear(d.justStaled)
	for _, ss := range sn.stale {
		st := ss.s.state()
		if st.changed {
			// Updated since: it lives on as a new series.
			st.written = false
			d.justStaled[ss.key] = struct{}{}
			continue
		}
		d.deleteLocked(ss.key)
		d.justStaled[ss.key] = struct{}{}
	}
	return examples, nil
}

// deleteLocked forgets a series.
func (d *Deriver) deleteLocked(key any) {
	switch k := key.(type) {
	case redKey:
		delete(d.red, k)
		if ops := d.ops[k.service]; ops != nil && k.name != overflowName {
			if ops[k.name] <= 1 {
				delete(ops, k.name)
			} else {
				ops[k.name]--
			}
			if len(ops) == 0 {
				delete(d.ops, k.service)
			}
		}
	case edgeKey:
		delete(d.edges, k)
	case countKey:
		delete(d.counts, k)
	}
	d.nSeries--
}

// commit appends samples to one appender and commits, or rolls back.
// A pipeline whose queue is full is tried again a few times within the
// flush, with the same samples in a new appender.
func (d *Deriver) commit(ctx context.Context, samples []sample) error {
	if len(samples) == 0 {
		return nil
	}
	wait := queueFullBackoff
	for attempt := 1; ; attempt++ {
		err := d.commitOnce(ctx, samples)
		if !errors.Is(err, ingest.ErrQueueFull) || attempt == queueFullAttempts {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (d *Deriver) commitOnce(ctx context.Context, samples []sample) error {
	app := d.app.AppenderV2(ctx)
	for i := range samples {
		s := &samples[i]
		f := &families[s.fam]
		opts := promstorage.AppendV2Options{MetricFamilyName: f.name, Metadata: f.md}
		if _, err := app.Append(0, s.ls, 0, s.t, s.v, nil, nil, opts); err != nil {
			return errors.Join(fmt.Errorf("append derived series: %w", err), rollback(app))
		}
		if i%1024 == 0 && ctx.Err() != nil {
			return errors.Join(fmt.Errorf("append derived series: %w", ctx.Err()), rollback(app))
		}
	}
	if err := app.Commit(); err != nil {
		// Appenders end their transaction when Commit fails; the
		// rollback is for those that leave it to the caller.
		_ = app.Rollback()
		return fmt.Errorf("commit derived series: %w", err)
	}
	return nil
}

func rollback(app promstorage.AppenderV2) error {
	if err := app.Rollback(); err != nil {
		return fmt.Errorf("rollback derived series: %w", err)
	}
	return nil
}
