package metricstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
)

// TestHeadAnswersAsTheDatabase writes through two replicas' stores on one
// database (recent samples, rewrites of a timestamp, late samples minutes
// old, new series) and reads through a store with a head, again and again
// over ranges that move like rule evaluations; every read must equal what
// a store without a head reads.
func TestHeadAnswersAsTheDatabase(t *testing.T) {
	b := setupMetrics(t)
	other := New(b.store.pool, b.parts, Options{})              // another replica, writing
	plain := New(b.store.pool, b.parts, Options{HeadRange: -1}) // no head: the database's answer
	rng := rand.New(rand.NewPCG(1, 2))
	job := labels.MustNewMatcher(labels.MatchEqual, "job", "api")
	series := func(i int) labels.Labels {
		return labels.FromStrings("__name__", "requests_total", "job", "api", "instance", fmt.Sprint(i))
	}
	start := time.Now().Add(-20 * time.Minute).UnixMilli()
	for i := range 5 {
		for ts := start; ts < start+10*60_000; ts += 15_000 {
			appendAll(t, b.store, series(i), readSample{t: ts, f: float64(ts)})
		}
	}
	nSeries := 5
	for round := range 40 {
		now := time.Now().UnixMilli()
		w := []*Store{b.store, other}[rng.IntN(2)]
		switch rng.IntN(5) {
		case 0: // a late sample, minutes old
			appendAll(t, w, series(rng.IntN(nSeries)), readSample{t: now - int64(rng.IntN(8)+2)*60_000 + int64(rng.IntN(1000)), f: -1})
		case 1: // a rewrite of a recent timestamp
			appendAll(t, w, series(rng.IntN(nSeries)), readSample{t: now - 10_000, f: float64(round)})
			appendAll(t, w, series(rng.IntN(nSeries)), readSample{t: now - 10_000, f: float64(-round)})
		case 2: // a new series
			appendAll(t, w, series(nSeries), readSample{t: now - 20_000, f: 1}, readSample{t: now - 5_000, f: 2})
			nSeries++
		default: // the newest samples of every series
			for i := range nSeries {
				appendAll(t, w, series(i), readSample{t: now - int64(rng.IntN(3000)), f: float64(round)})
			}
		}
		// Reads as rules make them: the last 1, 5 or 10 minutes up to now,
		// and now and then one that ends before now.
		for _, rangeMin := range []int64{1, 5, 10} {
			maxt := time.Now().UnixMilli()
			if rng.IntN(4) == 0 {
				maxt -= int64(rng.IntN(120_000))
			}
			mint := maxt - rangeMin*60_000
			got := selectAll(t, b.store, mint, maxt, job)
			want := selectAll(t, plain, mint, maxt, job)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d, [%d, %d]: head read\n%v\nthe database holds\n%v", round, mint, maxt, got, want)
			}
		}
	}
	if len(b.store.head.entries) == 0 {
		t.Fatal("the head holds nothing after the reads")
	}
}

// TestHeadReadsOnlyWhatItDoesNotKnow removes samples behind the store's
// back: those the head knows (older than the overlap before its last read)
// are still answered from it, the newer ones are read again and are gone.
func TestHeadReadsOnlyWhatItDoesNotKnow(t *testing.T) {
	b := setupMetrics(t)
	ctx := context.Background()
	ls := labels.FromStrings("__name__", "up", "job", "api")
	m := labels.MustNewMatcher(labels.MatchEqual, "job", "api")
	now := time.Now().UnixMilli()
	old, recent := now-3*60_000, now-10_000
	appendAll(t, b.store, ls, readSample{t: old, f: 1})
	appendAll(t, b.store, ls, readSample{t: recent, f: 2})
	if got := selectAll(t, b.store, now-5*60_000, now); len(got[ls.String()]) != 2 {
		t.Fatalf("first read: %v", got)
	}
	if _, err := b.store.pool.Exec(ctx, "DELETE FROM metric_samples"); err != nil {
		t.Fatal(err)
	}
	got := selectAll(t, b.store, now-5*60_000, time.Now().UnixMilli(), m)
	if want := []readSample{{t: old, f: 1}}; !reflect.DeepEqual(got[ls.String()], want) {
		t.Fatalf("second read: %v, want %v (the known sample from the head, the recent one read again)", got, want)
	}
	// A range starting before what the head holds is read whole.
	if got := selectAll(t, b.store, now-10*60_000, time.Now().UnixMilli(), m); len(got) != 0 {
		t.Fatalf("wider read: %v, want nothing", got)
	}
}

