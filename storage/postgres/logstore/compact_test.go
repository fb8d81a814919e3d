package logstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
)

// compactFixture is a set of records over four windows (three closed, the
// current one) with records on the windows' edges, runs of more than a
// block per service, equal times, traces spanning windows, and bodies and
// attributes for every kind of filter.
type compactFixture struct {
	cur     time.Time // start of the current window
	start   time.Time // before every record
	end     time.Time // after every record
	written int64
}

var fixtureBodies = []string{
	"connection refused while calling inventory at 10.0.0.%d",
	"refused connection from %d, retrying",
	"熔断器打开，服务%d降级",
	"熔%d断",
	"request timeout after %d ms (zebraquokka)",
	`{"level":"info","requestId":"r-%d","statusCode":503}`,
	"user %d logged in",
	// Near misses of a search for zebraquokka, 熔断 or inventory: part of
	// a longer word, split by punctuation, the characters apart.
	"zebraquokkas %d",
	"zebra-quokka.%d ZEBRAQUOKKA%d",
	"断%d熔 INVENTORY",
}

// writeFixture writes n records of each of three services, spread over
// the three windows before cur and the current one, and returns how many
// records it wrote. rng decides the contents; late writes reuse it.
func writeFixture(t *testing.T, store *Store, f *compactFixture, rng *rand.Rand, n int, windows []time.Time) {
	t.Helper()
	ctx := context.Background()
	ld := plog.NewLogs()
	for si, svc := range []string{"orders", "payments", "users"} {
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", svc)
		rl.Resource().Attributes().PutStr("host.name", fmt.Sprintf("host-%d", si))
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName("winston")
		for range n {
			lr := sl.LogRecords().AppendEmpty()
			w := windows[rng.IntN(len(windows))]
			var at time.Time
			switch rng.IntN(20) {
			case 0:
				at = w // first microsecond of a window
			case 1:
				at = w.Add(postgres.LogWindow - time.Microsecond) // last one
			case 2:
				at = w.Add(time.Hour) // shared by many records
			default:
				at = w.Add(time.Duration(rng.Int64N(int64(postgres.LogWindow/time.Microsecond))) * time.Microsecond)
			}
			if rng.IntN(30) == 0 {
				lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(at)) // no timestamp: filed by observed
			} else {
				lr.SetTimestamp(pcommon.NewTimestampFromTime(at))
				lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Duration(rng.IntN(5000)) * time.Millisecond)))
			}
			lr.SetSeverityNumber(plog.SeverityNumber(rng.IntN(4) * 4))
			lr.SetSeverityText([]string{"", "DEBUG", "INFO", "WARN"}[rng.IntN(4)])
			switch b := rng.IntN(len(fixtureBodies) + 1); b {
			case len(fixtureBodies):
				m := lr.Body().SetEmptyMap()
				m.PutStr("requestId", fmt.Sprintf("r-%d", rng.IntN(10)))
				m.PutInt("statusCode", 200)
			default:
				lr.Body().SetStr(fmt.Sprintf(fixtureBodies[b], rng.IntN(10)))
			}
			if k := rng.IntN(4); k > 0 {
				lr.SetTraceID(traceID(byte(k + 10*rng.IntN(3)))) // nine traces across windows
				lr.SetSpanID(spanID(byte(rng.IntN(3))))
			}
			switch rng.IntN(3) {
			case 0:
				lr.Attributes().PutStr("http.request.method", "GET")
			case 1:
				lr.Attributes().PutStr("http.method", "POST") // the older convention's name
			}
			lr.Attributes().PutInt("attempt", int64(rng.IntN(3)))
			f.written++
		}
	}
	if err := store.WriteLogs(ctx, []plog.Logs{ld}); err != nil {
		t.Fatal(err)
	}
}

func newCompactFixture(t *testing.T, store *Store) *compactFixture {
	t.Helper()
	now := time.Now().UTC()
	cur := postgres.PeriodStart(now, postgres.LogWindow)
	f := &compactFixture{cur: cur, start: cur.Add(-4 * postgres.LogWindow), end: cur.Add(postgres.LogWindow)}
	windows := []time.Time{cur.Add(-3 * postgres.LogWindow), cur.Add(-2 * postgres.LogWindow), cur.Add(-postgres.LogWindow), cur}
	// More than a block per service and window.
	writeFixture(t, store, f, rand.New(rand.NewPCG(1, 1)), 4500, windows)
	// A service whose blocks hold no trace id and no token.
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "quiet")
	for i := range 3 {
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(windows[1].Add(time.Duration(i) * time.Minute)))
		lr.Body().SetStr("…")
		f.written++
	}
	// A service whose bodies hold runes that lower-case to ASCII: its
	// blocks are searched record by record, the others' at once.
	rl = ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "edge")
	for i, body := range []string{"İNVENTORY offline", "zebraquo\u212a\u212aa late", "zebraquokka", "inventory"} {
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(windows[2].Add(time.Duration(i) * time.Minute)))
		lr.Body().SetStr(body)
		f.written++
	}
	if err := store.WriteLogs(context.Background(), []plog.Logs{ld}); err != nil {
		t.Fatal(err)
	}
	return f
}

