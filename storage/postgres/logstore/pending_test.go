package logstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/storage"
)

// TestCleanPending writes enough records for the text index's pending
// list to hold pages, merges it (CleanPending empties pages; a second
// call finds none) and finds the same records by text before and after.
func TestCleanPending(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	writeOrders(t, b.store, now)
	q := explicit(storage.LogQuery{Text: []string{"c42"}, Start: now.Add(-time.Minute), End: now.Add(time.Second)})
	before, err := b.store.FindLogs(ctx, q)
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	pages, err := b.store.CleanPending(ctx)
	if err != nil {
		t.Fatalf("clean pending: %v", err)
	}
	if pages == 0 {
		t.Fatal("the first merge emptied no pending-list page")
	}
	if again, err := b.store.CleanPending(ctx); err != nil || again != 0 {
		t.Fatalf("second merge: %d pages, %v; want 0, nil", again, err)
	}
	after, err := b.store.FindLogs(ctx, q)
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	if len(before.Records) == 0 || len(after.Records) != len(before.Records) {
		t.Fatalf("records matching c42: %d before the merge, %d after", len(before.Records), len(after.Records))
	}
}

// writeOrders writes 2,000 records of one service, a millisecond apart
// up to now, enough for the text index's pending list to hold pages.
func writeOrders(t *testing.T, s *Store, now time.Time) {
	t.Helper()
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "orders")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	for i := range 2000 {
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Duration(i) * time.Millisecond)))
		lr.Body().SetStr(fmt.Sprintf("order %d of customer c%d shipped to warehouse w%d", i, i%97, i%13))
	}
	if err := s.WriteLogs(context.Background(), []plog.Logs{ld}); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// TestRunPendingCleaner runs the loop until its context ends: it merges
// the pending list on its own (its log says so, and a merge afterwards
// finds nothing left) and returns nil.
func TestRunPendingCleaner(t *testing.T) {
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	writeOrders(t, b.store, time.Now())
	merged := make(chan struct{})
	var once sync.Once
	logger := slog.New(handlerFunc(func(r slog.Record) {
		if r.Message == "merged pending log index entries" {
			once.Do(func() { close(merged) })
		}
	}))
	done := make(chan error, 1)
	go func() { done <- b.store.RunPendingCleaner(ctx, 10*time.Millisecond, logger) }()
	select {
	case <-merged:
	case <-time.After(time.Minute):
		t.Fatal("the loop merged nothing within a minute")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunPendingCleaner: %v", err)
	}
	if n, err := b.store.CleanPending(context.Background()); err != nil || n != 0 {
		t.Fatalf("merge after the loop: %d pages, %v; want 0, nil", n, err)
	}
}

// handlerFunc is a slog handler that passes every record to its function.
type handlerFunc func(slog.Record)

func (h handlerFunc) Enabled(context.Context, slog.Level) bool      { return true }
func (h handlerFunc) Handle(_ context.Context, r slog.Record) error { h(r); return nil }
func (h handlerFunc) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h handlerFunc) WithGroup(string) slog.Handler                 { return h }
