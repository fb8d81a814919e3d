package metricstore

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage/postgres"
)

type metricBundle struct {
	store *Store
	parts *postgres.Partitions
}

func setupMetrics(t testing.TB) metricBundle {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		t.Fatalf("partitions: %v", err)
	}
	return metricBundle{store: New(pool, parts, Options{}), parts: parts}
}

type readSample struct {
	t  int64
	f  float64
	fh *histogram.FloatHistogram
}

// selectAll reads every series matching ms in [mint, maxt].
func selectAll(t *testing.T, s *Store, mint, maxt int64, ms ...*labels.Matcher) map[string][]readSample {
	t.Helper()
	q, err := s.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), true, nil, ms...)
	out := map[string][]readSample{}
	var prev labels.Labels
	for set.Next() {
		series := set.At()
		if !prev.IsEmpty() && labels.Compare(prev, series.Labels()) >= 0 {
			t.Errorf("series not sorted: %s before %s", prev, series.Labels())
		}
		prev = series.Labels()
		it := series.Iterator(nil)
		var got []readSample
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				got = append(got, readSample{t: ts, f: v})
			default:
				ts, fh := it.AtFloatHistogram(nil)
				got = append(got, readSample{t: ts, fh: fh})
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out[series.Labels().String()] = got
	}
	if err := set.Err(); err != nil {
		t.Fatalf("select: %v", err)
	}
	return out
}

