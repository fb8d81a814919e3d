package logstore

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
)

type bundle struct {
	store *Store
	parts *postgres.Partitions
}

// setup returns a log store on a fresh migrated database with its
// partitions.
func setup(t *testing.T) bundle {
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
	return bundle{store: New(pool, parts), parts: parts}
}

func traceID(b byte) pcommon.TraceID {
	return pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, b}
}

func spanID(b byte) pcommon.SpanID { return pcommon.SpanID{0xff, 0, 0, 0, 0, 0, 0, b} }

// explicit gives q the window and limit that query/logs passes when a
// search leaves them out: the hour before now, 100 records.
func explicit(q storage.LogQuery) storage.LogQuery {
	if q.End.IsZero() {
		q.End = time.Now()
	}
	if q.Start.IsZero() {
		q.Start = q.End.Add(-time.Hour)
	}
	if q.Limit == 0 {
		q.Limit = 100
	}
	return q
}
