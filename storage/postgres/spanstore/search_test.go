package spanstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/internal/dict"
)

// fixtureSpan is one span of the search fixture as the reference search
// sees it.
type fixtureSpan struct {
	traceID  pcommon.TraceID
	spanID   pcommon.SpanID
	service  string
	host     string
	name     string
	start    time.Time
	duration time.Duration
	isError  bool
	attrs    map[string]string // string forms of the span's attributes
}

// searchFixture is a generated set of traces written in many batches of
// varied sizes, so that span_tags holds postings, range rows and
// key-level rows: three services on four hosts each; tier=gold on 10% of
// spans, tier=platinum on 0.5%, tier=bronze only outside the searched
// windows, tier=diamond never; a unique request.id per span; an integer
// status code (503 rare); 3% error spans. Tags sit on non-root spans as
// much as on roots, and a third of the traces have children that start
// up to two minutes after their root, across second, minute and window
// boundaries; the spans lie around midnight UTC, so traces straddle the
// daily partitions too.
type searchFixture struct {
	spans []fixtureSpan
	mid   time.Time // the midnight the spans lie around
}

func newSearchFixture(t *testing.T, b bundle) searchFixture {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	mid := time.Now().UTC().Truncate(24 * time.Hour)
	services := []string{"api", "db", "cache"}
	ops := map[string][]string{"api": {"GET /orders", "POST /orders"}, "db": {"SELECT orders"}, "cache": {"GET", "SET"}}
	f := searchFixture{mid: mid}
	var pending []fixtureSpan
	flush := func() {
		if len(pending) == 0 {
			return
		}
		td := ptrace.NewTraces()
		groups := map[[2]string]ptrace.SpanSlice{}
		for _, s := range pending {
			g, ok := groups[[2]string{s.service, s.host}]
			if !ok {
				rs := td.ResourceSpans().AppendEmpty()
				rs.Resource().Attributes().PutStr("service.name", s.service)
				rs.Resource().Attributes().PutStr("host.name", s.host)
				g = rs.ScopeSpans().AppendEmpty().Spans()
				groups[[2]string{s.service, s.host}] = g
			}
			sp := g.AppendEmpty()
			sp.SetTraceID(s.traceID)
			sp.SetSpanID(s.spanID)
			sp.SetName(s.name)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(s.start.Add(s.duration)))
			if s.isError {
				sp.Status().SetCode(ptrace.StatusCodeError)
			}
			for k, v := range s.attrs {
				if k == "http.response.status_code" {
					n, err := strconv.ParseInt(v, 10, 64)
					if err != nil {
						panic(err) // the fixture's own values
					}
					sp.Attributes().PutInt(k, n)
					continue
				}
				sp.Attributes().PutStr(k, v)
			}
		}
		if err := b.store.WriteTraces(ctx, []ptrace.Traces{td}); err != nil {
			t.Fatalf("write: %v", err)
		}
		pending = pending[:0]
	}
	batch := 1 + rng.IntN(300)
	for i := range 1500 {
		var tid pcommon.TraceID
		tid[0], tid[1], tid[15] = byte(i>>8), byte(i), 0xaa
		root := mid.Add(-40*time.Minute + time.Duration(rng.Int64N(int64(80*time.Minute))))
		straddle := i%3 == 0
		n := 1 + rng.IntN(4)
		for k := range n {
			svc := services[0]
			start := root
			if k > 0 {
				svc = services[1+rng.IntN(2)]
				start = root.Add(time.Duration(rng.Int64N(int64(time.Second))))
				if straddle {
					start = root.Add(time.Duration(rng.Int64N(int64(2 * time.Minute))))
				}
			}
			var sid pcommon.SpanID
			sid[0], sid[1], sid[2] = byte(i>>8), byte(i), byte(k+1)
			if rng.IntN(2) == 0 {
				sid[0] |= 0x80 // negative as the int64 search orders by
			}
			s := fixtureSpan{
				traceID: tid, spanID: sid, service: svc,
				host:     fmt.Sprintf("%s-%d", svc, rng.IntN(4)),
				name:     ops[svc][rng.IntN(len(ops[svc]))],
				start:    start,
				duration: time.Duration(1+rng.IntN(1000)) * time.Millisecond,
				isError:  rng.IntN(100) < 3,
				attrs:    map[string]string{"request.id": fmt.Sprintf("req-%d-%d", i, k)},
			}
			switch r := rng.IntN(1000); {
			case r < 5:
				s.attrs["tier"] = "platinum"
			case r < 105:
				s.attrs["tier"] = "gold"
			case r < 600:
				s.attrs["tier"] = "silver"
			}
			code := "200"
			if rng.IntN(200) == 0 {
				code = "503"
			}
			s.attrs["http.response.status_code"] = code
			pending = append(pending, s)
			f.spans = append(f.spans, s)
			if len(pending) >= batch {
				flush()
				batch = 1 + rng.IntN(300)
			}
		}
	}
	// bronze exists, but only a day before the windows searched.
	old := fixtureSpan{traceID: pcommon.TraceID{0xbb, 15: 1}, spanID: pcommon.SpanID{1}, service: "api", host: "api-0",
		name: "GET /orders", start: mid.Add(-25 * time.Hour), duration: time.Millisecond, attrs: map[string]string{"tier": "bronze"}}
	pending = append(pending, old)
	f.spans = append(f.spans, old)
	flush()
	return f
}

