package derive_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/ingest/derive"
	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/mapstore"
)

// replicas returns two Derivers on one database, each with its own pool,
// appender and replica id, sharing a clock.
func replicas(t *testing.T) (a, b bundle, store *mapstore.Store) {
	t.Helper()
	ctx := context.Background()
	pool, url := pgtest.NewPool(t)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	// The spans start at t0: the store creates its partition.
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 24 * time.Hour})
	other, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	mk := func(p *pgxpool.Pool, replica string) bundle {
		cfg := derive.DefaultConfig()
		cfg.Replica = replica
		bd := bundle{app: &capture{}, clock: clk}
		d, err := derive.New(cfg, derive.Options{Appendable: bd.app, Pairs: mapstore.NewWithPartitions(p, parts), Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		bd.d = d
		return bd
	}
	return mk(pool, "r1"), mk(other, "r2"), mapstore.New(pool)
}

// TestPairAcrossReplicas sends the client half to one replica and the
// server half to the other: exactly one edge, counted once.
func TestPairAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	a, b, store := replicas(t)
	a.commit(span{service: "front", name: "cli", kind: ptrace.SpanKindClient, trace: 1, id: 1, dur: 3 * time.Millisecond,
		attrs: map[string]string{"peer.service": "back"}})
	b.commit(span{service: "back", name: "srv", kind: ptrace.SpanKindServer, trace: 1, id: 2, parent: 1, err: true, dur: 2 * time.Millisecond})
	// A lone client half at one replica and a lone server half at the other.
	a.commit(span{service: "front", name: "cli", kind: ptrace.SpanKindClient, trace: 2, id: 1, attrs: map[string]string{"peer.service": "ghost"}})
	b.commit(span{service: "back", name: "srv", kind: ptrace.SpanKindServer, trace: 3, id: 2, parent: 1})

	// Before the pairing timeout nothing is offered.
	a.clock.Advance(5 * time.Second)
	for _, r := range []bundle{a, b} {
		r.flush(t)
	}
	a.clock.Advance(10 * time.Second)
	for _, r := range []bundle{a, b, a, b} {
		r.flush(t)
	}
	edge := map[string]string{"client": "front", "server": "back"}
	total := a.app.last(requests, edge) + b.app.last(requests, edge)
	if total != 1 {
		t.Fatalf("requests summed over replicas = %v, want 1 (r1 %v, r2 %v)", total, a.app.last(requests, edge), b.app.last(requests, edge))
	}
	if f := a.app.last(failed, edge) + b.app.last(failed, edge); f != 1 {
		t.Errorf("failed = %v, want 1", f)
	}
	// The lone halves are parked until the shared timeout, then settled once.
	if got := a.app.last(requests, map[string]string{"server": "ghost"}) + b.app.last(requests, map[string]string{"server": "ghost"}); got != 0 {
		t.Errorf("ghost edge before the shared timeout = %v", got)
	}
	a.clock.Advance(31 * time.Second)
	for _, r := range []bundle{a, b, a, b} {
		r.flush(t)
	}
	ghost := map[string]string{"client": "front", "server": "ghost", "connection_type": "virtual_node"}
	if got := a.app.last(requests, ghost) + b.app.last(requests, ghost); got != 1 {
		t.Errorf("ghost edge = %v, want 1", got)
	}
	lone := map[string]string{"server": "back"}
	if got := a.app.last(unpaired, lone) + b.app.last(unpaired, lone); got != 1 {
		t.Errorf("unpaired{server=back} = %v, want 1", got)
	}

	// The map rollups of both replicas (their Pairs store keeps them) sum
	// to the same calls.
	now := a.clock.Now().Truncate(time.Minute)
	totals, err := store.MapTotals(ctx, storage.MapWindowQuery{Start: now.Add(-time.Hour), End: now.Add(time.Hour), KeyLookback: 12 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]uint64{}
	for _, tot := range totals {
		calls[fmt.Sprint(tot.Node, tot.Client, ">", tot.Server, "/", tot.ConnectionType)] = tot.Counts.Calls
		if tot.Client == "front" && tot.Server == "back" && tot.Counts.Failed != 1 {
			t.Errorf("failed calls front>back = %d, want 1", tot.Counts.Failed)
		}
	}
	if want := map[string]uint64{"falsefront>back/": 1, "falsefront>ghost/virtual_node": 1, "true>back/": 2}; !maps.Equal(calls, want) {
		t.Errorf("map totals %v, want %v", calls, want)
	}

	// The example trace of the edge.
	got, err := store.EdgeTraces(ctx, storage.EdgeTraceQuery{Client: "front", Server: "back",
		Start: t0.Add(-time.Hour), End: t0, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].TraceID[0] != 1 || !got[0].Failed || got[0].Duration != 3*time.Millisecond {
		t.Errorf("edge traces %+v", got)
	}
}

// TestEdgeExamplePrefersFailed keeps one example per edge and flush, a
// failed call when there is one.
func TestEdgeExamplePrefersFailed(t *testing.T) {
	ctx := context.Background()
	a, _, store := replicas(t)
	a.commit(
		span{service: "api", kind: ptrace.SpanKindClient, trace: 1, id: 1, attrs: map[string]string{"db.system": "postgresql", "db.name": "orders"}},
		span{service: "api", kind: ptrace.SpanKindClient, trace: 2, id: 1, err: true, attrs: map[string]string{"db.system": "postgresql", "db.name": "orders"}},
		span{service: "api", kind: ptrace.SpanKindClient, trace: 3, id: 1, attrs: map[string]string{"db.system": "postgresql", "db.name": "orders"}},
	)
	a.flush(t)
	a.commit(span{service: "api", kind: ptrace.SpanKindClient, trace: 4, id: 1, attrs: map[string]string{"db.system": "postgresql", "db.name": "orders"}})
	a.flush(t)
	a.flush(t) // no call: no example
	got, err := store.EdgeTraces(ctx, storage.EdgeTraceQuery{Server: "orders", Start: t0.Add(-time.Hour), End: a.clock.Now().Add(time.Hour), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("edge traces %+v, want 2", got)
	}
	ids := map[byte]bool{got[0].TraceID[0]: got[0].Failed, got[1].TraceID[0]: got[1].Failed}
	if failed, ok := ids[2]; !ok || !failed {
		t.Errorf("first flush's example is not the failed call: %+v", got)
	}
	if _, ok := ids[4]; !ok || got[0].ConnectionType != "database" {
		t.Errorf("examples %+v", got)
	}
}
