package logstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/storage"
)

// TestLogRoundTrip writes records with every field set and reads them back
// unchanged, structured bodies included.
func TestLogRoundTrip(t *testing.T) {
	b := setup(t)
	store := New(b.store.pool, b.parts)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)

	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "orders")
	rl.Resource().Attributes().PutStr("k8s.pod.name", "orders-1")
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("winston")
	sl.Scope().SetVersion("3.11")
	str := sl.LogRecords().AppendEmpty()
	str.SetTimestamp(pcommon.NewTimestampFromTime(now))
	str.SetObservedTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
	str.SetSeverityNumber(plog.SeverityNumberWarn)
	str.SetSeverityText("WARN")
	str.SetTraceID(traceID(7))
	str.SetSpanID(spanID(7))
	str.SetFlags(plog.DefaultLogRecordFlags.WithIsSampled(true))
	str.SetEventName("order.slow")
	str.Body().SetStr("订单 slow")
	str.Attributes().PutStr("http.request.method", "GET")
	str.Attributes().PutInt("attempt", 3)
	structured := sl.LogRecords().AppendEmpty()
	structured.SetObservedTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Second)))
	m := structured.Body().SetEmptyMap()
	m.PutStr("requestId", "r-1")
	m.PutInt("statusCode", 503)
	m.PutEmptySlice("tags").AppendEmpty().SetBool(true)
	empty := sl.LogRecords().AppendEmpty()
	empty.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(-2 * time.Second)))

	if err := store.WriteLogs(ctx, []plog.Logs{ld}); err != nil {
		t.Fatal(err)
	}
	// A fresh store reads through empty caches.
	page, err := New(b.store.pool, b.parts).FindLogs(ctx, explicit(storage.LogQuery{Start: now.Add(-time.Minute), End: now.Add(time.Minute)}))
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 3 || page.Next != nil {
		t.Fatalf("got %d records, next %v", len(page.Records), page.Next)
	}
	got := page.Records[0]
	if got.Service != "orders" || got.Scope.Name() != "winston" {
		t.Fatalf("context: %+v", got)
	}
	v, _ := got.Resource.Attributes().Get("k8s.pod.name")
	if v.Str() != "orders-1" {
		t.Fatalf("resource: %v", got.Resource.Attributes().AsRaw())
	}
	// Timestamps are stored in microseconds: compare the record as a whole.
	if !plogEqual(got.Record, str) {
		t.Fatalf("string record: got %v", got.Record.Attributes().AsRaw())
	}
	rec1 := page.Records[1].Record
	if rec1.Body().Type() != pcommon.ValueTypeMap || fmt.Sprint(rec1.Body().AsRaw()) != fmt.Sprint(m.AsRaw()) {
		t.Fatalf("structured body: %v", rec1.Body().AsRaw())
	}
	if rec1.Timestamp() != 0 && rec1.Timestamp() != rec1.ObservedTimestamp() {
		t.Fatalf("record without timestamp filed at %v", rec1.Timestamp())
	}
	if page.Records[2].Record.Body().Type() != pcommon.ValueTypeEmpty {
		t.Fatalf("empty body: %v", page.Records[2].Record.Body().AsRaw())
	}
	byTrace, err := store.TraceLogs(ctx, traceID(7), 10)
	if err != nil || len(byTrace) != 1 || byTrace[0].Record.Body().Str() != "订单 slow" {
		t.Fatalf("trace logs: %v %v", byTrace, err)
	}
	if none, err := store.TraceLogs(ctx, traceID(8), 10); err != nil || len(none) != 0 {
		t.Fatalf("unknown trace: %v %v", none, err)
	}
}

// TestTraceLogsLimit: the logs of a trace stop at the caller's limit,
// keeping the oldest records.
func TestTraceLogsLimit(t *testing.T) {
	b := setup(t)
	store := New(b.store.pool, b.parts)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "orders")
	for i := range 5 {
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(i-5) * time.Second)))
		lr.SetTraceID(traceID(9))
		lr.Body().SetStr(fmt.Sprint("step ", i))
	}
	if err := store.WriteLogs(ctx, []plog.Logs{ld}); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 3, 5, 100} {
		recs, err := store.TraceLogs(ctx, traceID(9), limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.Record.Body().Str())
		}
		want := []string{"step 0", "step 1", "step 2", "step 3", "step 4"}[:min(limit, 5)]
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: got %q, want %q", limit, got, want)
		}
	}
	for _, limit := range []int{0, -1} {
		if _, err := store.TraceLogs(ctx, traceID(9), limit); err == nil {
			t.Errorf("limit %d accepted", limit)
		}
	}
}

func plogEqual(a, b plog.LogRecord) bool {
	ca, cb := plog.NewLogRecord(), plog.NewLogRecord()
	a.CopyTo(ca)
	b.CopyTo(cb)
	return ca.Timestamp() == cb.Timestamp() && ca.ObservedTimestamp() == cb.ObservedTimestamp() &&
		ca.SeverityNumber() == cb.SeverityNumber() && ca.SeverityText() == cb.SeverityText() &&
		ca.TraceID() == cb.TraceID() && ca.SpanID() == cb.SpanID() && ca.Flags() == cb.Flags() &&
		ca.EventName() == cb.EventName() && ca.Body().Equal(cb.Body()) && ca.Attributes().Equal(cb.Attributes())
}

