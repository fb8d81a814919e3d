package servicemap_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/mapstore"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// stores are the metric store and the map store of one fresh migrated
// database.
type stores struct {
	metrics *metricstore.Store
	maps    *mapstore.Store
	pool    *pgxpool.Pool
}

// newStores returns the stores of a fresh migrated database, with the
// partitions of the last week.
func newStores(tb testing.TB) stores {
	tb.Helper()
	pool, _ := pgtest.NewPool(tb)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		tb.Fatalf("partitions: %v", err)
	}
	return stores{metrics: metricstore.New(pool, parts, metricstore.Options{}), maps: mapstore.NewWithPartitions(pool, parts), pool: pool}
}

// newStore returns a metric store on a fresh migrated database.
func newStore(tb testing.TB) *metricstore.Store {
	tb.Helper()
	return newStores(tb).metrics
}

// writer appends samples and commits them in batches.
type writer struct {
	tb  testing.TB
	app promstorage.AppendableV2
	a   promstorage.AppenderV2
	n   int
}

func newWriter(tb testing.TB, app promstorage.AppendableV2) *writer {
	return &writer{tb: tb, app: app, a: app.AppenderV2(context.Background())}
}

func (w *writer) add(ls labels.Labels, t time.Time, v float64) {
	w.tb.Helper()
	if _, err := w.a.Append(0, ls, 0, t.UnixMilli(), v, nil, nil, promstorage.AOptions{}); err != nil {
		w.tb.Fatalf("append %s: %v", ls, err)
	}
	if w.n++; w.n%50_000 == 0 {
		w.commit()
	}
}

func (w *writer) commit() {
	w.tb.Helper()
	if err := w.a.Commit(); err != nil {
		w.tb.Fatalf("commit: %v", err)
	}
	w.a = w.app.AppenderV2(context.Background())
}
