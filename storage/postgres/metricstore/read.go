package metricstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// Querier returns a querier over samples in [mint, maxt] (milliseconds,
// inclusive). It holds no connection: each call acquires one from the pool
// and honours its context.
func (s *Store) Querier(mint, maxt int64) (promstorage.Querier, error) {
	return &metricQuerier{store: s, mint: mint, maxt: maxt, began: s.head.checks.begin()}, nil
}

// LimitedQuerier is Querier with limits on what all of the querier's
// selections together return: once a Select would pass one, it fails with
// an error wrapping storage.ErrLimitExceeded, having stopped reading as
// soon as the limit was passed. The PromQL engine takes one querier per
// query, so these are per-query limits. Safe for concurrent use.
func (s *Store) LimitedQuerier(mint, maxt int64, limits storage.ReadLimits) (promstorage.Querier, error) {
	return &metricQuerier{store: s, mint: mint, maxt: maxt, budget: &readBudget{limits: limits}, began: s.head.checks.begin()}, nil
}

type metricQuerier struct {
	store      *Store
	mint, maxt int64
	budget     *readBudget // nil = unlimited
	// began marks the querier's creation among the head's readings of
	// the database: its selections may be proven by any reading that
	// began after it (head.go, checker), so the selections of one query
	// share one.
	began uint64
}

// readBudget counts a querier's reads against its limits.
type readBudget struct {
	limits  storage.ReadLimits
	series  atomic.Int64
	samples atomic.Int64
}

// addSeries charges n series; nil charges nothing.
func (b *readBudget) addSeries(n int) error {
	if b == nil || b.limits.MaxSeries <= 0 {
		return nil
	}
	if b.series.Add(int64(n)) > int64(b.limits.MaxSeries) {
		return fmt.Errorf("query would select more than %d series (limit query.max_series): %w", b.limits.MaxSeries, storage.ErrLimitExceeded)
	}
	return nil
}

// addSamples charges n samples; nil charges nothing.
func (b *readBudget) addSamples(n int) error {
	if b == nil || b.limits.MaxSamples <= 0 {
		return nil
	}
	if b.samples.Add(int64(n)) > b.limits.MaxSamples {
		return fmt.Errorf("query would read more than %d samples (limit query.max_samples_read): %w", b.limits.MaxSamples, storage.ErrLimitExceeded)
	}
	return nil
}

// Close releases nothing: the querier holds no resources between calls.
func (q *metricQuerier) Close() error { return nil }

// seriesFilter is the SQL condition on metric_series.labels that a set of
// matchers resolves to: the series must hold a pair of every include set
// and no pair of any exclude set.
type seriesFilter struct {
	include [][]int32
	exclude []int32
	empty   bool // some matcher can match no series at all
}

// resolve turns matchers into a seriesFilter by reading the label
// dictionary: a matcher that does not match the empty string needs one of
// the pairs of its label whose value it matches; one that does match it
// (a series without the label has the value "") excludes the pairs whose
// value it does not match. Matching happens in Go with Prometheus's own
// matchers, so regular expressions behave exactly as in Prometheus
// (anchored, RE2 syntax).
func (s *Store) resolve(ctx context.Context, matchers []*labels.Matcher) (seriesFilter, error) {
	var f seriesFilter
	for _, m := range matchers {
		if err := ctx.Err(); err != nil {
			return f, err
		}
		matchesEmpty := m.Matches("")
		var rows pgx.Rows
		var err error
		switch {
		case m.Type == labels.MatchEqual && !matchesEmpty:
			rows, err = s.pool.Query(ctx, pairsOfValueSQL, m.Name, m.Value)
		case m.Type == labels.MatchRegexp && !matchesEmpty && len(m.SetMatches()) > 0:
			rows, err = s.pool.Query(ctx, pairsOfSetSQL, m.Name, m.SetMatches())
		default:
			rows, err = s.pool.Query(ctx, pairsOfNameSQL, m.Name)
		}
		if err != nil {
			return f, fmt.Errorf("resolve matcher %s: %w", m, pgcore.Classify(err))
		}
		var ids []int32
		var id int32
		var value string
		_, err = pgx.ForEachRow(rows, []any{&id, &value}, func() error {
			if m.Matches(value) != matchesEmpty {
				ids = append(ids, id)
			}
			return nil
		})
		if err != nil {
			return f, fmt.Errorf("resolve matcher %s: %w", m, pgcore.Classify(err))
		}
		if matchesEmpty {
			f.exclude = append(f.exclude, ids...)
		} else if len(ids) == 0 {
			f.empty = true
			return f, nil
		} else {
			f.include = append(f.include, ids)
		}
	}
	return f, nil
}