// TestLogTextSearchAcrossWindows pages through a text search whose matches
// lie in several two-hour partitions, some windows without any: every
// match comes back once, newest first.
func TestLogTextSearchAcrossWindows(t *testing.T) {
	b := setup(t)
	store := New(b.store.pool, b.parts)
	ctx := context.Background()
	end := time.Now().UTC().Truncate(time.Second)
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "orders")
	recs := rl.ScopeLogs().AppendEmpty().LogRecords()
	var want []string
	for i := 0; i < 120; i++ {
		at := end.Add(-time.Duration(i) * 7 * time.Minute) // 14 h back
		body := fmt.Sprintf("routine line %d", i)
		if i%9 == 0 && (i < 20 || i > 60) { // a gap of several windows
			body = fmt.Sprintf("needle hit %d", i)
			want = append(want, body)
		}
		r := recs.AppendEmpty()
		r.SetTimestamp(pcommon.NewTimestampFromTime(at))
		r.Body().SetStr(body)
	}
	if err := store.WriteLogs(ctx, []plog.Logs{ld}); err != nil {
		t.Fatal(err)
	}
	q := storage.LogQuery{Start: end.Add(-24 * time.Hour), End: end, Text: []string{"NEEDLE"}, Limit: 2}
	var got []string
	for pages := 0; ; pages++ {
		page, err := store.FindLogs(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			got = append(got, r.Record.Body().Str())
		}
		if page.Next == nil {
			break
		}
		if pages > 20 {
			t.Fatal("pagination does not end")
		}
		q.After = page.Next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// TestLogAttributesAcrossConventions: an attribute filter by the old or the
// new name of a renamed attribute (storage/semconv) finds records carrying
// the other, with the histogram's Bloom narrowing; the aliases of one side
// of a call only (net.peer.name ↔ server.address) do not apply to records.
func TestLogAttributesAcrossConventions(t *testing.T) {
	b := setup(t)
	store := New(b.store.pool, b.parts)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "orders")
	sl := rl.ScopeLogs().AppendEmpty()
	for i, attrs := range []map[string]any{
		{"http.status_code": int64(500), "net.peer.name": "db"},
		{"http.response.status_code": int64(500), "server.address": "db"},
		{"http.response.status_code": int64(200)},
	} {
		r := sl.LogRecords().AppendEmpty()
		r.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Duration(i) * time.Second)))
		r.Body().SetStr(fmt.Sprintf("record %d", i))
		if err := r.Attributes().FromRaw(attrs); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.WriteLogs(ctx, []plog.Logs{ld}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		attrs map[string]string
		want  []string
	}{
		{map[string]string{"http.status_code": "500"}, []string{"record 0", "record 1"}},
		{map[string]string{"http.response.status_code": "500"}, []string{"record 0", "record 1"}},
		{map[string]string{"http.status_code": "200"}, []string{"record 2"}},
		{map[string]string{"http.status_code": "404"}, nil},
		{map[string]string{"server.address": "db"}, []string{"record 1"}},
	}
	for _, tt := range tests {
		q := explicit(storage.LogQuery{Start: now.Add(-time.Minute), End: now.Add(time.Minute), Attributes: tt.attrs})
		page, err := store.FindLogs(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range page.Records {
			got = append(got, r.Record.Body().Str())
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%v: got %v, want %v", tt.attrs, got, tt.want)
		}
		buckets, _, err := store.LogHistogram(ctx, q, 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, bk := range buckets {
			n += bk.Count
		}
		if n < int64(len(tt.want)) {
			t.Errorf("%v: histogram counts %d, want at least %d", tt.attrs, n, len(tt.want))
		}
	}
}

// TestTokenHashesSQL checks that vigil_token_hashes, which filled
// token_hashes for the records stored before migration 0017, computes
// what Vigil sends for a body's tokens.
func TestTokenHashesSQL(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	var tok tokenizer
	for _, body := range []string{
		"GET /api/users/48213 completed in 37 ms", "用户登录失败：密码错误，请求编号 8f2a3b4c5d6e7f80", "İnventory Straße ZEBRA ünïcödé",
		"", "a b a", strings.Repeat("x", 64) + " " + strings.Repeat("y", 65), "熔断 zebraquokka 한국어 カタカナ",
	} {
		tok.tokens(body)
		want := slices.Clone(tok.hashes())
		var got []int32
		if err := b.store.pool.QueryRow(ctx, "SELECT vigil_token_hashes($1::text[])", tok.list()).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q: PostgreSQL's hashes %v, Vigil's %v", body, got, want)
		}
	}
}

// TestTokenHashCollision searches raw records for a token whose hash is
// that of another token a record holds: the index finds the record by the
// hash, and neither the search nor the histogram may count it.
func TestTokenHashCollision(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	const held = "zebraquokka"
	other := ""
	for i := 0; other == ""; i++ {
		if c := fmt.Sprintf("c%d", i); tokenHash([]byte(c)) == tokenHash([]byte(held)) {
			other = c
		}
	}
	end := time.Now().UTC().Truncate(time.Second)
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "orders")
	r := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	r.SetTimestamp(pcommon.NewTimestampFromTime(end.Add(-time.Minute)))
	r.Body().SetStr("alarm " + held + " raised")
	if err := b.store.WriteLogs(ctx, []plog.Logs{ld}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		word string
		want int
	}{{held, 1}, {other, 0}, {strings.ToUpper(held), 1}} {
		q := storage.LogQuery{Start: end.Add(-time.Hour), End: end, Text: []string{c.word}, Limit: 10}
		page, err := b.store.FindLogs(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) != c.want {
			t.Errorf("q=%s: %d records, want %d", c.word, len(page.Records), c.want)
		}
		buckets, _, err := b.store.LogHistogram(ctx, q, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, bk := range buckets {
			n += bk.Count
		}
		if n != int64(c.want) {
			t.Errorf("q=%s: histogram counts %d, want %d", c.word, n, c.want)
		}
	}
}
