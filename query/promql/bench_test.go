package promql_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	prom "github.com/prometheus/prometheus/promql"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
)

// The range query of docs/benchmarks.md, "Metrics": the seed's request
// rate by status code over 1,000 counters, six hours at a 15 s step.
const (
	benchQuery    = `sum by (status_code) (rate(http_requests_total[5m]))`
	benchSeries   = 1000
	benchRange    = 6 * time.Hour
	benchStep     = 15 * time.Second
	benchInterval = 15 * time.Second // between two samples of a series
)

// benchCounter is one http_requests_total series of the benchmark: its
// labels, requests per scrape and scrape offset within the interval.
type benchCounter struct {
	lset   labels.Labels
	mean   float64
	offset int64 // ms
}

// benchCounters returns 1,000 counters: 5 jobs × 10 instances × 2
// methods × 10 status codes, with rates from ~20 req/s (200) down to
// ~0.01 req/s (503), the same every call.
func benchCounters() []benchCounter {
	rng := rand.New(rand.NewPCG(1, 2))
	codes := []struct {
		code  string
		share float64
	}{{"200", 0.9}, {"201", 0.03}, {"204", 0.02}, {"301", 0.005}, {"400", 0.015}, {"401", 0.01},
		{"404", 0.015}, {"429", 0.002}, {"500", 0.004}, {"503", 0.001}}
	var out []benchCounter
	for _, job := range []string{"api-gateway", "user-service", "order-service", "inventory-service", "payment-service"} {
		for inst := range 10 {
			instance := fmt.Sprintf("10.16.0.%d:8080", 10+inst)
			offset := rng.Int64N(benchInterval.Milliseconds())
			rps := 5 + rng.Float64()*45
			for _, m := range []struct {
				method string
				share  float64
			}{{"GET", 0.8}, {"POST", 0.2}} {
				for _, c := range codes {
					out = append(out, benchCounter{
						lset: labels.FromStrings("__name__", "http_requests_total", "job", job, "instance", instance,
							"method", m.method, "status_code", c.code),
						mean:   rps * m.share * c.share * benchInterval.Seconds(),
						offset: offset,
					})
				}
			}
		}
	}
	return out
}

// loadCounters appends every counter from start to end (one sample per
// benchInterval, Poisson increments) into app, committing every ten
// scrape rounds. Two calls write the same samples.
func loadCounters(tb testing.TB, app promstorage.AppendableV2, counters []benchCounter, start, end time.Time) int {
	tb.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	vals := make([]float64, len(counters))
	refs := make([]promstorage.SeriesRef, len(counters))
	n := 0
	a := app.AppenderV2(ctx)
	round := 0
	for t := start; t.Before(end); t = t.Add(benchInterval) {
		for i, c := range counters {
			vals[i] += poisson(c.mean, rng)
			ref, err := a.Append(refs[i], c.lset, 0, t.UnixMilli()+c.offset, vals[i], nil, nil, promstorage.AOptions{})
			if err != nil {
				tb.Fatalf("append: %v", err)
			}
			refs[i] = ref
			n++
		}
		if round++; round%10 == 0 {
			if err := a.Commit(); err != nil {
				tb.Fatalf("commit: %v", err)
			}
			a = app.AppenderV2(ctx)
		}
	}
	if err := a.Commit(); err != nil {
		tb.Fatalf("commit: %v", err)
	}
	return n
}

