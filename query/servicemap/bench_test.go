package servicemap_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/query/servicemap"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/mapstore"
)

// The map of docs' service-map target: 200 services calling each other
// over 1,000 edges, with a day of per-minute rollups.
const (
	benchServices = 200
	benchEdgesPer = 5 // per client service: 1,000 edges
	benchSpan     = 24 * time.Hour
	// benchSamples is the least number of timed maps the percentiles are
	// taken from.
	benchSamples = 100
)

// BenchmarkMap times the service map and the dependency links over the
// last hour and the last day of 200 services and 1,000 edges, one replica writing a rollup row per
// key and minute for a day (a real database; filling it takes about a
// minute, so it runs only with -bench). Besides ns/op it reports the
// median and the 99th percentile of at least benchSamples runs. The map
// reads the client decision series too (there are none here).
func BenchmarkMap(b *testing.B) {
	st := newStores(b)
	end := time.Now().UTC().Truncate(time.Minute)
	t0 := time.Now()
	rows := writeBenchRollups(b, st.maps, end.Add(-benchSpan), end)
	b.Logf("%d rollup rows written in %s", rows, time.Since(t0).Round(time.Millisecond))
	// The fill updates every key's last_seen 1,440 times in half a
	// minute, faster than autovacuum, which over a real day keeps up
	// with one update per key and minute; vacuum once as it would have.
	if _, err := st.pool.Exec(context.Background(), "VACUUM ANALYZE servicemap_keys, servicemap_rollups"); err != nil {
		b.Fatalf("vacuum: %v", err)
	}
	svc := servicemap.New(servicemap.Config{Timeout: 10 * time.Minute}, servicemap.Options{Rollups: st.maps, Metrics: st.metrics})
	for _, w := range []struct {
		name   string
		window time.Duration
	}{{"1h", time.Hour}, {"24h", 24 * time.Hour}} {
		q := servicemap.MapQuery{Start: end.Add(-w.window), End: end}
		timed(b, "map/"+w.name, func() error {
			m, err := svc.Map(context.Background(), q)
			if err == nil && (len(m.Edges) != benchServices*benchEdgesPer || len(m.Nodes) != benchServices) {
				err = fmt.Errorf("got %d edges and %d nodes", len(m.Edges), len(m.Nodes))
			}
			return err
		})
		timed(b, "dependencies/"+w.name, func() error {
			deps, err := svc.Dependencies(context.Background(), end, w.window)
			if err == nil && len(deps) != benchServices*benchEdgesPer {
				err = fmt.Errorf("got %d links", len(deps))
			}
			return err
		})
	}
}

// timed runs fn as the sub-benchmark name and reports, besides ns/op,
// the median and the 99th percentile of at least benchSamples runs.
func timed(b *testing.B, name string, fn func() error) {
	b.Run(name, func(b *testing.B) {
		b.ReportAllocs()
		var took []time.Duration
		once := func() {
			t := time.Now()
			err := fn()
			took = append(took, time.Since(t))
			if err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			once()
		}
		for len(took) < benchSamples {
			once()
		}
		slices.Sort(took)
		pct := func(p float64) float64 {
			return float64(took[int(p*float64(len(took)-1)+0.5)].Microseconds()) / 1000
		}
		b.ReportMetric(pct(0.5), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
		b.ReportMetric(float64(len(took)), "samples")
	})
}

// writeBenchRollups writes, for every minute of [start, end), the rows of
// the benchmark's edges and service nodes as one replica's deriver does,
// one WriteMapRollups per minute, and returns the number of rows.
func writeBenchRollups(b *testing.B, store *mapstore.Store, start, end time.Time) int {
	b.Helper()
	name := func(i int) string { return fmt.Sprintf("service-%03d", i) }
	type key struct {
		key storage.MapKey
		per storage.MapCounts
	}
	var keys []key
	inc := int64(0)
	for c := range benchServices {
		for k := 1; k <= benchEdgesPer; k++ {
			inc++
			keys = append(keys, key{
				key: storage.MapKey{Replica: "bench", Incarnation: inc, Client: name(c), Server: name((c + k*13) % benchServices),
					ClientEnv: "prod", ServerEnv: "prod", ClientNs: "shop", ServerNs: "shop"},
				per: storage.MapCounts{Calls: uint64(k * 12), Failed: 4,
					ServerHist: addAll(hist(uint64(k*4), le2_5ms), hist(uint64(k*4), le25ms), hist(uint64(k*4), le500ms)),
					ClientHist: addAll(hist(uint64(k*4), le5ms), hist(uint64(k*4), le50ms), hist(uint64(k*4), le1s)),
					ServerSum:  float64(k*4) * 0.222, ClientSum: float64(k*4) * 0.333},
			})
		}
		inc++
		keys = append(keys, key{
			key: storage.MapKey{Replica: "bench", Incarnation: inc, Node: true, Server: name(c), ServerEnv: "prod", ServerNs: "shop"},
			per: storage.MapCounts{Calls: 40, Failed: 4, ServerHist: addAll(hist(14, le2_5ms), hist(13, le25ms), hist(13, le500ms)), ServerSum: 3.5},
		})
	}
	n := 0
	rows := make([]storage.MapRollup, len(keys))
	for i, m := 1, start; m.Before(end); i, m = i+1, m.Add(time.Minute) {
		for j, k := range keys {
			c := storage.MapCounts{Calls: uint64(i) * k.per.Calls, Failed: uint64(i) * k.per.Failed,
				ServerSum: float64(i) * k.per.ServerSum, ClientSum: float64(i) * k.per.ClientSum,
				ServerHist: make([]uint64, len(k.per.ServerHist)), ClientHist: make([]uint64, len(k.per.ClientHist))}
			for x, v := range k.per.ServerHist {
				c.ServerHist[x] = uint64(i) * v
			}
			for x, v := range k.per.ClientHist {
				c.ClientHist[x] = uint64(i) * v
			}
			rows[j] = storage.MapRollup{Key: k.key, Counts: c}
		}
		if err := store.WriteMapRollups(context.Background(), m, rows); err != nil {
			b.Fatalf("write rollups of %s: %v", m, err)
		}
		n += len(rows)
	}
	return n
}