// TestHeadLateWriteOnAnotherReplica checks that a late sample committed
// through another store reaches the head's next read, through the late
// generation, and that a late write bumps it while a recent one does not.
func TestHeadLateWriteOnAnotherReplica(t *testing.T) {
	b := setupMetrics(t)
	ctx := context.Background()
	other := New(b.store.pool, b.parts, Options{})
	ls := labels.FromStrings("__name__", "up", "job", "api")
	now := time.Now().UnixMilli()
	appendAll(t, b.store, ls, readSample{t: now - 4*60_000, f: 1}, readSample{t: now - 1000, f: 1})
	selectAll(t, b.store, now-5*60_000, now)
	before, err := b.store.readClock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, other, ls, readSample{t: time.Now().UnixMilli(), f: 3})
	if c, _ := b.store.readClock(ctx); c.lateGen != before.lateGen {
		t.Fatalf("a recent write bumped the late generation from %d to %d", before.lateGen, c.lateGen)
	}
	appendAll(t, other, ls, readSample{t: now - 3*60_000, f: 2})
	if c, _ := b.store.readClock(ctx); c.lateGen != before.lateGen+1 {
		t.Fatalf("a late write left the late generation at %d, want %d", c.lateGen, before.lateGen+1)
	}
	got := selectAll(t, b.store, now-5*60_000, time.Now().UnixMilli())
	if s := got[ls.String()]; len(s) != 4 || s[1] != (readSample{t: now - 3*60_000, f: 2}) {
		t.Fatalf("after a late write on another replica: %v", s)
	}
}

// TestHeadBounds checks the head's limits: reads older than its range do
// not fill it, and a store that would pass its sample bound clears it.
func TestHeadBounds(t *testing.T) {
	b := setupMetrics(t)
	s := New(b.store.pool, b.parts, Options{HeadRange: 10 * time.Minute, HeadMaxSamples: 25})
	now := time.Now().UnixMilli()
	for i := range 3 {
		ls := labels.FromStrings("__name__", "up", "instance", fmt.Sprint(i))
		var samples []readSample
		for ts := now - 5*60_000; ts < now; ts += 30_000 {
			samples = append(samples, readSample{t: ts, f: 1})
		}
		appendAll(t, b.store, ls, samples...)
	}
	m := func(i int) *labels.Matcher {
		return labels.MustNewMatcher(labels.MatchEqual, "instance", fmt.Sprint(i))
	}
	selectAll(t, s, now-20*60_000, now, m(0))
	if n := len(s.head.entries); n != 0 {
		t.Fatalf("a read older than the head's range stored %d entries", n)
	}
	selectAll(t, s, now-5*60_000, now, m(0))
	selectAll(t, s, now-5*60_000, now, m(1))
	if n := len(s.head.entries); n != 2 || s.head.samples != 20 {
		t.Fatalf("head holds %d entries, %d samples; want 2, 20", n, s.head.samples)
	}
	selectAll(t, s, now-5*60_000, now, m(2))
	if n := len(s.head.entries); n != 1 || s.head.samples != 10 {
		t.Fatalf("past its bound the head holds %d entries, %d samples; want 1, 10", n, s.head.samples)
	}
}