// where renders f as a WHERE clause on metric_series aliased s, adding
// its arguments to args.
func (f seriesFilter) where(args *pgcore.Args) string {
	conds := []string{condAnySeries}
	for _, ids := range f.include {
		conds = append(conds, args.Bind(condHasPairOf, ids))
	}
	if len(f.exclude) > 0 {
		conds = append(conds, args.Bind(condHasNoneOf, f.exclude))
	}
	return strings.Join(conds, " AND ")
}

// matchingSeries returns the ids and pair ids of the series matching f.
func (s *Store) matchingSeries(ctx context.Context, f seriesFilter) (map[int64][]int32, error) {
	var args pgcore.Args
	rows, err := s.pool.Query(ctx, fmt.Sprintf(seriesSQL, f.where(&args)), args...)
	if err != nil {
		return nil, fmt.Errorf("select series: %w", pgcore.Classify(err))
	}
	out := map[int64][]int32{}
	var id int64
	var pairs []int32
	_, err = pgx.ForEachRow(rows, []any{&id, &pairs}, func() error {
		out[id] = pairs
		pairs = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("select series: %w", pgcore.Classify(err))
	}
	return out, nil
}

// labelsOf builds the label sets of series from their pair ids, reading
// the pairs the cache lacks.
func (s *Store) labelsOf(ctx context.Context, series map[int64][]int32) (map[int64]labels.Labels, error) {
	var missing []int32
	s.mu.RLock()
	for _, pairs := range series {
		for _, p := range pairs {
			if _, ok := s.pairByID[p]; !ok {
				missing = append(missing, p)
			}
		}
	}
	s.mu.RUnlock()
	if len(missing) > 0 {
		slices.Sort(missing)
		missing = slices.Compact(missing)
		rows, err := s.pool.Query(ctx, pairsByIDSQL, missing)
		if err != nil {
			return nil, fmt.Errorf("read label pairs: %w", pgcore.Classify(err))
		}
		var id int32
		var p labelPair
		got := map[int32]labelPair{}
		_, err = pgx.ForEachRow(rows, []any{&id, &p.name, &p.value}, func() error {
			got[id] = p
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read label pairs: %w", pgcore.Classify(err))
		}
		s.mu.Lock()
		if len(s.pairByID)+len(got) > pgcore.MaxCacheEntries {
			clear(s.pairIDs)
			clear(s.pairByID)
		}
		for id, p := range got {
			s.pairByID[id] = p
			s.pairIDs[p] = id
		}
		s.mu.Unlock()
		for _, id := range missing {
			if _, ok := got[id]; !ok {
				return nil, fmt.Errorf("read label pairs: pair %d missing: %w", id, pgcore.ErrCorrupt)
			}
		}
		// Pairs read now may have been evicted since; got backs them up.
		return s.buildLabels(series, got), nil
	}
	return s.buildLabels(series, nil), nil
}

func (s *Store) buildLabels(series map[int64][]int32, extra map[int32]labelPair) map[int64]labels.Labels {
	out := make(map[int64]labels.Labels, len(series))
	var b labels.ScratchBuilder
	s.mu.RLock()
	defer s.mu.RUnlock()
	for id, pairs := range series {
		b.Reset()
		for _, pid := range pairs {
			p, ok := s.pairByID[pid]
			if !ok {
				p = extra[pid]
			}
			b.Add(p.name, p.value)
		}
		b.Sort()
		out[id] = b.Labels()
	}
	return out
}

// Select returns the series matching every matcher with their samples in
// the hinted range (the querier's range without hints), sorted by labels
// whatever sortSeries says. With hints.Func "series" only series that have
// samples in the range are returned, without samples. Matchers and the
// time range are evaluated in PostgreSQL; the samples of the selection are
// held in memory (the engine holds them anyway).
func (q *metricQuerier) Select(ctx context.Context, _ bool, hints *promstorage.SelectHints, matchers ...*labels.Matcher) promstorage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(hints.Start, minSampleTime), min(hints.End, maxSampleTime)
	}
	mint, maxt = max(mint, minSampleTime), min(maxt, maxSampleTime)
	set, err := q.store.selectSeries(ctx, mint, maxt, hints != nil && hints.Func == "series", matchers, q.budget, q.began)
	if err != nil {
		return promstorage.ErrSeriesSet(fmt.Errorf("select: %w", err))
	}
	return set
}

