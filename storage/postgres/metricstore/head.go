package metricstore

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
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
//
// Local writes feed the head (feed): once a sample write of this process
// has committed, its samples are added to the entries of their series, so
// that a read can be answered without PostgreSQL when nobody else wrote
// since the entries were read (see proven). Every sample write draws two
// values from the batch sequence metric_sample_batches, on every replica:
// its batch number before its COPY, and a closing value once it has
// committed (closeBatchSQL). An entry records the sequence's last value
// read before the read that filled it (synced); a later reading of the
// sequence (last) proves that nobody else wrote since when every value in
// (synced, last] was drawn by this process and every write of this
// process numbered up to last that wrote the entry's series has been fed
// (or has failed, which leaves nothing proven; a local write under way
// does not change what PostgreSQL holds of the series it does not write).
// A write of another replica draws a value in between:
// its closing value if it was under way at the entry's read, its batch
// number otherwise. A reader that read the sequence just before another
// replica's closing draw may answer once without that write, as with the
// late generation; the next read sees the draw.
type headCache struct {
	rangeMillis int64 // 0: the head is off
	maxSamples  int

	mu      sync.Mutex
	lateGen int64
	entries map[int64]*headEntry
	samples int

	// What proves that nobody else wrote since an entry was read.
	local   []int64           // sequence values drawn here above floor, ascending
	floor   int64             // entries synced below it prove nothing
	pending map[int64][]int64 // local writes not yet fed or failed: batch number → their series, ascending
	drawing int               // draws of this process from the batch sequence not yet recorded
	fed     uint64            // local writes fed or failed so far

	checks     checker      // the sequence readings that head reads share
	skipChecks atomic.Int64 // selections left that read without trying the head alone

	// Counts of what reads did (tests read them).
	trips    atomic.Int64 // statements that read samples
	answered atomic.Int64 // selections answered by the head alone
}

// maxLocalDraws bounds the sequence values the head remembers; past it the
// older half is forgotten (entries synced before them prove nothing until
// they are read again).
const maxLocalDraws = 1 << 14

// checksSkipped is how many selections read from PostgreSQL without first
// trying to prove the head (a reading of the sequence, one more round
// trip when it fails) once a reading found another writer: where several
// replicas write, proofs mostly fail, and this bounds what trying costs.
const checksSkipped = 16

// headEntry holds the samples of one series at and after from; those up
// to known are exactly what the database held at the read that stored
// them (a late write aside), those after known may be incomplete and are
// read again, unless the entry is proven (synced, see headCache): it then
// holds every sample of the series from from on that the database held
// when the batch sequence stood at synced, and the local writes since.
type headEntry struct {
	from, known int64
	synced      int64          // the batch sequence before the read that filled it; -1: nothing
	s           []metricSample // sorted by time; shared, never modified
}

func newHeadCache(rangeDur time.Duration, maxSamples int) *headCache {
	if maxSamples <= 0 {
		maxSamples = DefaultHeadMaxSamples
	}
	return &headCache{rangeMillis: max(int64(rangeDur/time.Millisecond), 0), maxSamples: maxSamples, entries: map[int64]*headEntry{}, pending: map[int64][]int64{}}
}

// dbClock is what a read learns of the database before selecting: the
// generations of the series dictionary and of late writes, the database's
// clock, and the batch sequence's last value; fed is the count of local
// writes fed to the head before it was read.
type dbClock struct {
	gen, lateGen int64
	now          int64 // Unix milliseconds
	seq          int64
	fed          uint64
}

// readClock reads the generations, the database's clock and the batch
// sequence.
func (s *Store) readClock(ctx context.Context) (dbClock, error) {
	c := dbClock{fed: s.head.fedCount()}
	var now time.Time
	if err := s.pool.QueryRow(ctx, seriesGenerationSQL).Scan(&c.gen, &c.lateGen, &now, &c.seq); err != nil {
		return c, fmt.Errorf("read series generation: %w", pgcore.Classify(err))
	}
	c.now = now.UnixMilli()
	return c, nil
}

func (h *headCache) fedCount() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fed
}

