package metricstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

func TestChunkDataRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var in []metricSample
	ts := int64(1_700_000_000_000)
	st := int64(0)
	for i := range 3000 {
		ts += 15000 + rng.Int64N(100) - 50
		s := metricSample{t: ts, f: float64(i) * 1.5}
		switch {
		case i%97 == 0:
			s.f = math.Float64frombits(value.StaleNaN)
		case i%89 == 0:
			s.f = math.Inf(-1)
		case i%83 == 0:
			s.f = math.NaN()
		}
		if i > 200 {
			if i%300 == 0 {
				st = ts - 1000 // a counter restart
			}
			s.st = st
		}
		if i >= 1000 && i < 1010 {
			s.h = &histogram.Histogram{Count: uint64(i), Sum: float64(i), Schema: 0,
				PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{int64(i)}}
			s.f = 0
		}
		in = append(in, s)
	}
	data, err := encodeChunkData(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeChunkData(nil, data, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d samples, want %d", len(out), len(in))
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.t != b.t || a.st != b.st || math.Float64bits(a.f) != math.Float64bits(b.f) ||
			(a.h == nil) != (b.h == nil) || (a.h != nil && !a.h.Equals(b.h)) {
			t.Fatalf("sample %d: got %+v, want %+v", i, b, a)
		}
	}
	// A window filter.
	part, err := decodeChunkData(nil, data, in[10].t, in[20].t)
	if err != nil || len(part) != 11 || part[0].t != in[10].t {
		t.Fatalf("filtered: %d samples, %v", len(part), err)
	}
	// Truncated data is an error, never a panic.
	for i := 1; i < len(data); i++ {
		_, _ = decodeChunkData(nil, data[:i], math.MinInt64, math.MaxInt64)
	}
	if _, err := decodeChunkData(nil, []byte{9, 1, 0}, 0, 1); !errors.Is(err, pgcore.ErrCorrupt) {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestMergeSamples(t *testing.T) {
	older := []metricSample{{t: 1, f: 1}, {t: 3, f: 3}, {t: 5, f: 5}}
	newer := []metricSample{{t: 2, f: 20}, {t: 3, f: 30}, {t: 6, f: 60}}
	got := mergeSamples(nil, older, newer)
	want := []metricSample{{t: 1, f: 1}, {t: 2, f: 20}, {t: 3, f: 30}, {t: 5, f: 5}, {t: 6, f: 60}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// compactFixture loads nSeries series over three chunk windows ending four
// hours ago, 15 s apart, and returns their expected samples by series.
func compactFixture(t *testing.T, s *Store, nSeries int) (map[string][]readSample, int64, int64) {
	t.Helper()
	end := time.Now().Add(-4*time.Hour).UnixMilli() / metricChunkWindowMillis * metricChunkWindowMillis
	start := end - 3*metricChunkWindowMillis
	want := map[string][]readSample{}
	app := s.AppenderV2(context.Background())
	for i := range nSeries {
		ls := labels.FromStrings("__name__", "compact_me", "i", fmt.Sprint(i))
		var list []readSample
		for ts := start; ts < end; ts += 15000 {
			v := float64((ts-start)/15000*int64(i+1)) + 0.25
			list = append(list, readSample{t: ts, f: v})
			if _, err := app.Append(0, ls, 0, ts, v, nil, nil, promstorage.AOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		want[ls.String()] = list
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	return want, start, end
}

func countRows(t *testing.T, s *Store, table string) int64 {
	t.Helper()
	var n int64
	if err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCompactKeepsQueryResults(t *testing.T) {
	b := setupMetrics(t)
	s := b.store
	want, start, end := compactFixture(t, s, 20)
	name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "compact_me")
	before := selectAll(t, s, start, end, name)
	if !reflect.DeepEqual(before, want) {
		t.Fatalf("raw read differs from what was written")
	}
	// Nothing is due yet when 'before' is the fixture's start.
	stats, err := s.Compact(context.Background(), time.UnixMilli(start))
	if err != nil || stats.Windows != 0 {
		t.Fatalf("early compaction: %+v %v", stats, err)
	}
	stats, err = s.Compact(context.Background(), time.UnixMilli(end))
	if err != nil {
		t.Fatal(err)
	}
	if stats.Windows != 3 || stats.Series != 60 || stats.Samples != 20*3*480 || stats.Dropped != 3 {
		t.Fatalf("stats %+v", stats)
	}
	if n := countRows(t, s, "metric_samples"); n != 0 {
		t.Fatalf("%d raw samples left", n)
	}
	if n := countRows(t, s, "metric_chunks"); n != 60 {
		t.Fatalf("%d chunks, want 60", n)
	}
	if bytes := float64(stats.Bytes) / float64(stats.Samples); bytes > 4 {
		t.Errorf("%.2f bytes per sample in chunks", bytes)
	}
	// Whole range, a sub-range cutting windows, a single instant.
	if got := selectAll(t, s, start, end, name); !reflect.DeepEqual(got, want) {
		t.Fatalf("compacted read differs")
	}
	lo, hi := start+metricChunkWindowMillis/2, end-metricChunkWindowMillis/3
	for k, list := range want {
		var sub []readSample
		for _, smp := range list {
			if smp.t >= lo && smp.t <= hi {
				sub = append(sub, smp)
			}
		}
		if got := selectAll(t, s, lo, hi, name)[k]; !reflect.DeepEqual(got, sub) {
			t.Fatalf("%s: sub-range read differs: %d vs %d samples", k, len(got), len(sub))
		}
		break
	}

	// A late sample into a compacted window wins over the chunk and is
	// merged into it by the next pass; a new timestamp is added.
	k0 := labels.FromStrings("__name__", "compact_me", "i", "0")
	appendAll(t, s, k0, readSample{t: start + 15000, f: -7}, readSample{t: start + 15001, f: -8})
	check := func(stage string) {
		got := selectAll(t, s, start, start+30000, name)[k0.String()]
		w := []readSample{want[k0.String()][0], {t: start + 15000, f: -7}, {t: start + 15001, f: -8}, want[k0.String()][2]}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("%s: got %v, want %v", stage, got, w)
		}
	}
	check("raw over chunk")
	stats, err = s.Compact(context.Background(), time.UnixMilli(end))
	if err != nil || stats.Windows != 1 || stats.Series != 1 {
		t.Fatalf("second pass: %+v %v", stats, err)
	}
	check("merged")
	if n := countRows(t, s, "metric_chunks"); n != 60 {
		t.Fatalf("%d chunks after the merge, want 60", n)
	}
}

// TestCompactInterrupted cancels compaction at ever later points (the
// database aborts the transaction as if Vigil had been killed) and checks
// after each attempt that every sample is read exactly once.
func TestCompactInterrupted(t *testing.T) {
	b := setupMetrics(t)
	s := b.store
	want, start, end := compactFixture(t, s, 50)
	name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "compact_me")
	interrupted := 0
	for delay := time.Millisecond; ; delay = delay * 3 / 2 {
		ctx, cancel := context.WithTimeout(context.Background(), delay)
		stats, err := s.Compact(ctx, time.UnixMilli(end))
		cancel()
		if got := selectAll(t, s, start, end, name); !reflect.DeepEqual(got, want) {
			t.Fatalf("after an interruption at %v (stats %+v, err %v) the samples differ", delay, stats, err)
		}
		if err == nil && !stats.Skipped {
			break
		}
		interrupted++
		if delay > time.Minute {
			t.Fatalf("compaction never finished: %v", err)
		}
	}
	if interrupted < 3 {
		t.Errorf("compaction was interrupted only %d times", interrupted)
	}
	t.Logf("%d interrupted passes", interrupted)
	if n := countRows(t, s, "metric_samples"); n != 0 {
		t.Fatalf("%d raw samples left", n)
	}
}

func TestCompactorLock(t *testing.T) {
	b := setupMetrics(t)
	ctx := context.Background()
	conn, err := b.store.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", compactionLockID); err != nil {
		t.Fatal(err)
	}
	stats, err := b.store.Compact(ctx, time.Now())
	if err != nil || !stats.Skipped {
		t.Fatalf("with the lock held elsewhere: %+v %v", stats, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", compactionLockID); err != nil {
		t.Fatal(err)
	}
	if stats, err := b.store.Compact(ctx, time.Now()); err != nil || stats.Skipped {
		t.Fatalf("after release: %+v %v", stats, err)
	}
}

// FuzzDecodeChunkData feeds arbitrary bytes to the chunk decoder: an error
// or samples in time order, never a panic.
func FuzzDecodeChunkData(f *testing.F) {
	valid, _ := encodeChunkData(nil, []metricSample{{t: 1000, f: 1}, {t: 16000, f: 2, st: 500}, {t: 31000, f: math.NaN()},
		{t: 46000, h: &histogram.Histogram{Count: 3, Sum: 1.5, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{3}}}})
	plain, _ := encodeChunkData(nil, []metricSample{{t: 1000, f: 1}, {t: 16000, f: 2}})
	f.Add(valid)
	f.Add(plain)
	f.Add([]byte{segmentXOR, 2, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := decodeChunkData(nil, data, math.MinInt64, math.MaxInt64)
		if err != nil {
			return
		}
		_ = out
	})
}

// TestCompactorRun runs the compaction loop with a clock a day ahead, so
// every window of the fixture is due, until a pass has ended, and checks
// that Run returns once cancelled and that the pass compacted everything.
func TestCompactorRun(t *testing.T) {
	b := setupMetrics(t)
	want, start, end := compactFixture(t, b.store, 5)
	reg := prometheus.NewRegistry()
	clock := func() time.Time { return time.Now().Add(24 * time.Hour) }
	c, err := NewCompactor(b.store, CompactorConfig{Interval: 10 * time.Millisecond}, CompactorOptions{Registerer: reg, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for gathered(t, reg, "vigil_metric_compaction_runs_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no compaction pass ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if n := countRows(t, b.store, "metric_samples"); n != 0 {
		t.Fatalf("%d raw samples left", n)
	}
	if got := selectAll(t, b.store, start, end, labels.MustNewMatcher(labels.MatchEqual, "__name__", "compact_me")); !reflect.DeepEqual(got, want) {
		t.Fatal("compacted read differs")
	}
	if _, err := NewCompactor(b.store, CompactorConfig{}, CompactorOptions{Registerer: reg}); err == nil {
		t.Fatal("a second compactor registered the same metrics")
	}
}

// gathered returns the value of the metric name (with label result=ok for
// the runs counter) that reg holds, or -1 when it holds none.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() != "ok" {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}