// BenchmarkRuleSelect reads what a rule evaluation reads every interval:
// 100 series of one job over the last 5 minutes, out of 10,000 series
// written every 15 s, with a new round of samples before each read. It
// runs with the head off (every sample read from PostgreSQL) and on (the
// cached selection answered with one batch).
func BenchmarkRuleSelect(b *testing.B) {
	for _, head := range []struct {
		name string
		rng  time.Duration
	}{{"head_off", -1}, {"head_on", 0}} {
		b.Run(head.name, func(b *testing.B) {
			bundle := setupMetrics(b)
			s := New(bundle.store.pool, bundle.parts, Options{HeadRange: head.rng})
			ctx := context.Background()
			series := make([]labels.Labels, 10_000)
			for i := range series {
				series[i] = labels.FromStrings("__name__", "http_requests_total", "job", fmt.Sprintf("svc-%02d", i/100), "instance", fmt.Sprintf("i-%d", i%100))
			}
			write := func(ts int64) {
				app := s.AppenderV2(ctx)
				for i, ls := range series {
					if _, err := app.Append(0, ls, 0, ts, float64(i), nil, nil, promstorage.AOptions{}); err != nil {
						b.Fatal(err)
					}
				}
				if err := app.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			now := time.Now().UnixMilli()
			for ts := now - 6*60_000; ts <= now; ts += 15_000 {
				write(ts)
			}
			job := labels.MustNewMatcher(labels.MatchEqual, "job", "svc-42")
			name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "http_requests_total")
			read := func() {
				t := time.Now().UnixMilli()
				q, err := s.Querier(t-5*60_000, t)
				if err != nil {
					b.Fatal(err)
				}
				set := q.Select(ctx, false, nil, name, job)
				n := 0
				for set.Next() {
					n++
				}
				if set.Err() != nil || n != 100 {
					b.Fatalf("read %d series: %v", n, set.Err())
				}
			}
			read()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if i%100 == 0 {
					b.StopTimer()
					write(time.Now().UnixMilli())
					b.StartTimer()
				}
				read()
			}
		})
	}
}

