package mapstore_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/mapstore"
)

// cnt is the cumulative counts of calls calls (failed of them) of an
// edge: server latencies in bucket 3, client ones in bucket 5, sums of a
// quarter and a half second per call. It adds up: cnt(a)+cnt(b) =
// cnt(a+b).
func cnt(calls, failed uint64) storage.MapCounts {
	c := nodeCnt(calls, failed)
	c.ClientHist = make([]uint64, len(storage.MapLatencyBounds)+1)
	c.ClientHist[5] = calls
	c.ClientSum = float64(calls) / 2
	return c
}

// nodeCnt is cnt for a node: no client latencies.
func nodeCnt(calls, failed uint64) storage.MapCounts {
	c := storage.MapCounts{Calls: calls, Failed: failed, ServerHist: make([]uint64, len(storage.MapLatencyBounds)+1),
		ServerSum: float64(calls) / 4}
	c.ServerHist[3] = calls
	return c
}

var (
	edgeKey = storage.MapKey{Replica: "r1", Incarnation: 1, Client: "front", Server: "back"}
	nodeKey = storage.MapKey{Replica: "r1", Incarnation: 2, Node: true, Server: "back"}
)

// with returns k with another replica and incarnation.
func with(k storage.MapKey, replica string, inc int64) storage.MapKey {
	k.Replica, k.Incarnation = replica, inc
	return k
}

// write writes rows at minute m, failing the test on error.
func write(t *testing.T, s *mapstore.Store, m time.Time, rows ...storage.MapRollup) {
	t.Helper()
	if err := s.WriteMapRollups(context.Background(), m, rows); err != nil {
		t.Fatalf("write at %s: %v", m, err)
	}
}

// totals reads the totals of a window as a map by "client>server/conn"
// (nodes "node:server").
func totals(t *testing.T, s *mapstore.Store, q storage.MapWindowQuery) map[string]storage.MapCounts {
	t.Helper()
	got, err := s.MapTotals(context.Background(), q)
	if err != nil {
		t.Fatalf("totals %+v: %v", q, err)
	}
	out := map[string]storage.MapCounts{}
	for _, g := range got {
		name := g.Client + ">" + g.Server + "/" + g.ConnectionType
		if g.Node {
			name = "node:" + g.Server
		}
		if _, dup := out[name]; dup {
			t.Errorf("%s listed twice", name)
		}
		out[name] = g.Counts
	}
	return out
}

// base is a whole hour two hours ago: its day has a partition.
func base() time.Time { return time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour) }

func TestMapTotalsWindows(t *testing.T) {
	a, b, pool := setup(t)
	m0 := base()
	m := func(i int) time.Time { return m0.Add(time.Duration(i) * time.Minute) }
	r := func(k storage.MapKey, c storage.MapCounts) storage.MapRollup {
		return storage.MapRollup{Key: k, Counts: c}
	}
	write(t, a, m(0), r(edgeKey, cnt(2, 1)))
	write(t, a, m(1), r(edgeKey, cnt(5, 1)), r(nodeKey, nodeCnt(4, 0)))
	write(t, a, m(2), r(nodeKey, nodeCnt(6, 2)))
	// The same incarnation number at another replica is another key.
	write(t, b, m(2), r(with(edgeKey, "r2", 1), cnt(3, 3)))
	// A later write in a minute replaces the earlier one.
	write(t, a, m(3), r(edgeKey, cnt(8, 1)))
	write(t, a, m(3), r(edgeKey, cnt(9, 2)))
	// The edge again in a new incarnation, counting from zero.
	write(t, a, m(5), r(with(edgeKey, "r1", 3), cnt(1, 0)))
	write(t, a, m(6), r(with(edgeKey, "r1", 3), cnt(4, 1)))

	const edge, node = "front>back/", "node:back"
	look := 10 * time.Minute
	for _, tc := range []struct {
		from, to int
		lookback time.Duration
		want     map[string]storage.MapCounts
	}{
		{-5, 0, look, map[string]storage.MapCounts{}},                                      // before every key
		{-5, 1, look, map[string]storage.MapCounts{edge: cnt(2, 1)}},                       // starts before a key
		{0, 10, look, map[string]storage.MapCounts{edge: cnt(16, 6), node: nodeCnt(6, 2)}}, // all of it
		{1, 3, look, map[string]storage.MapCounts{edge: cnt(6, 3), node: nodeCnt(6, 2)}},   // inside: 5-2 + 3
		{2, 4, look, map[string]storage.MapCounts{edge: cnt(7, 4), node: nodeCnt(2, 2)}},   // 9-5 + 3
		{3, 4, look, map[string]storage.MapCounts{edge: cnt(4, 1)}},
		{4, 6, look, map[string]storage.MapCounts{edge: cnt(1, 0)}}, // the old incarnation has no row in it
		{4, 7, look, map[string]storage.MapCounts{edge: cnt(4, 1)}},
		{7, 9, look, map[string]storage.MapCounts{}}, // after every key
		// The last row before the start is looked for in the lookback only.
		{3, 4, time.Minute, map[string]storage.MapCounts{edge: cnt(9, 2)}},
		{2, 3, 0, map[string]storage.MapCounts{edge: cnt(3, 3), node: nodeCnt(6, 2)}},
	} {
		q := storage.MapWindowQuery{Start: m(tc.from), End: m(tc.to), KeyLookback: tc.lookback}
		got := totals(t, b, q)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("[m%d, m%d) lookback %s:\n got %+v\nwant %+v", tc.from, tc.to, tc.lookback, got, tc.want)
		}
	}

	var first, last time.Time
	if err := pool.QueryRow(context.Background(), `SELECT first_seen, last_seen FROM servicemap_keys
		WHERE replica = 'r1' AND incarnation = 1`).Scan(&first, &last); err != nil {
		t.Fatal(err)
	}
	if !first.Equal(m(0)) || !last.Equal(m(3)) {
		t.Errorf("first_seen %s, last_seen %s; want %s, %s", first, last, m(0), m(3))
	}
}