// synced is what entries filled by a read that started at c vouch for:
// c.seq, unless a local write was fed meanwhile (the read may have missed
// it and replaced the entries it was fed to).
func (h *headCache) syncedAt(c dbClock) int64 {
	if h.fed != c.fed {
		return -1
	}
	return c.seq
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

// resync marks, on a fresh entry, that its synced is set by store.
const resync = -2

// store keeps entries read at clock.lateGen, unless a newer late
// generation was seen meanwhile (the read may have missed what it
// announced); an entry replaces one that knows less. Entries whose
// samples were read (synced resync) vouch for clock's sequence value,
// unless a local write was fed since the read began; then none vouches
// for anything.
func (h *headCache) store(entries map[int64]*headEntry, clock dbClock) {
	n := 0
	for _, e := range entries {
		n += len(e.s)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	lateGen := clock.lateGen
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
	synced := h.syncedAt(clock)
	for id, e := range entries {
		old := h.entries[id]
		if old != nil && old.known > e.known {
			continue
		}
		if e.synced == resync || synced < 0 {
			e.synced = synced
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
// A read the head does not cover goes to readSamples directly. The head's
// reads go past maxt to the end of time, so that the entries hold every
// sample from their start on (samples after maxt are rare: written ahead
// of the clock).
func (s *Store) readRecent(ctx context.Context, ids []int64, mint, maxt int64, clock dbClock, budget *readBudget) (map[int64]*sampleList, error) {
	h := s.head
	if !h.covers(mint, maxt, clock.now) {
		h.trips.Add(1)
		return s.readSamples(ctx, ids, mint, maxt, budget)
	}
	found, missing := h.lookup(ids, mint, clock.lateGen)
	out := make(map[int64]*sampleList, len(ids))
	// After this read the head knows everything up to headOverlap before
	// the clock read before it, but nothing after maxt.
	known := min(clock.now-int64(headOverlap/time.Millisecond), maxt)
	fresh := make(map[int64]*headEntry, len(ids))
	if len(missing) > 0 {
		h.trips.Add(1)
		read, err := s.readSamples(ctx, missing, mint, maxSampleTime, budget)
		if err != nil {
			return nil, err
		}
		for _, id := range missing {
			var list []metricSample
			if l := read[id]; l != nil {
				list = l.s
				if hi := searchTime(list, maxt+1); hi > 0 {
					out[id] = &sampleList{s: list[:hi:hi]}
				}
			}
			fresh[id] = &headEntry{from: mint, known: known, synced: resync, s: list}
		}
	}
	if len(found) > 0 {
		// One statement for all: from the least any of them knows.
		since := leastKnown(found, maxt)
		var delta map[int64]*sampleList
		top := maxt
		if since < maxt {
			cached := make([]int64, 0, len(found))
			for id := range found {
				cached = append(cached, id)
			}
			var err error
			top = maxSampleTime
			h.trips.Add(1)
			if delta, err = s.readSamples(ctx, cached, since+1, top, budget); err != nil {
				return nil, err
			}
		}
		if err := h.merge(found, delta, since, top, mint, maxt, clock, out, fresh, budget); err != nil {
			return nil, err
		}
	}
	h.store(fresh, clock)
	return out, nil
}

// selectCached answers a selection in one round trip to PostgreSQL when
// the selection cache and the head both hold all its series (rule
// evaluation, from its second interval on): the generations, clock and
// batch sequence, and the samples after what the head knows, in one
// batch; or in none when the head can prove that nobody else wrote since
// it read them (selectFromHead). It reports false, having read nothing it
// keeps, when either generation moved or the head does not cover the
// range; the caller then takes the long way.
func (s *Store) selectCached(ctx context.Context, mint, maxt int64, matchers []*labels.Matcher, budget *readBudget, began uint64) (*seriesSet, bool, error) {
	h := s.head
	if h.rangeMillis == 0 || mint > maxt {
		return nil, false, nil
	}
	key := selectionKey(matchers)
	sel, ok := s.selections.latest(key)
	if !ok || len(sel.series) == 0 {
		return nil, false, nil
	}
	order, err := s.orderOf(ctx, sel)
	if err != nil {
		return nil, false, err
	}
	ids := order.ids
	if out, ok, err := s.selectFromHead(ctx, key, sel, ids, mint, maxt, budget, began); ok || err != nil {
		if err != nil {
			return nil, false, err
		}
		return order.set(out), true, nil
	}
	clock := dbClock{fed: h.fedCount()}
	found, lateGen, ok := h.peek(ids, mint)
	if !ok {
		return nil, false, nil
	}
	since := leastKnown(found, maxt)
	b := &pgx.Batch{}
	b.Queue(seriesGenerationSQL)
	sql, args := s.samplesQuery(ids, since+1, maxSampleTime)
	b.Queue(sql, args...)
	h.trips.Add(1)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	var now time.Time
	if err := br.QueryRow().Scan(&clock.gen, &clock.lateGen, &now, &clock.seq); err != nil {
		return nil, false, fmt.Errorf("read series generation: %w", pgcore.Classify(err))
	}
	clock.now = now.UnixMilli()
	if !s.sameSelection(key, sel, clock.gen) || clock.lateGen != lateGen || !h.covers(mint, maxt, clock.now) {
		return nil, false, nil
	}
	rows, err := br.Query()
	if err != nil {
		return nil, false, fmt.Errorf("read samples: %w", pgcore.Classify(err))
	}
	delta, err := decodeSamples(ctx, rows, since+1, maxSampleTime, budget)
	if err != nil {
		return nil, false, err
	}
	if err := budget.addSeries(len(ids)); err != nil {
		return nil, false, err
	}
	out := make(map[int64]*sampleList, len(ids))
	fresh := make(map[int64]*headEntry, len(ids))
	if err := h.merge(found, delta, since, maxSampleTime, mint, maxt, clock, out, fresh, budget); err != nil {
		return nil, false, err
	}
	h.store(fresh, clock)
	return order.set(out), true, nil
}

// selectFromHead answers [mint, maxt] for ids from the head alone when it
// can prove that PostgreSQL would answer the same: a reading of the
// generations and the batch sequence that began after the querier did
// (began; shared with the other reads that may use it, checker) finds
// sel, the selection of key, still true (sameSelection), the late
// generation the head's, the range covered, and every entry of ids
// proven (proven). It reports false when it cannot; the caller then
// reads.
func (s *Store) selectFromHead(ctx context.Context, key string, sel selection, ids []int64, mint, maxt int64, budget *readBudget, began uint64) (map[int64]*sampleList, bool, error) {
	h := s.head
	if h.skipChecks.Add(-1) >= 0 {
		return nil, false, nil
	}
	clock, err := h.checks.read(ctx, began, s.readClock)
	if err != nil || !s.sameSelection(key, sel, clock.gen) {
		// A failed reading is not this read's failure: the long way
		// reports its own.
		return nil, false, nil
	}
	out, n, ok := h.answer(ids, mint, maxt, clock, true)
	if !ok {
		return nil, false, nil
	}
	if err := budget.addSeries(len(ids)); err != nil {
		return nil, false, err
	}
	if err := budget.addSamples(n); err != nil {
		return nil, false, err
	}
	h.answered.Add(1)
	return out, true, nil
}

// sameSelection reports whether sel, the selection of key, is still what
// its matchers select at generation gen: gen is its own, or every
// generation since was made by this process's inserts of series it does
// not match (selectionCache.advance).
func (s *Store) sameSelection(key string, sel selection, gen int64) bool {
	if gen == sel.gen {
		return true
	}
	next, ok := s.selections.advance(key, gen)
	return ok && len(next.series) == len(sel.series)
}

// answer returns the samples of ids in [mint, maxt] held by the head, and
// their count, when it holds every series of ids from mint on at the late
// generation of clock, covers the range at clock.now and, if prove is
// set, every entry of ids is proven at clock.seq; false otherwise.
func (h *headCache) answer(ids []int64, mint, maxt int64, clock dbClock, prove bool) (map[int64]*sampleList, int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if clock.lateGen > h.lateGen {
		h.reset(clock.lateGen)
	}
	if clock.lateGen != h.lateGen || !h.covers(mint, maxt, clock.now) {
		return nil, 0, false
	}
	out := make(map[int64]*sampleList, len(ids))
	n := 0
	provenAt, anyProven := int64(0), false // the last synced value found proven
	for _, id := range ids {
		e := h.entries[id]
		if e == nil || e.from > mint {
			return nil, 0, false
		}
		if prove && (!anyProven || e.synced != provenAt) {
			if !h.proven(e.synced, clock.seq) {
				return nil, 0, false
			}
			provenAt, anyProven = e.synced, true
		}
		if prove && h.unfed(id, clock.seq) {
			return nil, 0, false
		}
		lo, hi := searchTime(e.s, mint), searchTime(e.s, maxt+1)
		if hi > lo {
			out[id] = &sampleList{s: e.s[lo:hi:hi]}
			n += hi - lo
		}
	}
	return out, n, true
}

// proven reports whether an entry synced at synced holds what PostgreSQL
// holds now that the batch sequence's last value is last, local writes
// aside (unfed): every value in (synced, last] was drawn by this process.
// Called with h.mu held.
func (h *headCache) proven(synced, last int64) bool {
	if synced < 0 || synced < h.floor || last < synced {
		return false
	}
	lo, _ := slices.BinarySearch(h.local, synced+1)
	hi, _ := slices.BinarySearch(h.local, last+1)
	if unknown := last - synced - int64(hi-lo); unknown != 0 {
		// Someone else drew: another replica writes. Readings will
		// likely find the same for a while; the next selections skip
		// them. Unless this process has as many draws under way, not
		// recorded yet: then the values may be its own.
		if unknown > int64(h.drawing) {
			h.skipChecks.Store(checksSkipped)
		}
		return false
	}
	return true
}

// unfed reports whether a local write numbered up to last that wrote
// series id has not been fed yet (it may have committed: PostgreSQL may
// hold samples its entry lacks). Writes of other series do not change
// what PostgreSQL holds of id. Called with h.mu held.
func (h *headCache) unfed(id, last int64) bool {
	for b, ids := range h.pending {
		if b > last {
			continue
		}
		if _, found := slices.BinarySearch(ids, id); found {
			return true
		}
	}
	return false
}

// startDraw records that this process is about to draw a value from the
// batch sequence; begin, drew or endDraw records its end.
func (h *headCache) startDraw() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drawing++
}

// endDraw records that a draw started by startDraw failed.
func (h *headCache) endDraw() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drawing--
}

// begin records the batch number of a local write of rows about to copy
// (and, when the head is on, the series it writes, for unfed).
func (h *headCache) begin(batch int64, rows []sampleRow) {
	var ids []int64
	if h.rangeMillis > 0 {
		ids = make([]int64, len(rows))
		for i := range rows {
			ids[i] = int64(rows[i].series)
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drawing--
	h.pending[batch] = ids
	h.drawnLocked(batch)
}

// drew records the closing value a local write drew.
func (h *headCache) drew(v int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drawing--
	h.drawnLocked(v)
}

func (h *headCache) drawnLocked(v int64) {
	i, found := slices.BinarySearch(h.local, v)
	if !found {
		h.local = slices.Insert(h.local, i, v)
	}
	if len(h.local) > maxLocalDraws {
		half := len(h.local) / 2
		h.floor = h.local[half-1]
		h.local = slices.Delete(h.local, 0, half)
	}
}

// abort records that the local write numbered batch failed. It may have
// committed all the same, unfed: no entry vouches for anything any more.
func (h *headCache) abort(batch int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, batch)
	h.fed++
	for id, e := range h.entries {
		if e.synced >= 0 {
			c := *e
			c.synced = -1
			h.entries[id] = &c
		}
	}
}

// feed adds the committed rows of the local write numbered batch (sorted
// by series and time, one per series and time) to the proven entries of
// their series (entries that vouch for nothing are read again anyway),
// dropping what fell out of the head's range at now (this process's
// clock). An entry holding a different sample at a time the write holds
// is dropped: which one PostgreSQL keeps depends on batch numbers the
// head does not hold.
func (h *headCache) feed(batch int64, rows []sampleRow, now int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, batch)
	h.fed++
	if h.rangeMillis == 0 || len(h.entries) == 0 {
		return
	}
	from := now - h.rangeMillis
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].series == rows[i].series {
			j++
		}
		id := int64(rows[i].series)
		if e := h.entries[id]; e != nil && e.synced >= 0 {
			h.samples -= len(e.s)
			if ne, ok := e.with(rows[i:j], from); ok {
				h.entries[id] = ne
				h.samples += len(ne.s)
			} else {
				delete(h.entries, id)
			}
		}
		i = j
	}
	if h.samples > h.maxSamples {
		h.reset(h.lateGen)
	}
}

// with returns a new entry holding e's samples and rows (sorted by time)
// from max(e.from, from) on; false when a row and a sample of e differ at
// one time.
func (e *headEntry) with(rows []sampleRow, from int64) (*headEntry, bool) {
	keepFrom := max(e.from, from)
	old := e.s[searchTime(e.s, keepFrom):]
	list := make([]metricSample, 0, len(old)+len(rows))
	k := 0
	for i := range rows {
		r := &rows[i]
		if r.t < keepFrom {
			continue
		}
		smp := metricSample{t: r.t, st: r.st, f: r.v}
		if r.h != nil {
			h, fh, err := decodeHistogram(r.h)
			if err != nil {
				return nil, false
			}
			smp.h, smp.fh, smp.f = h, fh, 0
		}
		for k < len(old) && old[k].t < r.t {
			list = append(list, old[k])
			k++
		}
		if k < len(old) && old[k].t == r.t {
			if !sameFloat(old[k], smp) {
				return nil, false
			}
			k++
		}
		list = append(list, smp)
	}
	list = append(list, old[k:]...)
	return &headEntry{from: keepFrom, known: e.known, synced: e.synced, s: list}, true
}

// sameFloat reports whether a and b are the same float sample (a
// histogram sample is never the same: its encodings are not compared).
func sameFloat(a, b metricSample) bool {
	return a.h == nil && a.fh == nil && b.h == nil && b.fh == nil &&
		a.t == b.t && a.st == b.st && math.Float64bits(a.f) == math.Float64bits(b.f)
}

// checker shares readings of the database (readClock) among reads. A read
// may use only a reading that began after the read did (the querier it
// belongs to: then the reading accounts for every commit visible before
// the query began), so it takes the last reading that ended if that one
// qualifies, else the one under way if it does, else the next one, which
// it starts or joins. Readings run one at a time and are numbered in the
// order they begin.
type checker struct {
	mu      sync.Mutex
	started uint64   // readings begun so far
	current *reading // under way, nil when none
	last    *reading // the last that ended without error
}

type reading struct {
	n       uint64 // its number: readings begun before it and it
	done    chan struct{}
	waiters atomic.Int64 // reads waiting for it to end
	clock   dbClock
	err     error
}

// begin returns the mark of a read beginning now: the readings numbered
// above it begin after it.
func (c *checker) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// read returns a reading of run that began after the mark after (begin).
func (c *checker) read(ctx context.Context, after uint64, run func(context.Context) (dbClock, error)) (dbClock, error) {
	c.mu.Lock()
	for {
		if l := c.last; l != nil && l.n > after {
			c.mu.Unlock()
			return l.clock, l.err
		}
		r := c.current
		if r == nil {
			c.started++
			r = &reading{n: c.started, done: make(chan struct{})}
			c.current = r
			c.mu.Unlock()
			r.clock, r.err = run(ctx)
			c.mu.Lock()
			c.current = nil
			if r.err == nil {
				c.last = r
			}
			c.mu.Unlock()
			close(r.done)
			return r.clock, r.err
		}
		c.mu.Unlock()
		r.waiters.Add(1)
		select {
		case <-r.done:
			r.waiters.Add(-1)
		case <-ctx.Done():
			r.waiters.Add(-1)
			return dbClock{}, ctx.Err()
		}
		if r.n > after {
			return r.clock, r.err
		}
		c.mu.Lock()
	}
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
// up to since and the samples read in (since, top] (delta; top is since
// when nothing was read), into out, and puts their new entries into fresh.
// The samples taken from the entries are charged to budget (those read
// were charged as they were read).
func (h *headCache) merge(found map[int64]*headEntry, delta map[int64]*sampleList, since, top, mint, maxt int64, clock dbClock, out map[int64]*sampleList, fresh map[int64]*headEntry, budget *readBudget) error {
	known := min(clock.now-int64(headOverlap/time.Millisecond), maxt)
	from := clock.now - h.rangeMillis // what falls out of the head's range
	charged := 0
	for id, e := range found {
		// The entry's samples up to since, what was read after, and the
		// entry's samples after top (it may know further than this read
		// went).
		k := searchTime(e.s, since+1)
		list := e.s[:k:k]
		if d := delta[id]; d != nil {
			list = append(list, d.s...)
		}
		if j := searchTime(e.s, top+1); j < len(e.s) {
			list = append(list, e.s[j:]...)
		}
		lo, hi := searchTime(list, mint), searchTime(list, maxt+1)
		if hi > lo {
			out[id] = &sampleList{s: list[lo:hi:hi]}
			charged += min(k, hi) - min(lo, k)
		}
		// Trim what has fallen out of the head's range. An entry read
		// again vouches for what store says; one not read keeps its word.
		keepFrom := max(e.from, from)
		cut := searchTime(list, keepFrom)
		synced := e.synced
		if top > since {
			synced = resync
		}
		fresh[id] = &headEntry{from: keepFrom, known: max(e.known, known), synced: synced, s: list[cut:len(list):len(list)]}
	}
	return budget.addSamples(charged)
}

// searchTime returns the index of the first of samples at or after t.
func searchTime(samples []metricSample, t int64) int {
	i, _ := slices.BinarySearchFunc(samples, t, func(m metricSample, t int64) int { return cmp.Compare(m.t, t) })
	return i
}