// selectSeries selects for a querier that began at began (metricQuerier).
func (s *Store) selectSeries(ctx context.Context, mint, maxt int64, labelsOnly bool, matchers []*labels.Matcher, budget *readBudget, began uint64) (*seriesSet, error) {
	if mint > maxt {
		return &seriesSet{idx: -1}, nil
	}
	if !labelsOnly {
		if set, ok, err := s.selectCached(ctx, mint, maxt, matchers, budget, began); ok || err != nil {
			return set, err
		}
	}
	clock, err := s.readClock(ctx)
	if err != nil {
		return nil, err
	}
	series, err := s.selectedSeries(ctx, clock.gen, matchers)
	if err != nil || len(series) == 0 {
		return &seriesSet{idx: -1}, err
	}
	if err := budget.addSeries(len(series)); err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(series))
	for id := range series {
		ids = append(ids, id)
	}
	lsets, err := s.labelsOf(ctx, series)
	if err != nil {
		return nil, err
	}
	var samples map[int64]*sampleList
	if labelsOnly {
		samples, err = s.seriesWithData(ctx, ids, mint, maxt)
	} else {
		samples, err = s.readRecent(ctx, ids, mint, maxt, clock, budget)
	}
	if err != nil {
		return nil, err
	}
	return newSeriesSet(lsets, samples), nil
}