// fullScan is the reference search: every span of the fixture checked
// against q, the traces ordered by their newest matching span (start
// time, then span id as a signed integer, descending).
func (f searchFixture) fullScan(q storage.TraceQuery) []pcommon.TraceID {
	type hit struct {
		start time.Time
		span  int64
	}
	best := map[pcommon.TraceID]hit{}
	for _, s := range f.spans {
		if q.Service != "" && s.service != q.Service || q.Operation != "" && s.name != q.Operation ||
			s.start.Before(q.StartMin) || s.start.After(q.StartMax) ||
			q.DurationMin > 0 && s.duration < q.DurationMin || q.DurationMax > 0 && s.duration > q.DurationMax {
			continue
		}
		ok := true
		for k, v := range q.Tags {
			switch k {
			case "error":
				ok = ok && s.isError == (v == "true")
			case "host.name":
				ok = ok && s.host == v
			default:
				got, has := s.attrs[k]
				ok = ok && has && got == v
			}
		}
		if !ok {
			continue
		}
		h := hit{s.start.Truncate(time.Microsecond), dict.SpanIDToInt(s.spanID)}
		if b, seen := best[s.traceID]; !seen || h.start.After(b.start) || h.start.Equal(b.start) && h.span > b.span {
			best[s.traceID] = h
		}
	}
	ids := make([]pcommon.TraceID, 0, len(best))
	for id := range best {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b pcommon.TraceID) int {
		ha, hb := best[a], best[b]
		if c := hb.start.Compare(ha.start); c != 0 {
			return c
		}
		return cmpInt64(hb.span, ha.span)
	})
	if len(ids) > q.Limit {
		ids = ids[:q.Limit]
	}
	return ids
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func traceIDs(tds []ptrace.Traces) []pcommon.TraceID {
	out := make([]pcommon.TraceID, len(tds))
	for i, td := range tds {
		out[i] = td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
	}
	return out
}

