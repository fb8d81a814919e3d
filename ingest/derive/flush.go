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
// PairStore, expires those parked longer than SharedPairingTimeout, writes edge traces,
// and writes the map rollups of the keys updated since the last flush (and those a
// failed write left) through the RollupStore.
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
	if err := d.writeRollups(ctx, now); err != nil {
		d.m.rollupFails.Inc()
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// writeRollups takes the counts of every edge and node updated since the
// last flush, forgets the nodes idle for SeriesIdleTimeout, and writes the
// counts, with the rows of earlier failed writes (d.mapRows), at the
// minute of now. On failure the rows are kept in d.mapRows (the counts are
// cumulative, so the next flush's write makes up for this one), up to
// MaxSeries rows: beyond, rows are dropped and counted, and the calls
// they held show in a later minute when their key is updated again (or
// not at all, for a key forgotten meanwhile). Called with flushMu held.
func (d *Deriver) writeRollups(ctx context.Context, now time.Time) error {
	if d.rollups == nil {
		return nil
	}
	idleCut := now.Add(-d.cfg.SeriesIdleTimeout)
	d.mu.Lock()
	rows := make([]storage.MapRollup, 0, d.lastRollups)
	counts := make([]uint64, 0, 2*(len(secBounds)+1)*d.lastRollups)
	take := func(h *hist) []uint64 {
		counts = append(counts, h.counts...)
		return counts[len(counts)-len(h.counts) : len(counts) : len(counts)]
	}
	for _, e := range d.edges {
		if !e.mapDirty {
			continue
		}
		e.mapDirty = false
		k := &e.key
		rows = append(rows, storage.MapRollup{
			Key: storage.MapKey{Replica: d.replica, Incarnation: e.inc, Client: k.client, Server: k.server, ConnectionType: k.conn,
				ClientEnv: k.clientEnv, ClientNs: k.clientNs, ServerEnv: k.serverEnv, ServerNs: k.serverNs},
			Counts: storage.MapCounts{Calls: e.total, Failed: e.failed, ServerHist: take(&e.server), ClientHist: take(&e.client),
				ServerSum: e.server.sum, ClientSum: e.client.sum},
		})
	}
	for k, n := range d.nodes {
		if !n.dirty {
			if n.lastActive.Before(idleCut) {
				n.dead = true
				delete(d.nodes, k)
			}
			continue
		}
		n.dirty, n.lastActive = false, now
		rows = append(rows, storage.MapRollup{
			Key:    storage.MapKey{Replica: d.replica, Incarnation: n.inc, Node: true, Server: k.service, ServerEnv: k.env, ServerNs: k.ns},
			Counts: storage.MapCounts{Calls: n.calls, Failed: n.failed, ServerHist: take(&n.h), ServerSum: n.h.sum},
		})
	}
	d.lastRollups = len(rows)
	d.mu.Unlock()
	merged := len(d.mapRows) > 0
	if merged {
		// Rows of failed writes: this flush's counts of a key replace
		// its older ones.
		d.keepRollups(rows)
		rows = rows[:0]
		for _, r := range d.mapRows {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if err := d.rollups.WriteMapRollups(ctx, now.UTC().Truncate(time.Minute), rows); err != nil {
		if !merged {
			d.keepRollups(rows)
		}
		return fmt.Errorf("write map rollups: %w", err)
	}
	clear(d.mapRows)
	return nil
}

// keepRollups keeps rows for the next write in d.mapRows, replacing the
// rows of the same keys, up to MaxSeries rows: beyond, rows of other keys
// are dropped and counted. Called with flushMu held.
func (d *Deriver) keepRollups(rows []storage.MapRollup) {
	for _, r := range rows {
		if _, ok := d.mapRows[r.Key.Incarnation]; !ok && len(d.mapRows) >= d.cfg.MaxSeries {
			d.m.rollupsDropped.Inc()
			continue
		}
		d.mapRows[r.Key.Incarnation] = r
	}
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
		if p.arrived > cutoff.UnixNano() && (!final || d.pairs == nil) {
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
