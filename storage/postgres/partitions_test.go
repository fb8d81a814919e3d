package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

func TestPartitionRetention(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	p := NewPartitions(pool, PartitionsConfig{Retention: 48 * time.Hour, Now: clock})
	if err := p.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'spans' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			out = append(out, n)
		}
		return out
	}
	want := []string{"spans_p20260308", "spans_p20260309", "spans_p20260310", "spans_p20260311", "spans_p20260312"}
	if got := names(); len(got) != len(want) || got[0] != want[0] || got[4] != want[4] {
		t.Fatalf("partitions = %v, want %v", got, want)
	}
	now = now.Add(72 * time.Hour)
	if err := p.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	got := names()
	if got[0] != "spans_p20260311" || got[len(got)-1] != "spans_p20260315" {
		t.Fatalf("after 3 days partitions = %v", got)
	}
}

// TestLogRetentionPerTable keeps logs for a shorter time than spans.
func TestLogRetentionPerTable(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	p := NewPartitions(pool, PartitionsConfig{Retention: 72 * time.Hour, Now: func() time.Time { return now },
		TableRetention: map[string]time.Duration{"logs": 24 * time.Hour}})
	if err := p.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	parts := func(table string) []string {
		rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1 ORDER BY 1`, table)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			out = append(out, n)
		}
		return out
	}
	// Logs are partitioned by two-hour window, created from the current
	// one to the start of tomorrow (older ones on demand).
	if got := parts("logs"); !slices.Equal(got, []string{"logs_p20260310_12", "logs_p20260310_14", "logs_p20260310_16",
		"logs_p20260310_18", "logs_p20260310_20", "logs_p20260310_22", "logs_p20260311_00"}) {
		t.Fatalf("logs partitions %v", got)
	}
	if got := parts("spans"); got[0] != "spans_p20260307" {
		t.Fatalf("spans partitions %v", got)
	}
	// Compacted log blocks of a past window (created by compaction) follow
	// the retention of logs, not the global one.
	if err := p.Ensure(ctx, []time.Time{now.Add(-20 * time.Hour), now.Add(-30 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := p.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := parts("log_blocks"); !slices.Contains(got, "log_blocks_p20260309_16") || slices.Contains(got, "log_blocks_p20260309_06") {
		t.Fatalf("log_blocks partitions %v", got)
	}
	if got := parts("spans"); got[0] != "spans_p20260307" {
		t.Fatalf("spans partitions after a second pass %v", got)
	}
	now = now.Add(48 * time.Hour)
	if err := p.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := parts("logs"); got[0] != "logs_p20260312_12" {
		t.Fatalf("logs partitions after 2 days %v", got)
	}
	if got := parts("log_blocks"); got[0] != "log_blocks_p20260312_12" {
		t.Fatalf("log_blocks partitions after 2 days %v", got)
	}
	if got := parts("spans"); got[0] != "spans_p20260309" {
		t.Fatalf("spans partitions after 2 days %v", got)
	}
}

// TestPartitionsRun checks that the maintenance loop maintains at once,
// by its clock, and returns nil once cancelled.
func TestPartitionsRun(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	p := NewPartitions(pool, PartitionsConfig{Retention: 24 * time.Hour, Interval: time.Hour, Now: func() time.Time { return now }})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		parts, err := p.List(ctx, pool, "spans")
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) > 0 && parts[0].Name == "spans_p20300531" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spans partitions %v", parts)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
}

// TestDropIfEmptyLocksAsReadersDo: a reader locks a partitioned table
// before its partitions. DropIfEmpty must wait for the reader's lock on
// the parent before it locks the partition, or the reader's next lock
// (on that partition) would deadlock with it.
func TestDropIfEmptyLocksAsReadersDo(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	p := NewPartitions(pool, PartitionsConfig{Retention: 48 * time.Hour, Now: func() time.Time { return now }})
	if err := p.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	const part = "spans_p20260311"

	reader, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Release()
	tx, err := reader.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE ONLY spans IN ACCESS SHARE MODE"); err != nil {
		t.Fatal(err)
	}

	dropper, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer dropper.Release()
	var dropperPID int
	if err := dropper.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&dropperPID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.DropIfEmpty(ctx, dropper.Conn(), part)
		done <- err
	}()
	// Wait until the dropper waits for a lock.
	for deadline := time.Now().Add(30 * time.Second); ; {
		var waiting bool
		if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)", dropperPID).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dropper never waited for the reader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The reader goes on to the partition: it must not deadlock.
	if _, err := tx.Exec(ctx, "SELECT count(*) FROM "+part); err != nil {
		t.Fatalf("reader after the dropper queued: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("drop: %v", err)
	}
}
