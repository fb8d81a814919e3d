package mapstore_test

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/mapstore"
)

// setup returns two stores on one migrated database, each with a pool of
// its own (two replicas), and the partitions of servicemap_traces around
// now.
func setup(t *testing.T) (*mapstore.Store, *mapstore.Store, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	pool, url := pgtest.NewPool(t)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if err := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 72 * time.Hour}).Maintain(ctx); err != nil {
		t.Fatalf("partitions: %v", err)
	}
	other, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	return mapstore.New(pool), mapstore.New(other), pool
}

func half(n uint64, client bool, service string) storage.PairHalf {
	h := storage.PairHalf{Client: client, Kind: storage.HalfServer, Service: service,
		Start: time.Date(2026, 3, 10, 12, 0, 0, 123456789, time.UTC), Duration: 1500 * time.Microsecond, Failed: !client}
	binary.BigEndian.PutUint64(h.TraceID[8:], n)
	binary.BigEndian.PutUint64(h.SpanID[:], n^0xff00ff00ff00ff00) // high bit set: negative bigint
	if client {
		h.Kind, h.Peer = storage.HalfClient, "peer"
	}
	return h
}

func TestOfferPairsOnce(t *testing.T) {
	ctx := context.Background()
	a, b, _ := setup(t)
	// Sequential: the second offer completes the pair.
	got, err := a.Offer(ctx, []storage.PairHalf{half(1, true, "front"), half(2, false, "back")})
	if err != nil || len(got) != 0 {
		t.Fatalf("first offer = %v, %v", got, err)
	}
	got, err = b.Offer(ctx, []storage.PairHalf{half(1, false, "back"), half(1, false, "dup"), half(3, true, "x")})
	if err != nil || len(got) != 1 {
		t.Fatalf("second offer = %v, %v", got, err)
	}
	p := got[0]
	if p.Client.Service != "front" || p.Server.Service != "back" || p.Client.Peer != "peer" || !p.Server.Failed ||
		!p.Client.Start.Equal(half(1, true, "").Start) || p.Client.Duration != 1500*time.Microsecond || p.Client.TraceID != half(1, true, "").TraceID {
		t.Errorf("pair = %+v", p)
	}
	// A second copy of a parked side is ignored; both halves in one offer pair at once.
	got, err = a.Offer(ctx, []storage.PairHalf{half(2, false, "again"), half(4, true, "c"), half(4, false, "s")})
	if err != nil || len(got) != 1 || got[0].Client.Service != "c" {
		t.Fatalf("offer = %v, %v", got, err)
	}
	// Left parked: 2 (server) and 3 (client).
	left, err := a.Expire(ctx, time.Now().Add(time.Minute), 10)
	if err != nil || len(left) != 2 {
		t.Fatalf("expire = %v, %v", left, err)
	}

	// Concurrent: the two halves of many keys offered at once by two
	// replicas; every pair comes back exactly once.
	for round := range 20 {
		const keys = 50
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			pairs = map[storage.PairHalf]int{}
			errs  []error
		)
		offer := func(s *mapstore.Store, client bool) {
			defer wg.Done()
			for i := range keys {
				n := uint64(round*1000 + i + 100)
				got, err := s.Offer(ctx, []storage.PairHalf{half(n, client, "svc")})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, p := range got {
					pairs[p.Client]++
				}
				mu.Unlock()
			}
		}
		wg.Add(2)
		go offer(a, true)
		go offer(b, false)
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("round %d: %v", round, errs[0])
		}
		if len(pairs) != keys {
			t.Fatalf("round %d: %d pairs, want %d", round, len(pairs), keys)
		}
		for c, n := range pairs {
			if n != 1 {
				t.Fatalf("round %d: pair %x returned %d times", round, c.TraceID, n)
			}
		}
	}
	if left, err := a.Expire(ctx, time.Now().Add(time.Minute), 1000); err != nil || len(left) != 0 {
		t.Fatalf("left after the rounds: %d, %v", len(left), err)
	}
}

func TestExpireOnce(t *testing.T) {
	ctx := context.Background()
	a, b, _ := setup(t)
	base := time.Now().Add(-time.Hour)
	var halves []storage.PairHalf
	for i := range 500 {
		h := half(uint64(i+1), i%2 == 0, "svc")
		h.ParkedAt = base.Add(time.Duration(i) * time.Millisecond)
		halves = append(halves, h)
	}
	if _, err := a.Offer(ctx, halves); err != nil {
		t.Fatal(err)
	}
	// Only the halves parked before the cutoff.
	got, err := a.Expire(ctx, base.Add(10*time.Millisecond), 100)
	if err != nil || len(got) != 10 {
		t.Fatalf("expire before +10ms = %d, %v", len(got), err)
	}
	if _, err := a.Expire(ctx, time.Now(), 0); err == nil {
		t.Error("limit 0 accepted")
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[[16]byte]int{}
	)
	for _, s := range []*mapstore.Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := s.Expire(ctx, time.Now(), 37)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, h := range got {
					seen[h.TraceID]++
				}
				mu.Unlock()
				if len(got) == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != 490 {
		t.Errorf("expired %d halves, want 490", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("half %x expired %d times", id, n)
		}
	}
}