// newSeriesSet returns the series of samples, labelled from lsets and
// sorted by labels.
func newSeriesSet(lsets map[int64]labels.Labels, samples map[int64]*sampleList) *seriesSet {
	out := &seriesSet{idx: -1, series: make([]promstorage.Series, 0, len(samples))}
	for id, list := range samples {
		out.series = append(out.series, &storedSeries{lset: lsets[id], samples: list})
	}
	slices.SortFunc(out.series, func(a, b promstorage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return out
}

// seriesWithData returns an empty sample list for each of ids that has a
// raw sample in [mint, maxt] or a chunk whose window overlaps it.
func (s *Store) seriesWithData(ctx context.Context, ids []int64, mint, maxt int64) (map[int64]*sampleList, error) {
	rows, err := s.pool.Query(ctx, seriesWithDataSQL, ids, time.UnixMilli(mint), time.UnixMilli(maxt), time.UnixMilli(mint-metricChunkWindowMillis))
	if err != nil {
		return nil, fmt.Errorf("select series with data: %w", pgcore.Classify(err))
	}
	out := map[int64]*sampleList{}
	var id int64
	_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
		out[id] = &sampleList{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("select series with data: %w", pgcore.Classify(err))
	}
	return out, nil
}

// readSamples reads the samples of ids in [mint, maxt] from the raw
// samples and the compacted chunks, in one statement so that a compaction
// committing meanwhile cannot hide a window from it. Among raw samples of
// one (series, time) the last committed one (highest batch) wins; a raw
// sample wins over a chunk's sample at the same time, having arrived after
// the chunk was written. Samples are charged to budget (nil: no limit) as
// they are decoded, so reading stops once it is spent.
func (s *Store) readSamples(ctx context.Context, ids []int64, mint, maxt int64, budget *readBudget) (map[int64]*sampleList, error) {
	sql, args := s.samplesQuery(ids, mint, maxt)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read samples: %w", pgcore.Classify(err))
	}
	return decodeSamples(ctx, rows, mint, maxt, budget)
}

// compactionSkew is how far a compactor's clock may run ahead of this
// process's without samplesQuery missing a chunk.
const compactionSkew = 10 * time.Minute

// samplesQuery is the statement and arguments that read the samples of
// ids in [mint, maxt]: readSamplesSQL, or only the raw samples when the
// window holding mint has not ended (by this process's clock, less
// compactionSkew). Compaction only takes windows that have ended, so no
// chunk can hold a sample of the range then, and the chunks' half of the
// statement (an index probe per series) is spared: the common case of
// recent reads, rule evaluation's above all.
func (s *Store) samplesQuery(ids []int64, mint, maxt int64) (string, []any) {
	window := time.UnixMilli(mint).UTC().Truncate(metricChunkWindow)
	if window.Add(metricChunkWindow).After(s.now().Add(compactionSkew)) {
		return readRawSamplesSQL, []any{ids, time.UnixMilli(mint), time.UnixMilli(maxt)}
	}
	return readSamplesSQL, []any{ids, time.UnixMilli(mint), time.UnixMilli(maxt), time.UnixMilli(mint - metricChunkWindowMillis)}
}

// decodeSamples reads the rows of readSamplesSQL (see readSamples) and
// closes them.
func decodeSamples(ctx context.Context, rows pgx.Rows, mint, maxt int64, budget *readBudget) (map[int64]*sampleList, error) {
	defer rows.Close()
	var err error
	out := map[int64]*sampleList{}
	var (
		raw, chunked []metricSample
		curID        int64
		lastBatch    int64
		started      bool
		n            int
	)
	flush := func() {
		if !started || len(raw)+len(chunked) == 0 {
			return
		}
		list := &sampleList{}
		if len(chunked) == 0 {
			list.s = slices.Clone(raw)
		} else {
			list.s = mergeSamples(make([]metricSample, 0, len(raw)+len(chunked)), chunked, raw)
		}
		out[curID] = list
	}
	for rows.Next() {
		if n++; n%8192 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		vals := rows.RawValues()
		if len(vals) != 7 || len(vals[0]) != 8 {
			return nil, fmt.Errorf("read samples: unexpected row: %w", pgcore.ErrCorrupt)
		}
		id := int64(binary.BigEndian.Uint64(vals[0]))
		if !started || id != curID {
			flush()
			raw, chunked, curID, started = raw[:0], chunked[:0], id, true
		}
		if vals[6] != nil {
			before := len(chunked)
			if chunked, err = decodeChunkData(chunked, vals[6], mint, maxt); err != nil {
				return nil, fmt.Errorf("read chunk of series %d: %w", uint64(id), err)
			}
			if err := budget.addSamples(len(chunked) - before); err != nil {
				return nil, err
			}
			continue
		}
		if err := budget.addSamples(1); err != nil {
			return nil, err
		}
		smp, _, batch, err := decodeSampleRow(vals[:6])
		if err != nil {
			return nil, err
		}
		if last := len(raw) - 1; last >= 0 && raw[last].t == smp.t {
			if batch > lastBatch {
				raw[last], lastBatch = smp, batch
			}
			continue
		}
		raw = append(raw, smp)
		lastBatch = batch
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read samples: %w", pgcore.Classify(err))
	}
	flush()
	return out, nil
}

// LabelNames returns the sorted label names of the series matching
// matchers (of every series without matchers).
func (q *metricQuerier) LabelNames(ctx context.Context, hints *promstorage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if len(matchers) == 0 {
		rows, err = q.store.pool.Query(ctx, allLabelNamesSQL)
	} else {
		f, rerr := q.store.resolve(ctx, matchers)
		if rerr != nil || f.empty {
			return nil, nil, rerr
		}
		var args pgcore.Args
		rows, err = q.store.pool.Query(ctx, fmt.Sprintf(labelNamesSQL, f.where(&args)), args...)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("label names: %w", pgcore.Classify(err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, nil, fmt.Errorf("label names: %w", pgcore.Classify(err))
	}
	slices.Sort(names)
	names, _ = hints.ApplyLimit(names)
	return names, nil, nil
}

// LabelValues returns the sorted values of label name among the series
// matching matchers (among every series without matchers).
func (q *metricQuerier) LabelValues(ctx context.Context, name string, hints *promstorage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if len(matchers) == 0 {
		rows, err = q.store.pool.Query(ctx, allLabelValuesSQL, name)
	} else {
		f, rerr := q.store.resolve(ctx, matchers)
		if rerr != nil || f.empty {
			return nil, nil, rerr
		}
		args := pgcore.Args{name}
		rows, err = q.store.pool.Query(ctx, fmt.Sprintf(labelValuesSQL, f.where(&args)), args...)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("label values of %q: %w", name, pgcore.Classify(err))
	}
	values, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, nil, fmt.Errorf("label values of %q: %w", name, pgcore.Classify(err))
	}
	slices.Sort(values)
	values, _ = hints.ApplyLimit(values)
	return values, nil, nil
}