// render writes a record with every field.
func render(r storage.LogRecord) string {
	lr := r.Record
	return fmt.Sprintf("%x %s %v %s|%d %d %d %s %q %v %s %s %d %q %v %d", r.ID, r.Service, r.Resource.Attributes().AsRaw(),
		r.Scope.Name(), lr.Timestamp(), lr.ObservedTimestamp(), lr.SeverityNumber(), lr.SeverityText(),
		lr.Body().AsString(), lr.Attributes().AsRaw(), lr.TraceID(), lr.SpanID(), lr.Flags(), lr.EventName(),
		lr.Body().Type(), lr.DroppedAttributesCount())
}

// answers runs every kind of query over the fixture and renders the
// results, page by page; quick runs a few of them, with larger pages.
func answers(t *testing.T, store *Store, f *compactFixture) []string {
	t.Helper()
	return runAnswers(t, store, f, false)
}

func quickAnswers(t *testing.T, store *Store, f *compactFixture) []string {
	t.Helper()
	return runAnswers(t, store, f, true)
}

func runAnswers(t *testing.T, store *Store, f *compactFixture, quick bool) []string {
	t.Helper()
	ctx := context.Background()
	w1, w2 := f.cur.Add(-postgres.LogWindow), f.cur.Add(-2*postgres.LogWindow)
	queries := map[string]storage.LogQuery{
		"all":            {},
		"service":        {Service: "payments"},
		"unknown":        {Service: "nobody"},
		"quiet":          {Service: "quiet"},
		"severity":       {MinSeverity: 8},
		"word":           {Text: []string{"timeout"}},
		"rare":           {Text: []string{"ZebraQuokka"}},
		"phrase":         {Text: []string{"connection refused"}},
		"reversed":       {Text: []string{"refused connection"}},
		"cjk":            {Text: []string{"熔断"}},
		"cjk char":       {Text: []string{"断"}},
		"part of a word": {Text: []string{"zebra"}},
		"folded":         {Text: []string{"inventory"}},
		"two terms":      {Text: []string{"refused", "retrying"}, Service: "orders"},
		"json field":     {Attributes: map[string]string{"requestId": "r-3"}},
		"attribute":      {Attributes: map[string]string{"http.request.method": "POST"}}, // matches http.method too
		"two attributes": {Attributes: map[string]string{"http.request.method": "GET", "attempt": "2"}, Text: []string{"user"}},
		"resource":       {Attributes: map[string]string{"host.name": "host-1"}, MinSeverity: 4},
		"trace":          {TraceID: traceID(12)},
		"trace and span": {TraceID: traceID(3), SpanID: spanID(1)},
		"span":           {SpanID: spanID(2), Service: "users"},
		"edges":          {Start: w2, End: w1},
		"edges text":     {Start: w2, End: w1, Text: []string{"logged"}},
		"inner":          {Start: w2.Add(30 * time.Minute), End: w1.Add(30 * time.Minute), MinSeverity: 4},
	}
	var out []string
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range queries {
			if !yield(k) {
				return
			}
		}
	}) {
		q := queries[name]
		if quick && !slices.Contains([]string{"all", "phrase", "trace", "attribute", "edges"}, name) {
			continue
		}
		if q.Start.IsZero() {
			q.Start, q.End = f.start, f.end
		}
		q.Limit = 97
		if quick {
			q.Limit = 1000
		}
		pages := 0
		for {
			page, err := store.FindLogs(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, r := range page.Records {
				out = append(out, name+" "+render(r))
			}
			out = append(out, fmt.Sprintf("%s: page %d of %d", name, pages, len(page.Records)))
			if page.Next == nil {
				break
			}
			q.After = page.Next
			if pages++; pages > 1000 {
				t.Fatalf("%s: no end of pages", name)
			}
		}
		q.After = nil
		for _, step := range []time.Duration{7 * time.Minute, postgres.LogWindow} {
			buckets, approx, err := store.LogHistogram(ctx, q, step)
			if err != nil {
				t.Fatalf("%s: histogram: %v", name, err)
			}
			out = append(out, fmt.Sprintf("%s histogram %s %v %v", name, step, approx, buckets))
		}
	}
	for _, id := range []byte{1, 12, 23, 99} {
		for _, limit := range []int{5, 10_000} {
			recs, err := store.TraceLogs(ctx, traceID(id), limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				out = append(out, fmt.Sprintf("trace %d/%d %s", id, limit, render(r)))
			}
			out = append(out, fmt.Sprintf("trace %d/%d: %d", id, limit, len(recs)))
		}
	}
	return out
}

