package metricstore

import (
	"context"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
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
type selectionCache struct {
	mu      sync.Mutex
	entries map[string]selection
	series  int // series held over all entries
}

type selection struct {
	gen    int64
	series map[int64][]int32
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
func (c *selectionCache) put(key string, gen int64, series map[int64][]int32) {
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
	c.entries[key] = selection{gen: gen, series: series}
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
	s.selections.put(key, gen, series)
	return series, nil
}
