package logstore

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/storage/postgres"
)

// TestWriteLogsSortedBatchKeepsEveryRecord writes one batch whose records
// arrive in random order over three services and twelve partition windows,
// which WriteLogs reorders before its COPY, and finds every record stored
// exactly once, with its own service, time and fields.
func TestWriteLogsSortedBatchKeepsEveryRecord(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	rng := rand.New(rand.NewPCG(1, 2))
	type want struct {
		service  string
		time     time.Time
		severity int16
		traceID  pcommon.TraceID
	}
	wants := map[string]want{}
	var batch []plog.Logs
	n := 0
	for range 3 { // three export requests in one batch
		ld := plog.NewLogs()
		for _, svc := range []string{"orders", "cart", "auth"} {
			rl := ld.ResourceLogs().AppendEmpty()
			rl.Resource().Attributes().PutStr("service.name", svc)
			lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
			for range 40 {
				at := now.Add(-time.Duration(rng.Int64N(int64(23 * time.Hour)))).Truncate(time.Microsecond)
				body := fmt.Sprintf("record %d of %s", n, svc)
				n++
				lr := lrs.AppendEmpty()
				lr.SetTimestamp(pcommon.NewTimestampFromTime(at))
				lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(now))
				lr.SetSeverityNumber(plog.SeverityNumber(1 + rng.IntN(24)))
				lr.Body().SetStr(body)
				lr.Attributes().PutStr("body.copy", body)
				var tid pcommon.TraceID
				if rng.IntN(2) == 0 {
					tid = traceID(byte(n))
					lr.SetTraceID(tid)
				}
				wants[body] = want{service: svc, time: at, severity: int16(lr.SeverityNumber()), traceID: tid}
			}
		}
		batch = append(batch, ld)
	}
	windows := map[time.Time]bool{}
	for _, w := range wants {
		windows[postgres.PeriodStart(w.time, postgres.LogWindow)] = true
	}
	if len(windows) < 10 {
		t.Fatalf("the batch spans %d windows, want at least 10", len(windows))
	}
	if err := b.store.WriteLogs(ctx, batch); err != nil {
		t.Fatal(err)
	}
	rows, err := b.store.pool.Query(ctx, `SELECT l.body, s.name, l.time, l.severity_number, coalesce(replace(l.trace_id::text, '-', ''), '')
		FROM logs l JOIN services s ON s.id = l.service_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := map[string]int{}
	for rows.Next() {
		var body, svc string
		var at time.Time
		var sev int16
		var tid string
		if err := rows.Scan(&body, &svc, &at, &sev, &tid); err != nil {
			t.Fatal(err)
		}
		seen[body]++
		w, ok := wants[body]
		if !ok {
			t.Fatalf("stored a record that was not written: %q", body)
		}
		if svc != w.service || !at.Equal(w.time) || sev != w.severity || tid != traceHex(w.traceID) {
			t.Errorf("%q stored as (%s, %v, %d, %q), written as (%s, %v, %d, %q)", body, svc, at, sev, tid, w.service, w.time, w.severity, traceHex(w.traceID))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for body := range wants {
		if seen[body] != 1 {
			t.Errorf("%q stored %d times", body, seen[body])
		}
	}
	if len(seen) != len(wants) {
		t.Errorf("stored %d distinct records, wrote %d", len(seen), len(wants))
	}
}

// traceHex is id in hex, or "" for the empty id (stored as NULL).
func traceHex(id pcommon.TraceID) string {
	if id.IsEmpty() {
		return ""
	}
	return hex.EncodeToString(id[:])
}

// TestSortRows: sortRows orders rows by window, service and time and keeps
// each row whole.
func TestSortRows(t *testing.T) {
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(3, 4))
	var rows []logRow
	for i := range 500 {
		rows = append(rows, logRow{time: base.Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))), id: int64(i),
			service: int32(rng.IntN(4)), body: fmt.Sprint(i)})
	}
	orig := slices.Clone(rows)
	sortRows(rows)
	for i := 1; i < len(rows); i++ {
		a, b := rows[i-1], rows[i]
		wa, wb := postgres.PeriodStart(a.time, postgres.LogWindow), postgres.PeriodStart(b.time, postgres.LogWindow)
		if wa.After(wb) || wa.Equal(wb) && (a.service > b.service || a.service == b.service && a.time.After(b.time)) {
			t.Fatalf("rows %d and %d out of order: %v/%d, %v/%d", i-1, i, a.time, a.service, b.time, b.service)
		}
	}
	seen := make([]int, len(orig))
	for _, r := range rows {
		o := orig[r.id]
		if r.body != o.body || !r.time.Equal(o.time) || r.service != o.service {
			t.Fatalf("row %d changed in the sort: %+v, was %+v", r.id, r, o)
		}
		seen[r.id]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("row %d present %d times after the sort", id, n)
		}
	}
}