// stored counts the records in logs and in log_blocks.
func storedCounts(t *testing.T, store *Store) (raw, blocks int64) {
	t.Helper()
	ctx := context.Background()
	if err := store.pool.QueryRow(ctx, "SELECT count(*) FROM logs").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if err := store.pool.QueryRow(ctx, "SELECT coalesce(sum(records), 0) FROM log_blocks").Scan(&blocks); err != nil {
		t.Fatal(err)
	}
	return raw, blocks
}

// sameAnswers fails unless got equals want, showing the first difference.
func sameAnswers(t *testing.T, what string, want, got []string) {
	t.Helper()
	if slices.Equal(want, got) {
		return
	}
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			t.Fatalf("%s: answer %d differs:\nwant %s\n got %s", what, i, want[i], got[i])
		}
	}
	t.Fatalf("%s: %d answers, want %d", what, len(got), len(want))
}

// TestCompactSameResults checks that search, histogram, trace and
// attribute queries answer the same before and after compaction, with
// late records in a compacted window, raw and then compacted in turn.
func TestCompactSameResults(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	f := newCompactFixture(t, b.store)
	before := answers(t, b.store, f)
	if len(before) < 1000 {
		t.Fatalf("fixture too small: %d answers", len(before))
	}

	stats, err := b.store.Compact(ctx, f.cur)
	if err != nil {
		t.Fatal(err)
	}
	raw, blocks := storedCounts(t, b.store)
	if stats.Windows != 3 || stats.Dropped != 3 || stats.Records != blocks || raw+blocks != f.written || blocks < f.written/2 {
		t.Fatalf("stats %+v; %d raw and %d compacted records of %d", stats, raw, blocks, f.written)
	}
	if stats.Blocks <= 9 { // more than one block per service and window
		t.Fatalf("%d blocks", stats.Blocks)
	}
	sameAnswers(t, "after compaction", before, answers(t, b.store, f))

	// Late records land in a compacted window, raw again, and are searched
	// with its blocks.
	old := []time.Time{f.cur.Add(-2 * postgres.LogWindow)}
	writeFixture(t, b.store, f, rand.New(rand.NewPCG(2, 2)), 300, old)
	late := answers(t, b.store, f)
	if slices.Equal(late, before) {
		t.Fatal("late records changed no answer")
	}
	stats, err = b.store.Compact(ctx, f.cur)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Windows != 1 || stats.Records != 900 {
		t.Fatalf("late compaction: %+v", stats)
	}
	sameAnswers(t, "after compacting late records", late, answers(t, b.store, f))

	// Nothing left to compact: the current window stays raw.
	stats, err = b.store.Compact(ctx, f.cur)
	if err != nil || stats.Windows != 0 {
		t.Fatalf("third pass: %+v, %v", stats, err)
	}
}

// TestCompactInterrupted interrupts compaction at every step, by an error
// and by cancelling its context, and checks that every record is still
// there exactly once, raw or compacted, with the same answers; and that a
// later pass completes the work.
func TestCompactInterrupted(t *testing.T) {
	b := setup(t)
	f := newCompactFixture(t, b.store)
	errCrash := errors.New("crash")
	b.store.copyBlocks = 2 // several COPYs per window
	steps := []string{stepLock, stepRead, stepWrite, stepTruncate, stepCommit, stepDrop}
	closed := []time.Time{f.cur.Add(-3 * postgres.LogWindow), f.cur.Add(-2 * postgres.LogWindow), f.cur.Add(-postgres.LogWindow)}
	late := rand.New(rand.NewPCG(3, 3))
	for _, mode := range []string{"error", "cancel"} {
		for _, step := range steps {
			for _, nth := range []int{1, 2} { // the first time, or the second (a later window or COPY)
				// Late records in every closed window, compacted or not, so
				// that every pass has work in each of them.
				writeFixture(t, b.store, f, late, 20, closed)
				want := quickAnswers(t, b.store, f)
				ctx, cancel := context.WithCancel(context.Background())
				seen := 0
				b.store.compactHook = func(s string) error {
					if s != step {
						return nil
					}
					if seen++; seen != nth {
						return nil
					}
					if mode == "cancel" {
						cancel()
						return nil
					}
					return errCrash
				}
				_, err := b.store.Compact(ctx, f.cur)
				cancel()
				b.store.compactHook = nil
				if seen < nth {
					t.Fatalf("%s at %s #%d: the step was not reached", mode, step, nth)
				}
				if err == nil {
					t.Fatalf("%s at %s #%d: compaction went on", mode, step, nth)
				}
				raw, blocks := storedCounts(t, b.store)
				if raw+blocks != f.written {
					t.Fatalf("%s at %s #%d: %d raw + %d compacted records, want %d", mode, step, nth, raw, blocks, f.written)
				}
				sameAnswers(t, fmt.Sprintf("%s at %s #%d", mode, step, nth), want, quickAnswers(t, b.store, f))
			}
		}
	}
	want := quickAnswers(t, b.store, f)
	stats, err := b.store.Compact(context.Background(), f.cur)
	if err != nil {
		t.Fatal(err)
	}
	raw, blocks := storedCounts(t, b.store)
	if raw+blocks != f.written {
		t.Fatalf("after a whole pass (%+v): %d raw + %d compacted records, want %d", stats, raw, blocks, f.written)
	}
	var left int64
	if err := b.store.pool.QueryRow(context.Background(), "SELECT count(*) FROM logs WHERE time < $1", f.cur).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d raw records left in closed windows (%v)", left, err)
	}
	sameAnswers(t, "after a whole pass", want, quickAnswers(t, b.store, f))
}

