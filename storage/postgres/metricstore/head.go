package metricstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// Defaults of the head: how far back it keeps samples and how many it
// holds over all series.
const (
	DefaultHeadRange      = time.Hour
	DefaultHeadMaxSamples = 2_000_000
)

// The two margins of the head, both against the clock: a read trusts what
// it holds up to headOverlap before the database's clock at its previous
// read, and re-reads everything newer; a writer counts a commit as late
// when it holds a sample more than lateWrite older than the writer's clock
// once the commit returned. headOverlap exceeds lateWrite by the clock skew
// the head tolerates between a writer's host and the database (30 s).
const (
	headOverlap = 60 * time.Second
	lateWrite   = 30 * time.Second
)

// headCache keeps the recent samples of the series that reads asked for,
// so that a selection read again (rule evaluation reads the same selectors
// every interval) reads from PostgreSQL only what may have changed since
// it was last read: the samples newer than the database's clock at that
// read minus headOverlap, a few samples per series instead of the whole
// range.
//
// What lies before that point changes only by a late write: a commit of a
// sample more than lateWrite older than its commit. Such a commit bumps the
// late generation (metric_series_generation.late_gen) once it has
// committed, on whichever replica wrote it; every read reads the
// generation first (with the series generation, in the same statement),
// and a reader that sees a new one drops the whole head. A reader that
// read the generation just before a late commit's bump may answer once
// without that sample; its next read sees the bump. Compaction rewrites
// samples without changing them, and retention drops only windows older
// than any range the head keeps.
//
// Entries are immutable once stored (readers share their samples), so a
// new read builds a new entry. Bounded by maxSamples over all series: a
// store that would pass it clears the head first.
type headCache struct {
	rangeMillis int64 // 0: the head is off
	maxSamples  int

	mu      sync.Mutex
	lateGen int64
	entries map[int64]*headEntry
	samples int
}

// headEntry holds the samples of one series at and after from; those up
// to known are exactly what the database held at the read that stored
// them (a late write aside), those after known may be incomplete and are
// read again.
type headEntry struct {
	from, known int64
	s           []metricSample // sorted by time; shared, never modified
}

func newHeadCache(rangeDur time.Duration, maxSamples int) *headCache {
	if maxSamples <= 0 {
		maxSamples = DefaultHeadMaxSamples
	}
	return &headCache{rangeMillis: max(int64(rangeDur/time.Millisecond), 0), maxSamples: maxSamples, entries: map[int64]*headEntry{}}
}

// dbClock is what a read learns of the database before selecting: the
// generations of the series dictionary and of late writes, and the
// database's clock.
type dbClock struct {
	gen, lateGen int64
	now          int64 // Unix milliseconds
}

// readClock reads the generations and the database's clock.
func (s *Store) readClock(ctx context.Context) (dbClock, error) {
	var c dbClock
	var now time.Time
	if err := s.pool.QueryRow(ctx, seriesGenerationSQL).Scan(&c.gen, &c.lateGen, &now); err != nil {
		return c, fmt.Errorf("read series generation: %w", pgcore.Classify(err))
	}
	c.now = now.UnixMilli()
	return c, nil
}

// covers reports whether the head may answer a read of [mint, maxt] made
// at the database time now.
func (h *headCache) covers(mint, maxt, now int64) bool {
	return h.rangeMillis > 0 && mint >= now-h.rangeMillis && maxt >= mint
}

// lookup returns, for each of ids, the entry that holds its samples from
// mint on, after dropping the head when lateGen is newer than the one it
// was filled at; ids without one come back in missing.
func (h *headCache) lookup(ids []int64, mint, lateGen int64) (found map[int64]*headEntry, missing []int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if lateGen > h.lateGen {
		h.reset(lateGen)
	}
	found = make(map[int64]*headEntry, len(ids))
	for _, id := range ids {
		if e := h.entries[id]; e != nil && e.from <= mint && lateGen == h.lateGen {
			found[id] = e
		} else {
			missing = append(missing, id)
		}
	}
	return found, missing
}