func appendAll(t *testing.T, s *Store, ls labels.Labels, samples ...readSample) {
	t.Helper()
	app := s.AppenderV2(context.Background())
	for _, smp := range samples {
		if _, err := app.Append(0, ls, 0, smp.t, smp.f, nil, smp.fh, promstorage.AOptions{}); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func TestMetricsSpecialValuesRoundTrip(t *testing.T) {
	b := setupMetrics(t)
	now := time.Now().UnixMilli()
	ls := labels.FromStrings("__name__", "special", "job", "x")
	stale := math.Float64frombits(value.StaleNaN)
	want := []float64{math.NaN(), math.Inf(1), math.Inf(-1), stale, math.Copysign(0, -1), math.MaxFloat64, math.SmallestNonzeroFloat64}
	var in []readSample
	for i, v := range want {
		in = append(in, readSample{t: now + int64(i)*1000, f: v})
	}
	appendAll(t, b.store, ls, in...)
	got := selectAll(t, b.store, now-1, now+int64(len(want))*1000, labels.MustNewMatcher(labels.MatchEqual, "__name__", "special"))
	samples := got[ls.String()]
	if len(samples) != len(want) {
		t.Fatalf("got %d samples, want %d", len(samples), len(want))
	}
	for i, s := range samples {
		if math.Float64bits(s.f) != math.Float64bits(want[i]) || s.t != in[i].t {
			t.Errorf("sample %d: got %d %x, want %d %x", i, s.t, math.Float64bits(s.f), in[i].t, math.Float64bits(want[i]))
		}
	}
	if !value.IsStaleNaN(samples[3].f) {
		t.Errorf("staleness marker lost")
	}
}

func TestMetricsLastWriteWins(t *testing.T) {
	b := setupMetrics(t)
	now := time.Now().Truncate(time.Minute).UnixMilli()
	ls := labels.FromStrings("__name__", "dup")
	// Out of order, duplicates within one commit and across commits.
	appendAll(t, b.store, ls, readSample{t: now + 2000, f: 2}, readSample{t: now, f: 0}, readSample{t: now + 1000, f: 1}, readSample{t: now + 1000, f: 11})
	appendAll(t, b.store, ls, readSample{t: now + 2000, f: 22}, readSample{t: now - 1000, f: -1})
	got := selectAll(t, b.store, now-60000, now+60000, labels.MustNewMatcher(labels.MatchEqual, "__name__", "dup"))[ls.String()]
	want := []readSample{{t: now - 1000, f: -1}, {t: now, f: 0}, {t: now + 1000, f: 11}, {t: now + 2000, f: 22}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].t != want[i].t || got[i].f != want[i].f {
			t.Errorf("sample %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestMetricsMatchers(t *testing.T) {
	b := setupMetrics(t)
	now := time.Now().UnixMilli()
	series := []labels.Labels{
		labels.FromStrings("__name__", "http_requests_total", "job", "api", "status_code", "200"),
		labels.FromStrings("__name__", "http_requests_total", "job", "api", "status_code", "500"),
		labels.FromStrings("__name__", "http_requests_total", "job", "web", "status_code", "503"),
		labels.FromStrings("__name__", "http_requests_total", "job", "web"),
		labels.FromStrings("__name__", "up", "job", "api"),
	}
	for _, ls := range series {
		appendAll(t, b.store, ls, readSample{t: now, f: 1})
	}
	name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "http_requests_total")
	for _, tc := range []struct {
		name string
		ms   []*labels.Matcher
		want []int
	}{
		{"equal", []*labels.Matcher{name, labels.MustNewMatcher(labels.MatchEqual, "job", "api")}, []int{0, 1}},
		{"not equal", []*labels.Matcher{name, labels.MustNewMatcher(labels.MatchNotEqual, "job", "api")}, []int{2, 3}},
		{"regex", []*labels.Matcher{name, labels.MustNewMatcher(labels.MatchRegexp, "status_code", "5..")}, []int{1, 2}},
		{"regex anchored", []*labels.Matcher{name, labels.MustNewMatcher(labels.MatchRegexp, "status_code", "0")}, nil},
		{"not regex", []*labels.Matcher{name, labels.MustNewMatcher(labels.MatchNotRegexp, "status_code", "5..")}, []int{0, 3}},
		{"empty equal means absent", []*labels.Matcher{name, labels.MustNewMatcher(labels.MatchEqual, "status_code", "")}, []int{3}},
		{"regex matching empty", []*labels.Matcher{name, labels.MustNewMatcher(labels.MatchRegexp, "status_code", "2..|")}, []int{0, 3}},
		{"set regex", []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", "up|nope")}, []int{4}},
		{"unknown value", []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "nope")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := selectAll(t, b.store, now-1, now+1, tc.ms...)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d series %v, want %v", len(got), got, tc.want)
			}
			for _, i := range tc.want {
				if _, ok := got[series[i].String()]; !ok {
					t.Errorf("missing %s", series[i])
				}
			}
		})
	}
	q, _ := b.store.Querier(now-1, now+1)
	vals, _, err := q.LabelValues(context.Background(), "status_code", nil, labels.MustNewMatcher(labels.MatchEqual, "job", "web"))
	if err != nil || len(vals) != 1 || vals[0] != "503" {
		t.Errorf("label values: %v %v", vals, err)
	}
	names, _, err := q.LabelNames(context.Background(), nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	if err != nil || len(names) != 2 || names[0] != "__name__" || names[1] != "job" {
		t.Errorf("label names: %v %v", names, err)
	}
	// Out of the time range: nothing.
	if got := selectAll(t, b.store, now+1, now+2, name); len(got) != 0 {
		t.Errorf("out of range: %v", got)
	}
}

func TestMetricsHistogramRoundTrip(t *testing.T) {
	b := setupMetrics(t)
	now := time.Now().UnixMilli()
	h := &histogram.Histogram{
		CounterResetHint: histogram.NotCounterReset, Schema: 1, ZeroThreshold: 0.001, ZeroCount: 2, Count: 9, Sum: 18.5,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 1}}, PositiveBuckets: []int64{1, 1, -1},
		NegativeSpans: []histogram.Span{{Offset: -2, Length: 1}}, NegativeBuckets: []int64{3},
	}
	ls := labels.FromStrings("__name__", "hist")
	app := b.store.AppenderV2(context.Background())
	if _, err := app.Append(0, ls, 0, now, 0, h, nil, promstorage.AOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	got := selectAll(t, b.store, now, now, labels.MustNewMatcher(labels.MatchEqual, "__name__", "hist"))[ls.String()]
	if len(got) != 1 || got[0].fh == nil || !got[0].fh.Equals(h.ToFloat(nil)) {
		t.Fatalf("got %v", got)
	}
	enc := appendHistogram(nil, h, nil)
	for i := range enc {
		if _, _, err := decodeHistogram(enc[:i]); !errors.Is(err, errCorruptHistogram) {
			t.Errorf("truncated at %d: err %v", i, err)
		}
	}
}

func TestMetricsInvalidSeries(t *testing.T) {
	b := setupMetrics(t)
	app := b.store.AppenderV2(context.Background())
	now := time.Now().UnixMilli()
	for _, ls := range []labels.Labels{
		labels.EmptyLabels(),
		labels.FromStrings("__name__", "a", "x", "bad\xff"),
		labels.FromStrings("__name__", "a\x00"),
	} {
		if _, err := app.Append(0, ls, 0, now, 1, nil, nil, promstorage.AOptions{}); !errors.Is(err, ErrInvalidSeries) {
			t.Errorf("%q: err %v", ls.String(), err)
		}
	}
	if _, err := app.Append(0, labels.FromStrings("__name__", "a"), 0, math.MaxInt64, 1, nil, nil, promstorage.AOptions{}); !errors.Is(err, promstorage.ErrOutOfBounds) {
		t.Errorf("far future: %v", err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}
