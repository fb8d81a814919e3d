package metricstore

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// TestSelectionCacheSeesNewSeries checks that a cached selection is not
// reused once a series is added, by this store or by another replica's
// store on the same database, and that writing known series does not bump
// the generation that guards the cache.
func TestSelectionCacheSeesNewSeries(t *testing.T) {
	b := setupMetrics(t)
	ctx := context.Background()
	other := New(b.store.pool, b.parts, Options{}) // another replica
	job := labels.MustNewMatcher(labels.MatchEqual, "job", "api")
	name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "http_requests_total")
	code := labels.MustNewMatcher(labels.MatchRegexp, "code", "5..")
	series := func(code string) labels.Labels {
		return labels.FromStrings("__name__", "http_requests_total", "job", "api", "code", code)
	}
	appendAll(t, b.store, series("500"), readSample{t: 1000, f: 1})
	appendAll(t, b.store, series("200"), readSample{t: 1000, f: 1})

	count := func(s *Store) int {
		t.Helper()
		return len(selectAll(t, s, 0, 10_000, name, job, code))
	}
	if n := count(b.store); n != 1 {
		t.Fatalf("selected %d series, want 1", n)
	}
	clock, err := b.store.readClock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gen := clock.gen
	// Known series: no new generation, the cached selection stays.
	appendAll(t, b.store, series("500"), readSample{t: 2000, f: 2})
	if c, _ := b.store.readClock(ctx); c.gen != gen {
		t.Fatalf("generation moved from %d to %d on known series", gen, c.gen)
	}
	if _, ok := b.store.selections.get(selectionKey([]*labels.Matcher{name, job, code}), gen); !ok {
		t.Fatal("selection not cached")
	}
	if got := selectAll(t, b.store, 0, 10_000, name, job, code); len(got[series("500").String()]) != 2 {
		t.Fatalf("cached selection read %v", got)
	}

	// A new matching series written through another store is selected.
	appendAll(t, other, series("503"), readSample{t: 1000, f: 1})
	if c, _ := b.store.readClock(ctx); c.gen == gen {
		t.Fatal("a new series did not bump the generation")
	}
	if n := count(b.store); n != 2 {
		t.Fatalf("after a new series on another store: selected %d series, want 2", n)
	}
	// And one written through this store.
	appendAll(t, b.store, series("502"), readSample{t: 1000, f: 1})
	if n := count(b.store); n != 3 {
		t.Fatalf("after a new series: selected %d series, want 3", n)
	}
	// A selection that matched nothing is cached as empty, and still sees
	// the first series that matches it.
	none := labels.MustNewMatcher(labels.MatchEqual, "job", "web")
	if n := len(selectAll(t, b.store, 0, 10_000, name, none)); n != 0 {
		t.Fatalf("selected %d series of job web", n)
	}
	appendAll(t, other, labels.FromStrings("__name__", "http_requests_total", "job", "web"), readSample{t: 1000, f: 1})
	if n := len(selectAll(t, b.store, 0, 10_000, name, none)); n != 1 {
		t.Fatalf("selected %d series of job web after adding one, want 1", n)
	}
}

func TestSelectionCacheBounds(t *testing.T) {
	var c selectionCache
	big := make(map[int64][]int32, maxCachedSelection+1)
	for i := range maxCachedSelection + 1 {
		big[int64(i)] = nil
	}
	c.put("big", 1, big, nil)
	if _, ok := c.get("big", 1); ok {
		t.Fatal("a selection over the bound was kept")
	}
	small := map[int64][]int32{1: {1}}
	c.put("a", 1, small, nil)
	if _, ok := c.get("a", 2); ok {
		t.Fatal("a selection of another generation was returned")
	}
	if got, ok := c.get("a", 1); !ok || len(got) != 1 {
		t.Fatal("selection lost")
	}
	c.put("a", 2, small, nil)
	if c.series != 1 {
		t.Fatalf("replacing an entry counts %d series, want 1", c.series)
	}
}