func TestEdgeTraces(t *testing.T) {
	ctx := context.Background()
	a, b, _ := setup(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	var traces []storage.EdgeTrace
	for i := range 6 {
		tr := storage.EdgeTrace{Client: "front", Server: "back", TraceID: [16]byte{byte(i + 1)},
			Time: now.Add(-time.Duration(i) * time.Minute), Duration: time.Duration(i+1) * time.Millisecond, Failed: i == 2}
		if i == 5 {
			tr.Server, tr.ConnectionType = "orders", "database"
		}
		traces = append(traces, tr)
	}
	if err := a.WriteEdgeTraces(ctx, traces); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteEdgeTraces(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    storage.EdgeTraceQuery
		want []byte // first byte of the trace ids, in order
	}{
		{storage.EdgeTraceQuery{Client: "front", Server: "back", Start: now.Add(-time.Hour), End: now, Limit: 10}, []byte{1, 2, 3, 4, 5}},
		{storage.EdgeTraceQuery{Client: "front", Server: "back", Start: now.Add(-3 * time.Minute), End: now.Add(-time.Minute), Limit: 10}, []byte{2, 3, 4}},
		{storage.EdgeTraceQuery{Client: "front", Server: "back", Start: now.Add(-time.Hour), End: now, Limit: 2}, []byte{1, 2}},
		{storage.EdgeTraceQuery{Server: "orders", Start: now.Add(-time.Hour), End: now, Limit: 10}, []byte{6}},
		{storage.EdgeTraceQuery{Client: "front", Start: now.Add(-time.Hour), End: now, Limit: 10}, []byte{1, 2, 3, 4, 5, 6}},
		{storage.EdgeTraceQuery{Client: "nobody", Start: now.Add(-time.Hour), End: now, Limit: 10}, nil},
	} {
		got, err := b.EdgeTraces(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var ids []byte
		for _, g := range got {
			ids = append(ids, g.TraceID[0])
		}
		if string(ids) != string(tc.want) {
			t.Errorf("%+v: traces %v, want %v", tc.q, ids, tc.want)
		}
	}
	got, err := b.EdgeTraces(ctx, storage.EdgeTraceQuery{Client: "front", Server: "back", Start: now.Add(-3 * time.Minute), End: now.Add(-2 * time.Minute), Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("one trace: %v, %v", got, err)
	}
	if w := traces[2]; got[0] != w {
		t.Errorf("trace %+v, want %+v", got[0], w)
	}
	if _, err := b.EdgeTraces(ctx, storage.EdgeTraceQuery{Limit: 0}); err == nil {
		t.Error("limit 0 accepted")
	}
}

func TestEdgeTracesMissingPartition(t *testing.T) {
	ctx := context.Background()
	_, _, pool := setup(t)
	old := []storage.EdgeTrace{{Client: "a", Server: "b", Time: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)}}
	if err := mapstore.New(pool).WriteEdgeTraces(ctx, old); err == nil {
		t.Fatal("a write without a partition succeeded")
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{})
	if err := mapstore.NewWithPartitions(pool, parts).WriteEdgeTraces(ctx, old); err != nil {
		t.Fatal(err)
	}
	got, err := mapstore.New(pool).EdgeTraces(ctx, storage.EdgeTraceQuery{Client: "a", Start: old[0].Time, End: old[0].Time, Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("read back %v, %v", got, err)
	}
}

// TestCorruptRows deletes rows that do not decode instead of failing every
// later offer or expiry.
func TestCorruptRows(t *testing.T) {
	ctx := context.Background()
	a, _, pool := setup(t)
	h := half(9, false, "back")
	if _, err := pool.Exec(ctx, `INSERT INTO servicegraph_pending (trace_id, span_id, client, parked_at)
		VALUES ($1, $2, '{"k": 5}', now() - interval '1 hour')`, h.TraceID, int64(binary.BigEndian.Uint64(h.SpanID[:]))); err != nil {
		t.Fatal(err)
	}
	got, err := a.Offer(ctx, []storage.PairHalf{h})
	if err != nil || len(got) != 0 {
		t.Fatalf("offer completing a corrupt row = %v, %v", got, err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM servicegraph_pending").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows left, %v", n, err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO servicegraph_pending (trace_id, span_id, server, parked_at)
		VALUES ($1, 1, '"x"', now() - interval '1 hour')`, h.TraceID); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Expire(ctx, time.Now(), 10); err != nil || len(got) != 0 {
		t.Fatalf("expire of a corrupt row = %v, %v", got, err)
	}
}