func TestMapTotalsFilters(t *testing.T) {
	a, _, _ := setup(t)
	m0 := base()
	rows := []storage.MapRollup{
		{Key: storage.MapKey{Replica: "r", Incarnation: 1, Client: "web", Server: "api", ClientEnv: "prod", ClientNs: "shop"}, Counts: cnt(1, 0)},
		{Key: storage.MapKey{Replica: "r", Incarnation: 2, Client: "api", Server: "db", ConnectionType: "database", ServerEnv: "prod", ServerNs: "data"}, Counts: cnt(2, 0)},
		{Key: storage.MapKey{Replica: "r", Incarnation: 3, Client: "web", Server: "api", ClientEnv: "stage", ServerEnv: "stage", ServerNs: "shop"}, Counts: cnt(4, 0)},
		{Key: storage.MapKey{Replica: "r", Incarnation: 4, Node: true, Server: "api", ServerEnv: "prod", ServerNs: "shop"}, Counts: nodeCnt(8, 0)},
		{Key: storage.MapKey{Replica: "r", Incarnation: 5, Node: true, Server: "api", ServerEnv: "stage", ServerNs: "shop"}, Counts: nodeCnt(16, 0)},
		// A node's client side does not count for it.
		{Key: storage.MapKey{Replica: "r", Incarnation: 6, Node: true, Server: "db", ClientEnv: "prod", ClientNs: "shop"}, Counts: nodeCnt(32, 0)},
	}
	write(t, a, m0, rows...)
	for _, tc := range []struct {
		env, ns string
		want    map[string]storage.MapCounts
	}{
		{"", "", map[string]storage.MapCounts{"web>api/": cnt(5, 0), "api>db/database": cnt(2, 0), "node:api": nodeCnt(24, 0), "node:db": nodeCnt(32, 0)}},
		{"prod", "", map[string]storage.MapCounts{"web>api/": cnt(1, 0), "api>db/database": cnt(2, 0), "node:api": nodeCnt(8, 0)}},
		{"stage", "", map[string]storage.MapCounts{"web>api/": cnt(4, 0), "node:api": nodeCnt(16, 0)}},
		{"", "shop", map[string]storage.MapCounts{"web>api/": cnt(5, 0), "node:api": nodeCnt(24, 0)}},
		{"prod", "shop", map[string]storage.MapCounts{"web>api/": cnt(1, 0), "node:api": nodeCnt(8, 0)}},
		{"prod", "data", map[string]storage.MapCounts{"api>db/database": cnt(2, 0)}},
		{"test", "", map[string]storage.MapCounts{}},
	} {
		got := totals(t, a, storage.MapWindowQuery{Start: m0, End: m0.Add(time.Minute), Env: tc.env, Namespace: tc.ns})
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("env %q ns %q:\n got %+v\nwant %+v", tc.env, tc.ns, got, tc.want)
		}
	}
}

func TestMapRollupsInvalid(t *testing.T) {
	a, _, _ := setup(t)
	ctx := context.Background()
	m0 := base()
	if err := a.WriteMapRollups(ctx, m0.Add(time.Second), []storage.MapRollup{{Key: edgeKey}}); err == nil {
		t.Error("a minute with seconds accepted")
	}
	if err := a.WriteMapRollups(ctx, m0, nil); err != nil {
		t.Errorf("empty write: %v", err)
	}
	for _, tc := range []struct {
		q    storage.MapWindowQuery
		want string
	}{
		{storage.MapWindowQuery{Start: m0.Add(time.Second), End: m0.Add(time.Hour)}, "start"},
		{storage.MapWindowQuery{Start: m0, End: m0.Add(time.Hour + time.Millisecond)}, "end"},
		{storage.MapWindowQuery{Start: m0, End: m0}, "start must be before end"},
		{storage.MapWindowQuery{Start: m0, End: m0.Add(-time.Minute)}, "start must be before end"},
		{storage.MapWindowQuery{Start: m0, End: m0.Add(time.Minute), KeyLookback: -time.Minute}, "key lookback"},
	} {
		_, err := a.MapTotals(ctx, tc.q)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %q", tc.q, err, tc.want)
		}
	}
}