// TestHeadAnswersLocalWritesAlone writes through the store that reads and
// checks that, as long as nobody else writes, a selection read again is
// answered from the head without reading samples from PostgreSQL, and
// equals what a store without a head reads; that a write or a new series
// of another replica on the same database, a rewrite of a timestamp and a
// late write make the next read go to PostgreSQL and see them; and that
// without the proof the head would have answered wrong there (so the
// comparisons above would catch a broken fallback).
func TestHeadAnswersLocalWritesAlone(t *testing.T) {
	b := setupMetrics(t)
	ctx := context.Background()
	s := b.store
	other := New(s.pool, b.parts, Options{})              // another replica, writing
	plain := New(s.pool, b.parts, Options{HeadRange: -1}) // no head: the database's answer
	job := labels.MustNewMatcher(labels.MatchEqual, "job", "api")
	series := func(i int) labels.Labels {
		return labels.FromStrings("__name__", "requests_total", "job", "api", "instance", fmt.Sprint(i))
	}
	start := time.Now().Add(-5 * time.Minute).UnixMilli()
	for i := range 3 {
		for ts := start; ts < start+4*60_000; ts += 15_000 {
			appendAll(t, s, series(i), readSample{t: ts, f: float64(ts)})
		}
	}
	// read selects the last 5 minutes through s and reports whether it
	// read samples from PostgreSQL and whether the head answered alone;
	// the answer must be the database's.
	read := func(what string) (got map[string][]readSample, trips int64, alone bool) {
		t.Helper()
		trips0, answered0 := s.head.trips.Load(), s.head.answered.Load()
		maxt := time.Now().UnixMilli()
		got = selectAll(t, s, maxt-5*60_000, maxt, job)
		if want := selectAll(t, plain, maxt-5*60_000, maxt, job); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: head read\n%v\nthe database holds\n%v", what, got, want)
		}
		trips, answered := s.head.trips.Load()-trips0, s.head.answered.Load()-answered0
		if (answered == 1) != (trips == 0) || answered > 1 {
			t.Fatalf("%s: %d statements read samples, %d answers from the head alone", what, trips, answered)
		}
		return got, trips, answered == 1
	}
	read("first read")
	if _, _, alone := read("second read"); !alone {
		t.Fatal("a read with no write since the last was not answered by the head alone")
	}
	// (a) Local writes are fed: no read of samples, the same answer.
	n := 3
	for round := range 5 {
		now := time.Now().UnixMilli()
		for i := range n {
			appendAll(t, s, series(i), readSample{t: now - int64(i), f: float64(round)})
		}
		got, trips, alone := read(fmt.Sprintf("after local write %d", round))
		if !alone {
			t.Fatalf("after local write %d: %d statements read samples", round, trips)
		}
		if s0 := got[series(0).String()]; s0[len(s0)-1] != (readSample{t: now, f: float64(round)}) {
			t.Fatalf("after local write %d: the newest sample of %s is %v", round, series(0), s0[len(s0)-1])
		}
	}
	// A rewrite of a timestamp with another value: the head cannot tell
	// which one PostgreSQL keeps, so it reads.
	now := time.Now().UnixMilli()
	appendAll(t, s, series(1), readSample{t: now, f: 1})
	read("after a write")
	appendAll(t, s, series(1), readSample{t: now, f: 2})
	if _, _, alone := read("after a rewrite"); alone {
		t.Fatal("a rewrite of a timestamp was answered by the head alone")
	}

	// reprove lets the head prove itself again after another replica
	// wrote: the selections that skip the proof, then one more read.
	reprove := func(what string) {
		t.Helper()
		for range checksSkipped + 1 {
			read(what)
		}
		if _, _, alone := read(what); !alone {
			t.Fatalf("%s: the head did not answer alone again", what)
		}
	}
	reprove("after a rewrite")

	// Series this store creates: one the selection does not match
	// changes nothing (the selection is advanced without reading), one it
	// matches is read.
	alerts := labels.FromStrings("__name__", "ALERTS", "alertname", "HighErrorRate", "job", "web")
	appendAll(t, s, alerts, readSample{t: time.Now().UnixMilli(), f: 1})
	if _, trips, alone := read("after a local series the selection does not match"); !alone {
		t.Fatalf("after a local series the selection does not match: %d statements read samples", trips)
	}
	appendAll(t, s, series(n), readSample{t: time.Now().UnixMilli() - 1000, f: 7})
	got, _, alone := read("after a local series the selection matches")
	if alone || len(got) != n+1 {
		t.Fatalf("after a local series the selection matches: %d series (alone %v), want %d", len(got), alone, n+1)
	}
	n++
	reprove("after a local series the selection matches")

	// (b) Another replica writes a recent sample: the head alone would
	// miss it, the proof fails, the read goes to PostgreSQL.
	foreign := readSample{t: time.Now().UnixMilli(), f: 42}
	appendAll(t, other, series(2), foreign)
	clock, err := s.readClock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sel, ok := s.selections.latest(selectionKey([]*labels.Matcher{job}))
	if !ok {
		t.Fatal("no cached selection")
	}
	ids := make([]int64, 0, len(sel.series))
	for id := range sel.series {
		ids = append(ids, id)
	}
	maxt := time.Now().UnixMilli()
	if _, _, ok := s.head.answer(ids, maxt-5*60_000, maxt, clock, true); ok {
		t.Fatal("the head proved itself after another replica wrote")
	}
	unproven, _, ok := s.head.answer(ids, maxt-5*60_000, maxt, clock, false)
	if !ok {
		t.Fatal("the head does not hold the selection")
	}
	if l := unproven[int64(series(2).Hash())].s; l[len(l)-1].t == foreign.t {
		t.Fatal("the head holds another replica's write: the fallback below would be untested")
	}
	got, trips, alone := read("after another replica's write")
	if alone || trips == 0 {
		t.Fatal("another replica's write was answered by the head alone")
	}
	if l := got[series(2).String()]; l[len(l)-1] != foreign {
		t.Fatalf("after another replica's write: %v, want it last", l)
	}
	reprove("after another replica's write")

	// (c) Another replica creates a series the selection matches.
	appendAll(t, other, series(n), readSample{t: time.Now().UnixMilli() - 1000, f: 7})
	got, _, alone = read("after another replica's new series")
	if alone || len(got) != n+1 {
		t.Fatalf("after another replica's new series: %d series (alone %v), want %d", len(got), alone, n+1)
	}
	reprove("after another replica's new series")

	// A late write, local or not, announces itself: the head is dropped.
	appendAll(t, s, series(0), readSample{t: time.Now().Add(-3*time.Minute).UnixMilli() + 7, f: -1})
	if _, _, alone := read("after a late write"); alone {
		t.Fatal("a late write was answered by the head alone")
	}
	reprove("after a late write")
}

