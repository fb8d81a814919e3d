package mapstore_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/mapstore"
)

// Shape of BenchmarkMapTotals: the keys of 200 services calling each
// other over 1,000 edges, written every minute for a day by one replica,
// and by a second one for the last 3 hours.
const (
	benchEdges    = 1000
	benchNodes    = 200
	benchMinutes  = 24 * 60
	benchReplica2 = 3 * 60 // minutes
)

// fillSQL writes a row per minute of every key of replica $1 in
// [$2, $3), counts growing by one call per minute.
const fillSQL = `INSERT INTO servicemap_rollups (key_id, minute, calls, failed, server_hist, client_hist, server_sum, client_sum)
	SELECT k.id, m, i, i / 10, array_fill(i, ARRAY[18]),
		CASE WHEN k.node THEN '{}'::bigint[] ELSE array_fill(i, ARRAY[18]) END, i * 0.01, CASE WHEN k.node THEN 0 ELSE i * 0.02 END
	FROM servicemap_keys k,
		LATERAL generate_series($2::timestamptz, $3::timestamptz - interval '1 minute', interval '1 minute') AS m,
		LATERAL (SELECT (extract(epoch FROM m - $2::timestamptz) / 60)::bigint + 1 AS i) AS c
	WHERE k.replica = $1`

// BenchmarkMapTotals measures MapTotals over the last hour and the last
// day of 1,000 edge keys and 200 node keys with a row per minute for 24 h
// (1,728,000 rows) and a second replica's keys for the last 3 h, and
// reports the p50 and p99 of the calls besides ns/op (run with
// -benchtime=50x or more for the percentiles to mean something).
func BenchmarkMapTotals(b *testing.B) {
	ctx := context.Background()
	pool, _ := pgtest.NewPool(b)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		b.Fatal(err)
	}
	if err := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 72 * time.Hour}).Maintain(ctx); err != nil {
		b.Fatal(err)
	}
	end := time.Now().UTC().Truncate(time.Minute)
	start := end.Add(-benchMinutes * time.Minute)
	began := time.Now()
	for _, r := range []struct {
		replica string
		from    time.Time
	}{{"r1", start}, {"r2", end.Add(-benchReplica2 * time.Minute)}} {
		if _, err := pool.Exec(ctx, `INSERT INTO servicemap_keys (replica, incarnation, node, client, server, connection_type,
				server_env, first_seen, last_seen)
			SELECT $1::text, i, i > $2::int, CASE WHEN i <= $2::int THEN 'svc-' || ((i - 1) / 5) ELSE '' END,
				CASE WHEN i <= $2::int THEN 'svc-' || (((i - 1) / 5 + (i - 1) % 5 + 1) % $3::int) ELSE 'svc-' || (i - $2::int - 1) END,
				'', 'prod', $4::timestamptz, $5::timestamptz
			FROM generate_series(1, $2::int + $3::int) AS i`, r.replica, benchEdges, benchNodes, r.from, end.Add(-time.Minute)); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, fillSQL, r.replica, r.from, end); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE servicemap_keys, servicemap_rollups"); err != nil {
		b.Fatal(err)
	}
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM servicemap_rollups").Scan(&rows); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled %d rows in %s", rows, time.Since(began).Round(time.Millisecond))
	store := mapstore.New(pool)

	for _, w := range []struct {
		name   string
		window time.Duration
	}{{"1h", time.Hour}, {"24h", 24 * time.Hour}} {
		q := storage.MapWindowQuery{Start: end.Add(-w.window), End: end, KeyLookback: 12 * time.Minute}
		b.Run(w.name, func(b *testing.B) {
			got, err := store.MapTotals(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			// Every node and edge, the calls of the window, both
			// replicas' (the second began 3 h ago).
			mins := uint64(w.window / time.Minute)
			want := mins + min(mins, benchReplica2)
			if len(got) != benchEdges+benchNodes || got[0].Counts.Calls != want || got[len(got)-1].Counts.Calls != want {
				b.Fatalf("%d totals, calls %d; want %d, %d", len(got), got[0].Counts.Calls, benchEdges+benchNodes, want)
			}
			if testing.Verbose() && b.N == 1 {
				explain(b, pool, q)
			}
			took := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				t := time.Now()
				if _, err := store.MapTotals(ctx, q); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(t))
			}
			b.StopTimer()
			slices.Sort(took)
			pct := func(p float64) float64 {
				return float64(took[min(len(took)-1, int(p*float64(len(took))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}

// explain logs the plan of MapTotals' statement for q.
func explain(b *testing.B, pool *pgxpool.Pool, q storage.MapWindowQuery) {
	b.Helper()
	rows, err := pool.Query(context.Background(), "EXPLAIN (ANALYZE, BUFFERS) "+mapstore.MapTotalsSQL,
		q.Start, q.End, q.Start.Add(-q.KeyLookback), q.Env, q.Namespace)
	if err != nil {
		b.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("plan of %s:\n%s", q.End.Sub(q.Start), strings.Join(lines, "\n"))
}