// TestCompactLock skips a pass while another compactor holds the lock.
func TestCompactLock(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	conn, err := b.store.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", compactionLockID); err != nil {
		t.Fatal(err)
	}
	stats, err := b.store.Compact(ctx, time.Now())
	if err != nil || !stats.Skipped {
		t.Fatalf("stats %+v, err %v", stats, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", compactionLockID); err != nil {
		t.Fatal(err)
	}
	if stats, err := b.store.Compact(ctx, time.Now()); err != nil || stats.Skipped {
		t.Fatalf("stats %+v, err %v", stats, err)
	}
}

// TestCompactorRun runs the compaction loop with a clock two windows and
// its delay ahead, so that every window of the fixture but the newest is
// due, until a pass has ended; Run returns once cancelled, the pass
// compacted the due windows and the metrics say so.
func TestCompactorRun(t *testing.T) {
	b := setup(t)
	f := newCompactFixture(t, b.store)
	want := quickAnswers(t, b.store, f)
	reg := prometheus.NewRegistry()
	clock := func() time.Time { return f.cur.Add(time.Hour + time.Minute) } // the window before cur is due, cur is not
	c, err := NewCompactor(b.store, CompactorConfig{Interval: 10 * time.Millisecond}, CompactorOptions{Registerer: reg, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for gathered(t, reg, "vigil_log_compaction_runs_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no compaction pass ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
	raw, blocks := storedCounts(t, b.store)
	var current int64
	if err := b.store.pool.QueryRow(context.Background(), "SELECT count(*) FROM logs WHERE time >= $1", f.cur).Scan(&current); err != nil {
		t.Fatal(err)
	}
	if raw != current || raw+blocks != f.written || gathered(t, reg, "vigil_log_compaction_records_total") != float64(blocks) {
		t.Fatalf("%d raw records (%d in the current window), %d compacted, metric %v", raw, current, blocks, gathered(t, reg, "vigil_log_compaction_records_total"))
	}
	if lag := gathered(t, reg, "vigil_log_compaction_lag_seconds"); lag != 0 {
		t.Fatalf("lag %v after compacting every due window", lag)
	}
	sameAnswers(t, "compacted by the loop", want, quickAnswers(t, b.store, f))
	if _, err := NewCompactor(b.store, CompactorConfig{}, CompactorOptions{Registerer: reg}); err == nil {
		t.Fatal("a second compactor registered the same metrics")
	}
}

// TestCompactLateDuringRead writes late records into a window while its
// compaction has read it but not yet locked it: they are compacted with
// the others, none lost, none twice.
func TestCompactLateDuringRead(t *testing.T) {
	b := setup(t)
	f := newCompactFixture(t, b.store)
	late := rand.New(rand.NewPCG(4, 4))
	windows := []time.Time{f.cur.Add(-3 * postgres.LogWindow)} // the first compacted
	wrote := false
	b.store.compactHook = func(step string) error {
		if step == stepLock && !wrote {
			wrote = true
			writeFixture(t, b.store, f, late, 50, windows) // on another connection: no lock is held yet
		}
		return nil
	}
	stats, err := b.store.Compact(context.Background(), f.cur)
	b.store.compactHook = nil
	if err != nil {
		t.Fatal(err)
	}
	raw, blocks := storedCounts(t, b.store)
	if stats.Rewrites != 1 || stats.Windows != 3 || raw+blocks != f.written || stats.Records != blocks {
		t.Fatalf("stats %+v: %d raw + %d compacted records, want %d", stats, raw, blocks, f.written)
	}
	var left int64
	if err := b.store.pool.QueryRow(context.Background(), "SELECT count(*) FROM logs WHERE time < $1", f.cur).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d raw records left in closed windows (%v)", left, err)
	}
}

// gathered returns the value of the metric name (with label result=ok for
// the runs counter) that reg holds, or -1 when it holds none.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() != "ok" {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}