func (h *headCache) reset(lateGen int64) {
	h.lateGen = lateGen
	clear(h.entries)
	h.samples = 0
}

// store keeps entries read at lateGen, unless a newer late generation was
// seen meanwhile (the read may have missed what it announced); an entry
// replaces one that knows less.
func (h *headCache) store(entries map[int64]*headEntry, lateGen int64) {
	n := 0
	for _, e := range entries {
		n += len(e.s)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if lateGen > h.lateGen {
		h.reset(lateGen)
	}
	if lateGen != h.lateGen {
		return
	}
	if h.samples+n > h.maxSamples {
		h.reset(lateGen)
		if n > h.maxSamples {
			return
		}
	}
	for id, e := range entries {
		old := h.entries[id]
		if old != nil && old.known > e.known {
			continue
		}
		if old != nil {
			h.samples -= len(old.s)
		}
		h.entries[id] = e
		h.samples += len(e.s)
	}
}

// readRecent reads the samples of ids in [mint, maxt] through the head:
// series it holds from mint on are read from PostgreSQL only after what
// they know; the others are read whole; both then replace their entries.
// A read the head does not cover goes to readSamples directly.
func (s *Store) readRecent(ctx context.Context, ids []int64, mint, maxt int64, clock dbClock, budget *readBudget) (map[int64]*sampleList, error) {
	h := s.head
	if !h.covers(mint, maxt, clock.now) {
		return s.readSamples(ctx, ids, mint, maxt, budget)
	}
	found, missing := h.lookup(ids, mint, clock.lateGen)
	out := make(map[int64]*sampleList, len(ids))
	// After this read the head knows everything up to headOverlap before
	// the clock read before it, but nothing after maxt.
	known := min(clock.now-int64(headOverlap/time.Millisecond), maxt)
	fresh := make(map[int64]*headEntry, len(ids))
	if len(missing) > 0 {
		read, err := s.readSamples(ctx, missing, mint, maxt, budget)
		if err != nil {
			return nil, err
		}
		for _, id := range missing {
			var list []metricSample
			if l := read[id]; l != nil {
				list = l.s
				out[id] = l
			}
			fresh[id] = &headEntry{from: mint, known: known, s: list}
		}
	}
	if len(found) > 0 {
		// One statement for all: from the least any of them knows.
		since := leastKnown(found, maxt)
		var delta map[int64]*sampleList
		if since < maxt {
			cached := make([]int64, 0, len(found))
			for id := range found {
				cached = append(cached, id)
			}
			var err error
			if delta, err = s.readSamples(ctx, cached, since+1, maxt, budget); err != nil {
				return nil, err
			}
		}
		if err := h.merge(found, delta, since, mint, maxt, clock, out, fresh, budget); err != nil {
			return nil, err
		}
	}
	h.store(fresh, clock.lateGen)
	return out, nil
}

// selectCached answers a selection in one round trip to PostgreSQL when
// the selection cache and the head both hold all its series (rule
// evaluation, from its second interval on): the generations and clock
// and the samples after what the head knows, in one batch. It reports
// false, having read nothing it keeps, when either generation moved or
// the head does not cover the range; the caller then takes the long way.
func (s *Store) selectCached(ctx context.Context, mint, maxt int64, matchers []*labels.Matcher, budget *readBudget) (*seriesSet, bool, error) {
	h := s.head
	if h.rangeMillis == 0 || mint > maxt {
		return nil, false, nil
	}
	sel, ok := s.selections.latest(selectionKey(matchers))
	if !ok || len(sel.series) == 0 {
		return nil, false, nil
	}
	ids := make([]int64, 0, len(sel.series))
	for id := range sel.series {
		ids = append(ids, id)
	}
	found, lateGen, ok := h.peek(ids, mint)
	if !ok {
		return nil, false, nil
	}
	since := leastKnown(found, maxt)
	b := &pgx.Batch{}
	b.Queue(seriesGenerationSQL)
	sql, args := s.samplesQuery(ids, since+1, maxt)
	b.Queue(sql, args...)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	var clock dbClock
	var now time.Time
	if err := br.QueryRow().Scan(&clock.gen, &clock.lateGen, &now); err != nil {
		return nil, false, fmt.Errorf("read series generation: %w", pgcore.Classify(err))
	}
	clock.now = now.UnixMilli()
	if clock.gen != sel.gen || clock.lateGen != lateGen || !h.covers(mint, maxt, clock.now) {
		return nil, false, nil
	}
	rows, err := br.Query()
	if err != nil {
		return nil, false, fmt.Errorf("read samples: %w", pgcore.Classify(err))
	}
	delta, err := decodeSamples(ctx, rows, since+1, maxt, budget)
	if err != nil {
		return nil, false, err
	}
	if err := budget.addSeries(len(ids)); err != nil {
		return nil, false, err
	}
	out := make(map[int64]*sampleList, len(ids))
	fresh := make(map[int64]*headEntry, len(ids))
	if err := h.merge(found, delta, since, mint, maxt, clock, out, fresh, budget); err != nil {
		return nil, false, err
	}
	h.store(fresh, clock.lateGen)
	lsets, err := s.labelsOf(ctx, sel.series)
	if err != nil {
		return nil, false, err
	}
	return newSeriesSet(lsets, out), true, nil
}

// peek returns the entries holding each of ids from mint on, with the late
// generation they were read at; false when one of ids has none.
func (h *headCache) peek(ids []int64, mint int64) (map[int64]*headEntry, int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	found := make(map[int64]*headEntry, len(ids))
	for _, id := range ids {
		e := h.entries[id]
		if e == nil || e.from > mint {
			return nil, 0, false
		}
		found[id] = e
	}
	return found, h.lateGen, true
}

// leastKnown is the least of what the entries know, and at most maxt.
func leastKnown(found map[int64]*headEntry, maxt int64) int64 {
	since := maxt
	for _, e := range found {
		since = min(since, e.known)
	}
	return since
}

// merge answers [mint, maxt] for the series of found from their entries
// up to since and the samples read after it (delta), into out, and puts
// their new entries into fresh. The samples taken from the entries are
// charged to budget (those read were charged as they were read).
func (h *headCache) merge(found map[int64]*headEntry, delta map[int64]*sampleList, since, mint, maxt int64, clock dbClock, out map[int64]*sampleList, fresh map[int64]*headEntry, budget *readBudget) error {
	known := min(clock.now-int64(headOverlap/time.Millisecond), maxt)
	from := clock.now - h.rangeMillis // what falls out of the head's range
	charged := 0
	for id, e := range found {
		// The entry's samples up to since, what was read after, and the
		// entry's samples after maxt (it may know further than this read
		// went).
		k := searchTime(e.s, since+1)
		list := e.s[:k:k]
		if d := delta[id]; d != nil {
			list = append(list, d.s...)
		}
		if j := searchTime(e.s, maxt+1); j < len(e.s) {
			list = append(list, e.s[j:]...)
		}
		lo, hi := searchTime(list, mint), searchTime(list, maxt+1)
		if hi > lo {
			out[id] = &sampleList{s: list[lo:hi:hi]}
			charged += min(k, hi) - min(lo, k)
		}
		// Trim what has fallen out of the head's range.
		keepFrom := max(e.from, from)
		cut := searchTime(list, keepFrom)
		fresh[id] = &headEntry{from: keepFrom, known: max(e.known, known), s: list[cut:len(list):len(list)]}
	}
	return budget.addSamples(charged)
}

// searchTime returns the index of the first of samples at or after t.
func searchTime(samples []metricSample, t int64) int {
	i, _ := slices.BinarySearchFunc(samples, t, func(m metricSample, t int64) int { return cmp.Compare(m.t, t) })
	return i
}