// TestFindTracesEqualsFullScan: for every kind of filter, over windows
// that cut traces and partitions, the search returns exactly the traces
// a full scan of the fixture finds, in the same order, and says it is
// complete.
func TestFindTracesEqualsFullScan(t *testing.T) {
	b := setup(t)
	f := newSearchFixture(t, b)
	ctx := context.Background()
	windows := map[string][2]time.Duration{
		"whole":            {-time.Hour, time.Hour},
		"before midnight":  {-30 * time.Minute, -time.Microsecond},
		"cuts traces":      {-17*time.Minute - 333*time.Millisecond, 11*time.Minute + 5*time.Second},
		"a minute":         {3 * time.Minute, 4 * time.Minute},
		"around midnight":  {-90 * time.Second, 90 * time.Second},
		"two days":         {-26 * time.Hour, time.Hour},
		"nothing inside":   {2 * time.Hour, 3 * time.Hour},
		"sub-second slice": {time.Minute + 250*time.Millisecond, time.Minute + 750*time.Millisecond},
	}
	filters := map[string]storage.TraceQuery{
		"service only":            {Service: "api"},
		"any service":             {},
		"tag never seen":          {Service: "db", Tags: map[string]string{"tier": "diamond"}},
		"tag seen only before":    {Service: "api", Tags: map[string]string{"tier": "bronze"}},
		"rare tag":                {Service: "db", Tags: map[string]string{"tier": "platinum"}},
		"rare tag, any service":   {Tags: map[string]string{"tier": "platinum"}},
		"common tag":              {Service: "cache", Tags: map[string]string{"tier": "gold"}},
		"unique value":            {Service: "api", Tags: map[string]string{"request.id": "req-700-0"}},
		"unique value not stored": {Service: "db", Tags: map[string]string{"request.id": "req-700-9"}},
		"rare integer":            {Service: "api", Tags: map[string]string{"http.response.status_code": "503"}},
		"error":                   {Service: "db", Tags: map[string]string{"error": "true"}},
		"not error":               {Service: "cache", Tags: map[string]string{"error": "false"}},
		"resource attribute":      {Service: "cache", Tags: map[string]string{"host.name": "cache-2"}},
		"operation":               {Service: "api", Operation: "POST /orders"},
		"min duration":            {Service: "api", DurationMin: 990 * time.Millisecond},
		"max duration":            {Service: "db", DurationMax: 5 * time.Millisecond},
		"two tags":                {Service: "cache", Tags: map[string]string{"tier": "gold", "host.name": "cache-1"}},
		"tag and error":           {Service: "db", Tags: map[string]string{"tier": "silver", "error": "true"}},
		"tag and operation":       {Service: "api", Operation: "GET /orders", Tags: map[string]string{"tier": "gold"}},
	}
	// The fixture must exercise every kind of span_tags row.
	var postings, ranges, keyRanges int
	err := b.store.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE trace_id IS NOT NULL),
		count(*) FILTER (WHERE trace_id IS NULL AND tag <> $1), count(*) FILTER (WHERE tag = $1) FROM span_tags`,
		int64(dict.KeyHash("request.id"))).Scan(&postings, &ranges, &keyRanges)
	if err != nil || postings == 0 || ranges == 0 || keyRanges == 0 {
		t.Fatalf("span_tags: %d postings, %d range rows, %d key rows, %v; want some of each", postings, ranges, keyRanges, err)
	}
	empty := map[string]bool{"tag never seen": true, "tag seen only before": true, "unique value not stored": true}
	for wname, w := range windows {
		for fname, q := range filters {
			if wname == "whole" {
				q := q
				q.StartMin, q.StartMax, q.Limit = f.mid.Add(w[0]), f.mid.Add(w[1]), 2000
				if n := len(f.fullScan(q)); (n == 0) != empty[fname] {
					t.Fatalf("fixture: %s matches %d traces", fname, n)
				}
			}
			for _, limit := range []int{1, 20, 2000} {
				t.Run(fmt.Sprintf("%s/%s/%d", wname, fname, limit), func(t *testing.T) {
					q := q
					q.StartMin, q.StartMax, q.Limit = f.mid.Add(w[0]), f.mid.Add(w[1]), limit
					want := f.fullScan(q)
					got, err := b.store.FindTraces(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if got.Truncated {
						t.Errorf("reported incomplete (from %s)", got.SearchedFrom)
					}
					if g := traceIDs(got.Traces); !slices.Equal(g, want) {
						t.Errorf("got %d traces %v\nwant %d %v", len(g), short(g), len(want), short(want))
					}
				})
			}
		}
	}
}

func short(ids []pcommon.TraceID) string {
	var s []string
	for _, id := range ids {
		s = append(s, fmt.Sprintf("%02x%02x", id[0], id[1]))
	}
	return strings.Join(s, " ")
}

// TestFindTracesTruncation: a search reports that it stopped when, and
// only when, it reached its bound of examined spans before the end of
// its window; what it returns then are the newest matches of the part it
// examined.
func TestFindTracesTruncation(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	// 100 spans of "svc", one a second going back from now, the 10
	// oldest with the status message "boom": a search by message has
	// every span of the service as candidate (nothing in SQL narrows it).
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	ss := rs.ScopeSpans().AppendEmpty().Spans()
	for i := range 100 {
		sp := ss.AppendEmpty()
		sp.SetTraceID(traceID(byte(i)))
		sp.SetSpanID(spanID(byte(i + 1)))
		sp.SetName("op")
		start := now.Add(-time.Duration(i) * time.Second)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Millisecond)))
		if i >= 90 {
			sp.Status().SetCode(ptrace.StatusCodeError)
			sp.Status().SetMessage("boom")
		}
	}
	if err := b.store.WriteTraces(ctx, []ptrace.Traces{td}); err != nil {
		t.Fatal(err)
	}
	q := storage.TraceQuery{Service: "svc", StartMin: now.Add(-time.Hour), StartMax: now.Add(time.Second)}
	boom := map[string]string{"otel.status_description": "boom"}
	tests := []struct {
		name       string
		max, limit int
		tags       map[string]string
		wantN      int
		wantTrunc  bool
		wantFromAt int // index of the oldest span examined, when truncated
	}{
		{name: "bound above the candidates", max: 101, limit: 20, wantN: 20},
		{name: "limit reached at the bound", max: 20, limit: 20, wantN: 20},
		{name: "bound equal to the candidates", max: 100, limit: 200, wantN: 100},
		{name: "bound hit with candidates left", max: 50, limit: 200, wantN: 50, wantTrunc: true, wantFromAt: 49},
		{name: "bound hit before any match", max: 60, limit: 5, tags: boom, wantTrunc: true, wantFromAt: 59},
		{name: "every candidate within the bound", max: 100, limit: 20, tags: boom, wantN: 10},
		{name: "bound hit after some matches", max: 95, limit: 20, tags: boom, wantN: 5, wantTrunc: true, wantFromAt: 94},
		{name: "no match within the bound", max: 100, limit: 5, tags: map[string]string{"otel.status_description": "nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.store.maxExamined = tt.max
			defer func() { b.store.maxExamined = searchMaxRows }()
			q := q
			q.Limit, q.Tags = tt.limit, tt.tags
			got, err := b.store.FindTraces(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Traces) != tt.wantN || got.Truncated != tt.wantTrunc {
				t.Fatalf("%d traces, truncated %v; want %d, %v", len(got.Traces), got.Truncated, tt.wantN, tt.wantTrunc)
			}
			if tt.wantTrunc {
				if want := now.Add(-time.Duration(tt.wantFromAt) * time.Second); !got.SearchedFrom.Equal(want) {
					t.Errorf("searched from %s, want %s", got.SearchedFrom, want)
				}
			}
			first := 0
			if tt.tags != nil {
				first = 90
			}
			for i, id := range traceIDs(got.Traces) { // newest first
				if id != traceID(byte(first+i)) {
					t.Errorf("trace %d is %x, want %x", i, id, traceID(byte(first+i)))
				}
			}
		})
	}
}

// TestFindTracesSpansWithoutTagRows: spans stored before span_tags
// existed are covered by the rows with tag 0 that migration 0014 writes
// for them, and found as before.
func TestFindTracesSpansWithoutTagRows(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	if err := b.store.WriteTraces(ctx, []ptrace.Traces{richTrace(traceID(1), start)}); err != nil {
		t.Fatal(err)
	}
	q := storage.TraceQuery{Service: "frontend", Tags: map[string]string{"http.request.method": "GET"},
		StartMin: start.Add(-time.Minute), StartMax: start.Add(time.Minute), Limit: 20}
	// As a database migrated from before span_tags holds them: no rows
	// of their own, one row with tag 0 per service and day.
	if _, err := b.store.pool.Exec(ctx, "DELETE FROM span_tags"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.store.FindTraces(ctx, q); err != nil || len(got.Traces) != 0 {
		t.Fatalf("without any span_tags row: %d traces, %v; want none (the rows are what the search trusts)", len(got.Traces), err)
	}
	_, err := b.store.pool.Exec(ctx, `INSERT INTO span_tags (lo, hi, tag, service_id)
		SELECT min(start_time), max(start_time), 0, service_id FROM spans GROUP BY service_id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.store.FindTraces(ctx, q)
	if err != nil || len(got.Traces) != 1 || got.Truncated {
		t.Fatalf("with the rows of migration 0014: %d traces (truncated %v), %v; want 1", len(got.Traces), got.Truncated, err)
	}
}
