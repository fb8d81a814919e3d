package metricstore

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
)

// Bounds of the selection cache: a selection of more series than
// maxCachedSelection is not kept, and the cache is cleared once it holds
// maxCachedSeries series over all its selections.
const (
	maxCachedSelection = 50_000
	maxCachedSeries    = 2_000_000
)

// selectionCache remembers which series (ids and label pairs) a set of
// matchers selects, tagged with the generation of the series dictionary
// read before selecting them. Rule evaluation runs the same selectors every
// interval over a dictionary that rarely changes; with the cache, an
// unchanged selector costs one primary-key read of the generation instead
// of resolving its matchers and scanning metric_series. Series rows are
// never deleted or changed, so a selection stays true until a series is
// added, which bumps the generation (insertSeriesSQL).
//
// A selection made at one generation also holds at a later one when
// every generation in between was made by this process's own inserts,
// whose series it knows (made): it is then advanced to the later
// generation, with those of the new series its matchers match, without
// reading (advance). Rule evaluation writes its own output series
// (ALERTS), which would otherwise send every selection back to
// PostgreSQL each time an alert starts pending or firing.
type selectionCache struct {
	mu         sync.Mutex
	entries    map[string]selection
	series     int                       // series held over all entries
	made       map[int64][]createdSeries // by the generation their insert made
	madeMax    int64                     // the highest generation in made
	madeSeries int                       // series held over made
}

// createdSeries is a series this process inserted.
type createdSeries struct {
	id    int64
	lset  labels.Labels
	pairs []int32
}

// Bounds of what made remembers: generations, and series over all of
// them (past it, it forgets them all).
const (
	maxMadeGenerations = 4096
	maxMadeSeries      = 100_000
)

// created records that this process's insert made generation gen by
// inserting series.
func (c *selectionCache) created(gen int64, series []createdSeries) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.made == nil || c.madeSeries+len(series) > maxMadeSeries {
		c.made = map[int64][]createdSeries{}
		c.madeSeries = 0
	}
	c.made[gen] = series
	c.madeSeries += len(series)
	c.madeMax = max(c.madeMax, gen)
	if len(c.made) > maxMadeGenerations {
		for g := range c.made {
			if g <= c.madeMax-maxMadeGenerations {
				c.madeSeries -= len(c.made[g])
				delete(c.made, g)
			}
		}
	}
}

// advance returns the selection of key at generation gen, from the one
// cached at an older generation, when every generation after it up to
// gen was made by this process: the cached series and those of the
// series made since that match its matchers. The result is cached.
func (c *selectionCache) advance(key string, gen int64) (selection, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || e.gen > gen || e.matchers == nil {
		return selection{}, false
	}
	if e.gen == gen {
		return e, true
	}
	var added []createdSeries
	for g := e.gen + 1; g <= gen; g++ {
		made, ok := c.made[g]
		if !ok {
			return selection{}, false
		}
		for _, cs := range made {
			if _, in := e.series[cs.id]; !in && matchesAll(e.matchers, cs.lset) {
				added = append(added, cs)
			}
		}
	}
	next := selection{gen: gen, series: e.series, matchers: e.matchers, order: e.order}
	if len(added) > 0 {
		next.series = maps.Clone(e.series)
		for _, cs := range added {
			next.series[cs.id] = cs.pairs
		}
		next.order = &orderSlot{}
		if len(next.series) > maxCachedSelection {
			delete(c.entries, key)
			c.series -= len(e.series)
			return next, true
		}
		c.series += len(added)
	}
	c.entries[key] = next
	return next, true
}

// matchesAll reports whether ls matches every matcher (a missing label
// has the value "", as in Prometheus).
func matchesAll(matchers []*labels.Matcher, ls labels.Labels) bool {
	for _, m := range matchers {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

type selection struct {
	gen      int64
	series   map[int64][]int32
	matchers []*labels.Matcher // what selected them
	order    *orderSlot        // the series' label sets in label order, once built
}

// orderSlot holds a selection's seriesOrder once a read has built it.
type orderSlot struct{ p atomic.Pointer[seriesOrder] }

// seriesOrder is the series of a selection sorted by label set, with
// their label sets (immutable, shared by every read of the selection).
type seriesOrder struct {
	ids   []int64
	lsets []labels.Labels
}

// orderOf returns the series of sel in label order, building them once.
func (s *Store) orderOf(ctx context.Context, sel selection) (*seriesOrder, error) {
	if o := sel.order.p.Load(); o != nil {
		return o, nil
	}
	lsets, err := s.labelsOf(ctx, sel.series)
	if err != nil {
		return nil, err
	}
	o := &seriesOrder{ids: make([]int64, 0, len(lsets)), lsets: make([]labels.Labels, 0, len(lsets))}
	for id := range lsets {
		o.ids = append(o.ids, id)
	}
	slices.SortFunc(o.ids, func(a, b int64) int { return labels.Compare(lsets[a], lsets[b]) })
	for _, id := range o.ids {
		o.lsets = append(o.lsets, lsets[id])
	}
	sel.order.p.Store(o)
	return o, nil
}

// set returns the series of o that samples holds, in label order.
func (o *seriesOrder) set(samples map[int64]*sampleList) *seriesSet {
	out := &seriesSet{idx: -1, series: make([]promstorage.Series, 0, len(samples))}
	for i, id := range o.ids {
		if l := samples[id]; l != nil {
			out.series = append(out.series, &storedSeries{lset: o.lsets[i], samples: l})
		}
	}
	return out
}

// key identifies a set of matchers (their order matters not to the
// selection but is kept: callers pass them in a stable order).
func selectionKey(matchers []*labels.Matcher) string {
	var b strings.Builder
	for _, m := range matchers {
		b.WriteString(m.String())
		b.WriteByte(0)
	}
	return b.String()
}

// get returns the cached selection of key when it was made at gen.
func (c *selectionCache) get(key string, gen int64) (map[int64][]int32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || e.gen != gen {
		return nil, false
	}
	return e.series, true
}

// latest returns the cached selection of key, whatever its generation.
func (c *selectionCache) latest(key string) (selection, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	return e, ok
}

// put keeps a selection made at gen. The map is shared with readers
// and must not be modified afterwards.
func (c *selectionCache) put(key string, gen int64, series map[int64][]int32, matchers []*labels.Matcher) {
	if len(series) > maxCachedSelection {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || c.series+len(series) > maxCachedSeries {
		c.entries = map[string]selection{}
		c.series = 0
	}
	if old, ok := c.entries[key]; ok {
		c.series -= len(old.series)
	}
	c.entries[key] = selection{gen: gen, series: series, matchers: matchers, order: &orderSlot{}}
	c.series += len(series)
}

// selectedSeries returns the ids and label pairs of the series matchers
// select, from the cache when no series was added since it was filled
// (gen, the series generation read before selecting: a series added
// meanwhile bumps it, so a selection that missed it is not reused). The
// returned map must not be modified.
func (s *Store) selectedSeries(ctx context.Context, gen int64, matchers []*labels.Matcher) (map[int64][]int32, error) {
	key := selectionKey(matchers)
	if series, ok := s.selections.get(key, gen); ok {
		return series, nil
	}
	if sel, ok := s.selections.advance(key, gen); ok {
		return sel.series, nil
	}
	f, err := s.resolve(ctx, matchers)
	if err != nil {
		return nil, err
	}
	series := map[int64][]int32{}
	if !f.empty {
		if series, err = s.matchingSeries(ctx, f); err != nil {
			return nil, err
		}
	}
	s.selections.put(key, gen, series, slices.Clone(matchers))
	return series, nil
}
