package promql_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
)

// hostileQueries are the expressions a hostile client sends to take the
// process down, each with what must come of it: a limit error before
// evaluation ("limit"), a read limit during it ("read"), or either an
// error or a result ("any"). They also seed FuzzQuery.
var hostileQueries = []struct {
	name, q string
	want    string
}{
	{"subquery of 69 TB of steps", `sum_over_time(vector(1)[100000d:1ms])`, "limit"},
	{"subquery over every series", `sum_over_time({__name__=~".+"}[100000d:1ms])`, "limit"},
	{"nested subqueries", `max_over_time(sum_over_time(vector(1)[1000d:1s])[1000d:1s])`, "limit"},
	{"subquery without a step", `max_over_time(vector(1)[100000d:])`, "limit"},
	{"100k nested parentheses", strings.Repeat("(", 100_000) + "1" + strings.Repeat(")", 100_000), "limit"},
	{"deep nesting under the size limit", strings.Repeat("(", 20_000) + "1" + strings.Repeat(")", 20_000), "limit"},
	{"60k additions", strings.Repeat("1+", 60_000) + "1", "limit"},
	{"huge regex", `{__name__=~"` + strings.Repeat("(a|b)*c+d?|", 10_000) + `x"}`, "limit"},
	{"huge regex in label_replace", `label_replace(vector(1), "a", "$1", "b", "` + strings.Repeat("(a|b)*c+d?|", 10_000) + `")`, "limit"},
	{"long alternation of literals", `{instance=~"` + strings.Repeat("pod-1234567890.example:9100|", 3000) + `x"}`, "any"},
	{"count every series over 100000 days", `count(count_over_time({__name__=~".+"}[100000d]))`, "read"},
	{"every sample of every series", `{__name__=~".+"}[100000d]`, "read"},
	{"a fair query", `sum by (status_code) (rate(http_requests_total[5m]))`, "any"},
}

// hostileSetup returns an engine with small read limits over a metric
// store holding 100 counters × 2 h at 15 s (48,000 samples).
func hostileSetup(t testing.TB) (*promql.Engine, time.Time) {
	t.Helper()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		t.Fatalf("partitions: %v", err)
	}
	store := metricstore.New(pool, parts, metricstore.Options{})
	end := time.Now().Add(-time.Minute)
	loadCounters(t, store, benchCounters()[:100], end.Add(-2*time.Hour), end)
	eng, err := promql.New(store, promql.Config{Timeout: 20 * time.Second, MaxSamplesRead: 20_000}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	return eng, end
}

// TestHostileQueries runs each hostile query as an instant query and as a
// day-long range query against a real engine over real PostgreSQL and
// checks that it is refused or answered, never more, while the heap stays
// small: before the subquery limit, the first one ended the process with
// a fatal out-of-memory error.
func TestHostileQueries(t *testing.T) {
	eng, now := hostileSetup(t)
	peak := watchHeap(t)
	for _, tc := range hostileQueries {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, kind := range []string{"instant", "range"} {
				var err error
				switch kind {
				case "instant":
					err = run(ctx, eng, tc.q, now, 0)
				case "range":
					if strings.HasSuffix(tc.q, "[100000d]") { // a range vector has no range query
						continue
					}
					err = run(ctx, eng, tc.q, now, time.Hour)
				}
				var le *promql.LimitError
				switch tc.want {
				case "limit":
					if !errors.As(err, &le) {
						t.Errorf("%s: got %v, want a limit error", kind, err)
					}
				case "read":
					if !errors.Is(err, storage.ErrLimitExceeded) {
						t.Errorf("%s: got %v, want a read limit error", kind, err)
					}
				}
			}
			t.Logf("heap peak so far %d MiB", peak()>>20)
		})
	}
	const bound = 256 << 20
	if p := peak(); p > bound {
		t.Errorf("heap in use peaked at %d MiB, over %d MiB", p>>20, bound>>20)
	}
}

// run evaluates q at ts (step 0) or over the day before ts.
func run(ctx context.Context, eng *promql.Engine, q string, ts time.Time, step time.Duration) error {
	var (
		qry interface {
			Close()
		}
		err error
	)
	if step == 0 {
		iq, ierr := eng.InstantQuery(ctx, q, ts, promql.QueryOptions{})
		if ierr != nil {
			return ierr
		}
		qry, err = iq, iq.Exec(ctx).Err
	} else {
		rq, rerr := eng.RangeQuery(ctx, q, ts.Add(-24*time.Hour), ts, step, promql.QueryOptions{PerStepStats: true})
		if rerr != nil {
			return rerr
		}
		qry, err = rq, rq.Exec(ctx).Err
	}
	qry.Close()
	return err
}

// watchHeap samples the heap in use until the test ends; the returned
// function reports the peak so far.
func watchHeap(t testing.TB) func() uint64 {
	var (
		mu   sync.Mutex
		peak uint64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mu.Lock()
		peak = max(peak, ms.HeapInuse)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	t.Cleanup(func() { close(done); wg.Wait() })
	return func() uint64 {
		sample()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// FuzzQuery evaluates arbitrary expressions, instant and over a day, and
// checks that each is answered or refused: the engine recovers from
// panics in evaluation, so what this catches is a crash no recover
// handles (an allocation the size of the query's steps) or a hang past
// the timeout. The hostile queries seed it.
func FuzzQuery(f *testing.F) {
	for _, tc := range hostileQueries {
		f.Add(tc.q)
	}
	eng, now := hostileSetup(f)
	f.Fuzz(func(t *testing.T, q string) {
		if len(q) > 256<<10 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = run(ctx, eng, q, now, 0)
		_ = run(ctx, eng, q, now, time.Hour)
		if ctx.Err() != nil {
			t.Fatalf("query %.200q outlived its 20 s timeout", q)
		}
	})
}