// poisson draws from a Poisson distribution of the given mean (normal
// approximation above 30).
func poisson(mean float64, rng *rand.Rand) float64 {
	if mean > 30 {
		return max(0, math.Round(mean+math.Sqrt(mean)*rng.NormFloat64()))
	}
	l, k, p := math.Exp(-mean), 0.0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// BenchmarkRangeQuery runs benchQuery as a query_range over 1,000 series ×
// 6 h at a 15 s step against Prometheus's own TSDB (teststorage: the head
// block, in memory) and against Vigil's PostgreSQL metric store holding
// the same samples, raw and then compacted, with the same engine options
// (Vigil's promql.New defaults). Each sub-benchmark reports p50-ms and
// p99-ms of one query (parse, select, evaluate), and the PostgreSQL ones
// their p50 as a multiple of the TSDB's (x-tsdb-p50). Results are checked
// to be equal before timing. Needs PostgreSQL (skipped without it); heavy,
// so run with a fixed count, e.g. -benchtime 20x (make bench-promql).
func BenchmarkRangeQuery(b *testing.B) {
	ctx := context.Background()
	// Six hours that end on a two-hour boundary in the past, so that
	// compaction covers every sample.
	end := time.Now().Truncate(2 * time.Hour).Add(-benchInterval)
	start := end.Add(-benchRange)
	counters := benchCounters()

	tsdb := teststorage.New(b)
	n := loadCounters(b, tsdb, counters, start, end)

	pool, _ := pgtest.NewPool(b)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		b.Fatalf("migrate: %v", err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		b.Fatalf("partitions: %v", err)
	}
	store := metricstore.New(pool, parts, metricstore.Options{})
	loaded := time.Now()
	loadCounters(b, store, counters, start, end)
	b.Logf("%d series, %d samples each store; PostgreSQL load %.1fs", len(counters), n, time.Since(loaded).Seconds())

	want := rangeQuery(b, tsdb, start, end)
	p50 := map[string]time.Duration{}
	run := func(name string, q promstorage.Queryable) {
		b.Run(name, func(b *testing.B) {
			if got := rangeQuery(b, q, start, end); !sameMatrix(got, want) {
				b.Fatalf("%s: result differs from Prometheus's TSDB:\ngot  %.200s\nwant %.200s", name, got, want)
			}
			eng, err := promql.New(q, promql.Config{}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			var lat []time.Duration
			b.ReportAllocs()
			for b.Loop() {
				began := time.Now()
				qry, err := eng.RangeQuery(ctx, benchQuery, start, end, benchStep, promql.QueryOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if res := qry.Exec(ctx); res.Err != nil {
					b.Fatal(res.Err)
				}
				qry.Close()
				lat = append(lat, time.Since(began))
			}
			slices.Sort(lat)
			at := func(p float64) time.Duration { return lat[int(math.Ceil(p*float64(len(lat))))-1] }
			p50[name] = at(0.5)
			b.ReportMetric(float64(at(0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(at(0.99).Microseconds())/1000, "p99-ms")
			if base, ok := p50["prometheus-tsdb"]; ok && name != "prometheus-tsdb" {
				b.ReportMetric(float64(at(0.5))/float64(base), "x-tsdb-p50")
			}
		})
	}
	run("prometheus-tsdb", tsdb)
	run("postgres-raw", store)
	st, err := store.Compact(ctx, time.Now())
	if err != nil {
		b.Fatalf("compact: %v", err)
	}
	var left int64
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM metric_samples").Scan(&left); err != nil {
		b.Fatalf("count raw samples: %v", err)
	}
	b.Logf("compaction: %d windows, %d chunks, %d samples in %.1fs; %d raw samples left",
		st.Windows, st.Series, st.Samples, st.Duration.Seconds(), left)
	run("postgres-compacted", store)
}

// rangeQuery evaluates benchQuery from start to end with Vigil's engine
// over q and returns a copy of its matrix.
func rangeQuery(tb testing.TB, q promstorage.Queryable, start, end time.Time) prom.Matrix {
	tb.Helper()
	eng, err := promql.New(q, promql.Config{}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer eng.Close()
	qry, err := eng.RangeQuery(context.Background(), benchQuery, start, end, benchStep, promql.QueryOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		tb.Fatal(res.Err)
	}
	m, err := res.Matrix()
	if err != nil {
		tb.Fatal(err)
	}
	if len(m) == 0 {
		tb.Fatal("empty result")
	}
	// Close recycles the result's point slices: keep a copy.
	out := make(prom.Matrix, len(m))
	for i, s := range m {
		out[i] = prom.Series{Metric: s.Metric.Copy(), Floats: slices.Clone(s.Floats)}
	}
	return out
}

// sameMatrix reports whether a and b hold the same series and points, the
// values equal to a relative 1e-9 (the order of summation may differ).
func sameMatrix(a, b prom.Matrix) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !labels.Equal(a[i].Metric, b[i].Metric) || len(a[i].Floats) != len(b[i].Floats) {
			return false
		}
		for j, p := range a[i].Floats {
			q := b[i].Floats[j]
			if p.T != q.T || math.Abs(p.F-q.F) > 1e-9*math.Max(math.Abs(p.F), math.Abs(q.F)) {
				return false
			}
		}
	}
	return true
}
