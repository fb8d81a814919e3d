package notify

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/alertstore"
)

// TestStateSyncAppendsOnce checks the replication of silences between two
// replicas through the store: a change reaches the other replica, and the
// other replica's merge (which Alertmanager re-broadcasts, as gossip
// would) is not appended again.
func TestStateSyncAppendsOnce(t *testing.T) {
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	store := alertstore.New(pool)
	logger := slog.New(slog.DiscardHandler)
	replica := func() (*silence.Silences, *stateSync) {
		s, err := silence.New(silence.Options{Retention: time.Hour, Metrics: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		return s, newStateSync(kindSilences, s, store, logger, newMetrics(nil))
	}
	silA, syncA := replica()
	silB, syncB := replica()

	now := time.Now()
	sil := &silencepb.Silence{
		Matchers:  []*silencepb.Matcher{{Name: "job", Pattern: "api", Type: silencepb.Matcher_EQUAL}},
		StartsAt:  timestamppb.New(now.Add(-time.Minute)),
		EndsAt:    timestamppb.New(now.Add(time.Hour)),
		CreatedBy: "test",
		Comment:   "replicated",
	}
	if err := silA.Set(ctx, sil); err != nil {
		t.Fatal(err)
	}
	if err := syncA.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := syncB.sync(ctx); err != nil {
		t.Fatal(err)
	}
	got, _, err := silB.Query(ctx, silence.QIDs(sil.Id))
	if err != nil || len(got) != 1 || got[0].Comment != "replicated" {
		t.Fatalf("replica B has %v (%v)", got, err)
	}
	if len(syncB.pending) != 0 {
		t.Fatalf("replica B queued its merge for appending: %d pending", len(syncB.pending))
	}
	// A merges its own change back: a no-op that appends nothing either.
	if err := syncA.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := syncB.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := syncA.flush(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := store.ReadState(ctx, kindSilences, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Deltas) != 1 {
		t.Fatalf("%d deltas stored, want 1", len(st.Deltas))
	}

	// A change on B (expiring the silence) reaches A.
	if err := silB.Expire(ctx, sil.Id); err != nil {
		t.Fatal(err)
	}
	if err := syncB.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := syncA.sync(ctx); err != nil {
		t.Fatal(err)
	}
	got, _, err = silA.Query(ctx, silence.QIDs(sil.Id), silence.QState(silence.SilenceStateExpired))
	if err != nil || len(got) != 1 {
		t.Fatalf("expiry not replicated to A: %v (%v)", got, err)
	}
}