// TestMapKeysRetention deletes the keys whose rows retention dropped, a
// bounded number per write, and keeps those with rows left.
func TestMapKeysRetention(t *testing.T) {
	ctx := context.Background()
	_, _, pool := setup(t)
	now := time.Now().UTC()
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 72 * time.Hour, Now: func() time.Time { return now }})
	s := mapstore.NewWithPartitions(pool, parts)
	old := now.Add(-5 * 24 * time.Hour).Truncate(time.Minute) // its partition is made by the write
	kept := now.Add(-2 * 24 * time.Hour).Truncate(time.Minute)
	var rows []storage.MapRollup
	for i := range 600 {
		rows = append(rows, storage.MapRollup{Key: storage.MapKey{Replica: "old", Incarnation: int64(i), Client: "a", Server: fmt.Sprint(i)}, Counts: cnt(1, 0)})
	}
	write(t, s, old, rows...)
	write(t, s, kept, storage.MapRollup{Key: storage.MapKey{Replica: "kept", Incarnation: 1, Client: "a", Server: "b"}, Counts: cnt(1, 0)})
	count := func() (dead, live int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE replica = 'old'), count(*) FILTER (WHERE replica <> 'old')
			FROM servicemap_keys`).Scan(&dead, &live); err != nil {
			t.Fatal(err)
		}
		return dead, live
	}
	m := now.Truncate(time.Minute)
	write(t, s, m, storage.MapRollup{Key: storage.MapKey{Replica: "new", Incarnation: 1}, Counts: cnt(1, 0)})
	if dead, live := count(); dead != 600 || live != 2 {
		t.Fatalf("before retention: %d dead keys, %d live; want 600, 2", dead, live)
	}
	if err := parts.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	write(t, s, m, storage.MapRollup{Key: storage.MapKey{Replica: "new", Incarnation: 1}, Counts: cnt(2, 0)})
	if dead, live := count(); dead != 100 || live != 2 {
		t.Fatalf("after one write: %d dead keys, %d live; want 100, 2", dead, live)
	}
	write(t, s, m, storage.MapRollup{Key: storage.MapKey{Replica: "new", Incarnation: 1}, Counts: cnt(3, 0)})
	if dead, live := count(); dead != 0 || live != 2 {
		t.Fatalf("after two writes: %d dead keys, %d live; want 0, 2", dead, live)
	}
	// A write for a day without a partition fails without Partitions.
	if err := mapstore.New(pool).WriteMapRollups(ctx, old, rows[:1]); err == nil {
		t.Error("a write into a dropped day succeeded")
	}
}

// TestMapRollupsConcurrent writes from two stores on two pools at once,
// each its own replica's keys and both a shared one, and reads the exact
// totals.
func TestMapRollupsConcurrent(t *testing.T) {
	a, b, _ := setup(t)
	m0 := base()
	const minutes, keys = 30, 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*minutes)
	for i, s := range []*mapstore.Store{a, b} {
		replica := fmt.Sprint("r", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for mi := range minutes {
				var rows []storage.MapRollup
				for k := range keys {
					rows = append(rows, storage.MapRollup{
						Key:    storage.MapKey{Replica: replica, Incarnation: int64(k), Client: "c", Server: fmt.Sprint("s", k%4)},
						Counts: cnt(uint64(mi+1), 0)})
				}
				// Both write the shared key with the same values.
				rows = append(rows, storage.MapRollup{Key: storage.MapKey{Replica: "shared", Incarnation: 1, Node: true, Server: "s0"},
					Counts: nodeCnt(uint64(mi+1), 1)})
				if err := s.WriteMapRollups(context.Background(), m0.Add(time.Duration(mi)*time.Minute), rows); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := totals(t, a, storage.MapWindowQuery{Start: m0.Add(10 * time.Minute), End: m0.Add(20 * time.Minute), KeyLookback: 10 * time.Minute})
	// Per key 20 - 10 calls; 2 replicas × 10 keys per server.
	want := map[string]storage.MapCounts{}
	for s := range 4 {
		want[fmt.Sprint("c>s", s, "/")] = cnt(2*10*10, 0)
	}
	want["node:s0"] = nodeCnt(10, 0)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("totals\n got %+v\nwant %+v", got, want)
	}
}