// TestHeadChecksAreShared checks that reads arriving while a reading of
// the database is under way share the next one, that none uses a reading
// that began before it did, and that a reading that ended serves the
// reads that began before it without a new one.
func TestHeadChecksAreShared(t *testing.T) {
	const waiters = 5
	var c checker
	current := func() *reading {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.current
	}
	wait := func(cond func() bool) {
		for !cond() {
			runtime.Gosched()
		}
	}
	// The first reading waits for the five reads to wait for it; the
	// second for all of them to have moved on to it.
	release := make(chan struct{})
	var runs atomic.Int64
	var r1 *reading
	run := func(context.Context) (dbClock, error) {
		n := runs.Add(1)
		switch n {
		case 1:
			r1 = current()
			<-release
		case 2:
			r2 := current()
			wait(func() bool { return r1.waiters.Load() == 0 && r2.waiters.Load() == waiters-1 })
		}
		return dbClock{seq: n}, nil
	}
	ctx := context.Background()
	first := make(chan dbClock)
	early := c.begin() // a read that began before any reading
	go func() {
		r, _ := c.read(ctx, c.begin(), run)
		first <- r
	}()
	wait(func() bool { return current() != nil })
	got := make(chan dbClock, waiters)
	for range waiters {
		go func() {
			r, _ := c.read(ctx, c.begin(), run)
			got <- r
		}()
	}
	wait(func() bool { return current().waiters.Load() == waiters })
	close(release)
	if r := <-first; r.seq != 1 {
		t.Fatalf("the first read got reading %d", r.seq)
	}
	for range waiters {
		if r := <-got; r.seq != 2 {
			t.Fatalf("a read arriving during reading 1 got reading %d, want 2", r.seq)
		}
	}
	if n := runs.Load(); n != 2 {
		t.Fatalf("%d readings for %d reads, want 2", n, waiters+1)
	}
	if r, _ := c.read(ctx, early, run); r.seq != 2 || runs.Load() != 2 {
		t.Fatalf("a read that began before reading 2 got reading %d after %d readings, want 2 after 2", r.seq, runs.Load())
	}
	if r, _ := c.read(ctx, c.begin(), run); r.seq != 3 {
		t.Fatalf("a read that began after reading 2 got reading %d, want 3", r.seq)
	}
}

// TestHeadPendingWriteOfOtherSeries checks that a local write under way
// keeps the head from answering alone only the selections of the series
// it writes: PostgreSQL may hold its samples before the head does, but
// what it holds of other series does not change.
func TestHeadPendingWriteOfOtherSeries(t *testing.T) {
	b := setupMetrics(t)
	ctx := context.Background()
	s := b.store
	plain := New(s.pool, b.parts, Options{HeadRange: -1})
	series := func(i int) labels.Labels {
		return labels.FromStrings("__name__", "requests_total", "job", "api", "instance", fmt.Sprint(i))
	}
	now := time.Now().UnixMilli()
	for i := range 2 {
		appendAll(t, s, series(i), readSample{t: now - 60_000, f: 1}, readSample{t: now - 30_000, f: 2})
	}
	all := labels.MustNewMatcher(labels.MatchEqual, "job", "api")
	one := labels.MustNewMatcher(labels.MatchEqual, "instance", "1")
	read := func(m *labels.Matcher) bool {
		t.Helper()
		answered0 := s.head.answered.Load()
		maxt := time.Now().UnixMilli()
		got := selectAll(t, s, maxt-5*60_000, maxt, m)
		if want := selectAll(t, plain, maxt-5*60_000, maxt, m); !reflect.DeepEqual(got, want) {
			t.Fatalf("head read\n%v\nthe database holds\n%v", got, want)
		}
		return s.head.answered.Load() > answered0
	}
	for _, m := range []*labels.Matcher{all, one, all, one} {
		read(m)
	}
	if !read(all) || !read(one) {
		t.Fatal("with no write since, the head did not answer alone")
	}

	// A write of series 0 is under way (its batch number drawn, its COPY
	// not fed yet).
	s.head.startDraw()
	var batch int64
	if err := s.pool.QueryRow(ctx, nextBatchSQL).Scan(&batch); err != nil {
		t.Fatal(err)
	}
	s.head.begin(batch, []sampleRow{{series: series(0).Hash(), t: now}})
	if read(all) {
		t.Fatal("a selection of the series a write under way writes was answered by the head alone")
	}
	if !read(one) {
		t.Fatal("a selection of series no write under way writes was not answered by the head alone")
	}
	s.head.feed(batch, nil, time.Now().UnixMilli())
	read(all)
	if !read(all) {
		t.Fatal("once the write was fed, the head did not answer alone")
	}
}
