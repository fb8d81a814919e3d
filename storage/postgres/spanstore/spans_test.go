package spanstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/internal/dict"
)

type bundle struct {
	store *Store
	parts *postgres.Partitions
}

func setup(t *testing.T) bundle {
	t.Helper()
	return newBundle(t)
}

// setupBench is setup for benchmarks.
func setupBench(b *testing.B) *Store { return newBundle(b).store }

func newBundle(t testing.TB) bundle {
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

// richTrace builds a two-service trace exercising every stored field.
func richTrace(tid pcommon.TraceID, start time.Time) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "frontend")
	rs.Resource().Attributes().PutStr("host.name", "web-1")
	rs.Resource().Attributes().PutInt("process.pid", 42)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("io.vigil.test")
	ss.Scope().SetVersion("1.2.3")
	ss.Scope().Attributes().PutStr("scope.attr", "x")

	root := ss.Spans().AppendEmpty()
	root.SetTraceID(tid)
	root.SetSpanID(spanID(1))
	root.SetName("GET /users/:id")
	root.SetKind(ptrace.SpanKindServer)
	root.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	root.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(120 * time.Millisecond)))
	root.SetFlags(1)
	root.TraceState().FromRaw("vendor=abc")
	root.Status().SetCode(ptrace.StatusCodeError)
	root.Status().SetMessage("boom")
	a := root.Attributes()
	a.PutStr("http.request.method", "GET")
	a.PutInt("http.response.status_code", 500)
	a.PutDouble("ratio", 0.25)
	a.PutBool("cache.hit", false)
	a.PutEmptyBytes("raw").FromRaw([]byte{0, 1, 2})
	sl := a.PutEmptySlice("list")
	sl.AppendEmpty().SetStr("a")
	sl.AppendEmpty().SetInt(7)
	m := a.PutEmptyMap("nested")
	m.PutStr("k", "v")
	m.PutEmptyMap("deeper").PutBool("b", true)
	a.PutStr("unicode", "用户服务 ✓")
	a.PutStr("nul", "a\x00b")
	root.SetDroppedAttributesCount(3)
	ev := root.Events().AppendEmpty()
	ev.SetName("exception")
	ev.SetTimestamp(pcommon.NewTimestampFromTime(start.Add(5 * time.Millisecond)))
	ev.Attributes().PutStr("exception.message", "db down")
	ev.SetDroppedAttributesCount(1)
	root.SetDroppedEventsCount(2)
	l := root.Links().AppendEmpty()
	l.SetTraceID(traceID(200))
	l.SetSpanID(spanID(9))
	l.TraceState().FromRaw("x=y")
	l.SetFlags(1)
	l.Attributes().PutStr("link.reason", "batch")
	root.SetDroppedLinksCount(4)

	rs2 := td.ResourceSpans().AppendEmpty()
	rs2.Resource().Attributes().PutStr("service.name", "user-service")
	ss2 := rs2.ScopeSpans().AppendEmpty()
	child := ss2.Spans().AppendEmpty()
	child.SetTraceID(tid)
	child.SetSpanID(spanID(2))
	child.SetParentSpanID(spanID(1))
	child.SetName("SELECT users")
	child.SetKind(ptrace.SpanKindClient)
	child.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(10 * time.Millisecond)))
	child.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(60 * time.Millisecond)))
	child.Attributes().PutStr("db.system", "postgresql")
	return td
}

// flatten returns one single-span JSON document per span, sorted, so two
// traces with the same spans compare equal whatever their grouping.
func flatten(t *testing.T, td ptrace.Traces) []string {
	t.Helper()
	var out []string
	m := &ptrace.JSONMarshaler{}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				one := ptrace.NewTraces()
				rs := one.ResourceSpans().AppendEmpty()
				rss.At(i).Resource().CopyTo(rs.Resource())
				ss := rs.ScopeSpans().AppendEmpty()
				sss.At(j).Scope().CopyTo(ss.Scope())
				spans.At(k).CopyTo(ss.Spans().AppendEmpty())
				b, err := m.MarshalTraces(one)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, string(b))
			}
		}
	}
	sort.Strings(out)
	return out
}

func equalTraces(t *testing.T, want, got ptrace.Traces) {
	t.Helper()
	w, g := flatten(t, want), flatten(t, got)
	if len(w) != len(g) {
		t.Fatalf("got %d spans, want %d", len(g), len(w))
	}
	for i := range w {
		if w[i] != g[i] {
			t.Errorf("span %d differs:\n got %s\nwant %s", i, g[i], w[i])
		}
	}
}

func TestSpanRoundTrip(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	start := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	td := richTrace(traceID(1), start)
	if err := b.store.WriteTraces(ctx, []ptrace.Traces{td}); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := b.store.Trace(ctx, traceID(1))
	if err != nil {
		t.Fatalf("trace: %v", err)
	}
	equalTraces(t, td, got)

	// A fresh store (cold caches) reads the same.
	fresh := New(b.store.pool, b.parts)
	got, err = fresh.Trace(ctx, traceID(1))
	if err != nil {
		t.Fatalf("trace (cold): %v", err)
	}
	equalTraces(t, td, got)

	if _, err := b.store.Trace(ctx, traceID(99)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing trace: got %v, want ErrNotFound", err)
	}
}

func TestServicesAndOperations(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	if err := b.store.WriteTraces(ctx, []ptrace.Traces{richTrace(traceID(1), time.Now())}); err != nil {
		t.Fatal(err)
	}
	svcs, err := b.store.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2 || svcs[0] != "frontend" || svcs[1] != "user-service" {
		t.Fatalf("services = %v", svcs)
	}
	tests := []struct {
		q    storage.OperationQuery
		want []storage.Operation
	}{
		{storage.OperationQuery{Service: "frontend"}, []storage.Operation{{Name: "GET /users/:id", SpanKind: "server"}}},
		{storage.OperationQuery{Service: "user-service", SpanKind: "client"}, []storage.Operation{{Name: "SELECT users", SpanKind: "client"}}},
		{storage.OperationQuery{Service: "user-service", SpanKind: "server"}, nil},
		{storage.OperationQuery{Service: "nope"}, nil},
	}
	for _, tt := range tests {
		got, err := b.store.Operations(ctx, tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%+v: got %v want %v", tt.q, got, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%+v: got %v want %v", tt.q, got, tt.want)
			}
		}
	}
}

func TestFindTraces(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Microsecond)
	var batch []ptrace.Traces
	for i := 0; i < 30; i++ {
		td := richTrace(traceID(byte(i)), now.Add(-time.Duration(i)*time.Minute))
		root := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
		if i%3 != 0 {
			root.Status().SetCode(ptrace.StatusCodeOk)
			root.Attributes().PutInt("http.response.status_code", 200)
		}
		// durations 120ms + i ms
		root.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Duration(i)*time.Minute + time.Duration(120+i)*time.Millisecond)))
		batch = append(batch, td)
	}
	if err := b.store.WriteTraces(ctx, batch); err != nil {
		t.Fatal(err)
	}
	ids := func(tds []ptrace.Traces) []byte {
		var out []byte
		for _, td := range tds {
			out = append(out, td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()[15])
		}
		return out
	}
	tests := []struct {
		name string
		q    storage.TraceQuery
		want []byte
	}{
		{"service limit newest first", storage.TraceQuery{Service: "frontend", Limit: 3}, []byte{0, 1, 2}},
		{"tag int", storage.TraceQuery{Service: "frontend", Tags: map[string]string{"http.response.status_code": "500"}, Limit: 4}, []byte{0, 3, 6, 9}},
		{"error tag", storage.TraceQuery{Service: "frontend", Tags: map[string]string{"error": "true"}, Limit: 2}, []byte{0, 3}},
		{"resource tag", storage.TraceQuery{Service: "frontend", Tags: map[string]string{"host.name": "web-1", "http.response.status_code": "500"}, Limit: 1}, []byte{0}},
		{"no match", storage.TraceQuery{Service: "frontend", Tags: map[string]string{"host.name": "web-2"}}, nil},
		{"operation", storage.TraceQuery{Service: "user-service", Operation: "SELECT users", Limit: 2}, []byte{0, 1}},
		{"unknown operation", storage.TraceQuery{Service: "user-service", Operation: "GET /users/:id"}, nil},
		{"duration", storage.TraceQuery{Service: "frontend", DurationMin: 145 * time.Millisecond, DurationMax: 147 * time.Millisecond}, []byte{25, 26, 27}},
		{"time window", storage.TraceQuery{Service: "frontend", StartMin: now.Add(-5*time.Minute - time.Second), StartMax: now.Add(-3 * time.Minute)}, []byte{3, 4, 5}},
		{"unknown service", storage.TraceQuery{Service: "nope"}, nil},
		{"span.kind", storage.TraceQuery{Service: "user-service", Tags: map[string]string{"span.kind": "client"}, Limit: 2}, []byte{0, 1}},
		{"span.kind mismatch", storage.TraceQuery{Service: "user-service", Tags: map[string]string{"span.kind": "server"}}, nil},
		{"status description", storage.TraceQuery{Service: "frontend", Tags: map[string]string{"otel.status_description": "boom"}, Limit: 2}, []byte{0, 1}},
		{"status code", storage.TraceQuery{Service: "frontend", Tags: map[string]string{"otel.status_code": "ERROR"}, Limit: 2}, []byte{0, 3}},
		{"scope name", storage.TraceQuery{Service: "frontend", Tags: map[string]string{"otel.scope.name": "io.vigil.test"}, Limit: 1}, []byte{0}},
		{"any service", storage.TraceQuery{Tags: map[string]string{"db.system": "postgresql"}, Limit: 2}, []byte{0, 1}},
		{"double and bool", storage.TraceQuery{Service: "frontend", Tags: map[string]string{"ratio": "0.25", "cache.hit": "false"}, Limit: 1}, []byte{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found, err := b.store.FindTraces(ctx, explicit(tt.q))
			if err != nil {
				t.Fatal(err)
			}
			got := found.Traces
			if string(ids(got)) != string(tt.want) {
				t.Fatalf("got traces %v, want %v", ids(got), tt.want)
			}
			for _, td := range got {
				if td.SpanCount() != 2 {
					t.Fatalf("trace returned with %d spans, want whole trace (2)", td.SpanCount())
				}
			}
		})
	}
}

func TestValueInterningStopsAtHighCardinality(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	now := time.Now()
	n := dict.MaxInternPerKey + 300
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "ids")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for i := 0; i < n; i++ {
		sp := spans.AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{9, byte(i >> 8), byte(i), 1})
		sp.SetSpanID(pcommon.SpanID{9, byte(i >> 8), byte(i), 1})
		sp.SetName("op")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
		sp.Attributes().PutStr("request.id", fmt.Sprintf("req-%d", i))
		sp.Attributes().PutStr("http.method", "GET")
	}
	// Two batches, so the second sees the first's count.
	half := ptrace.NewTraces()
	td.CopyTo(half)
	half.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(sp ptrace.Span) bool { return sp.SpanID()[2] >= 128 })
	if err := b.store.WriteTraces(ctx, []ptrace.Traces{half}); err != nil {
		t.Fatal(err)
	}
	if err := b.store.WriteTraces(ctx, []ptrace.Traces{td}); err != nil {
		t.Fatal(err)
	}
	var interned, methods int
	err := b.store.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE k.key = 'request.id'),
		count(*) FILTER (WHERE k.key = 'http.method')
		FROM attribute_values v JOIN attribute_keys k ON k.id = v.key_id`).Scan(&interned, &methods)
	if err != nil {
		t.Fatal(err)
	}
	if interned != dict.MaxInternPerKey || methods != 1 {
		t.Fatalf("interned %d request ids (want %d) and %d methods (want 1)", interned, dict.MaxInternPerKey, methods)
	}
	fresh := New(b.store.pool, b.parts)
	for _, i := range []int{0, dict.MaxInternPerKey - 1, n - 1} {
		got, err := fresh.Trace(ctx, pcommon.TraceID{9, byte(i >> 8), byte(i), 1})
		if err != nil {
			t.Fatal(err)
		}
		sp := got.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
		if v, _ := sp.Attributes().Get("request.id"); v.Str() != fmt.Sprintf("req-%d", i) {
			t.Fatalf("span %d: request.id = %q", i, v.Str())
		}
	}
}

// TestWriteCreatesMissingPartition writes a span into a day beyond the
// partitions created ahead: the writer creates the day and retries.
func TestWriteCreatesMissingPartition(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	start := time.Now().AddDate(0, 0, 5).Truncate(time.Microsecond)
	td := richTrace(traceID(42), start)
	if err := b.store.WriteTraces(ctx, []ptrace.Traces{td}); err != nil {
		t.Fatalf("write into a future day: %v", err)
	}
	got, err := b.store.Trace(ctx, traceID(42))
	if err != nil {
		t.Fatal(err)
	}
	equalTraces(t, td, got)
}

// explicit gives q the window and limit that query/traces passes when a
// search leaves them out: the hour before now, 20 traces.
func explicit(q storage.TraceQuery) storage.TraceQuery {
	if q.StartMax.IsZero() {
		q.StartMax = time.Now()
	}
	if q.StartMin.IsZero() {
		q.StartMin = q.StartMax.Add(-time.Hour)
	}
	if q.Limit == 0 {
		q.Limit = 20
	}
	return q
}

// TestFindTracesAcrossConventions searches by the old and the new name of
// renamed attributes (storage/semconv): traces 1 and 2 carry the current
// names (as OTLP senders write them), traces 3 and 4 the legacy ones (as a
// Jaeger client writes them), each with a server span and a client span.
// Trace 3 also carries a double, a bool and bytes, searched by their
// string forms.
func TestFindTracesAcrossConventions(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Microsecond)
	span := func(td ptrace.Traces, tid pcommon.TraceID, id byte, kind ptrace.SpanKind, attrs map[string]any) {
		ss := td.ResourceSpans().At(0).ScopeSpans().At(0)
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(tid)
		sp.SetSpanID(spanID(id))
		sp.SetName("op")
		sp.SetKind(kind)
		start := now.Add(-time.Duration(tid[15]) * time.Second)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Millisecond)))
		if err := sp.Attributes().FromRaw(attrs); err != nil {
			t.Fatal(err)
		}
	}
	var batch []ptrace.Traces
	for i, gen := range []struct {
		method, status, peer, host string
		code                       int64
	}{
		{"http.request.method", "http.response.status_code", "server.address", "server.address", 500},
		{"http.request.method", "http.response.status_code", "server.address", "server.address", 200},
		{"http.method", "http.status_code", "net.peer.name", "net.host.name", 500},
		{"http.method", "http.status_code", "net.peer.name", "net.host.name", 200},
	} {
		tid := traceID(byte(i + 1))
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "svc")
		rs.ScopeSpans().AppendEmpty()
		server := map[string]any{gen.method: "GET", gen.status: gen.code, gen.host: "front.local"}
		if i == 2 {
			server["ratio"], server["cache.hit"], server["blob"] = 3.14159265358979, true, []byte{1, 2, 3}
		}
		span(td, tid, 1, ptrace.SpanKindServer, server)
		span(td, tid, 2, ptrace.SpanKindClient, map[string]any{gen.method: "POST", gen.peer: "db.local", "db.statement": "SELECT 1"})
		batch = append(batch, td)
	}
	if err := b.store.WriteTraces(ctx, batch); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tags map[string]string
		want []byte
	}{
		{"legacy name finds new", map[string]string{"http.status_code": "500"}, []byte{1, 3}},
		{"new name finds legacy", map[string]string{"http.response.status_code": "500"}, []byte{1, 3}},
		{"negative control", map[string]string{"http.status_code": "404"}, nil},
		{"integer by its string form", map[string]string{"http.status_code": "200"}, []byte{2, 4}},
		{"two renamed tags", map[string]string{"http.method": "GET", "http.response.status_code": "200"}, []byte{2, 4}},
		{"database", map[string]string{"db.query.text": "SELECT 1"}, []byte{1, 2, 3, 4}},
		{"client peer both ways", map[string]string{"net.peer.name": "db.local"}, []byte{1, 2, 3, 4}},
		{"server address finds the old peer of a client", map[string]string{"server.address": "db.local"}, []byte{1, 2, 3, 4}},
		{"server address finds the old host of a server", map[string]string{"server.address": "front.local"}, []byte{1, 2, 3, 4}},
		{"net.host.name finds only server spans", map[string]string{"net.host.name": "db.local"}, nil},
		{"net.peer.name finds only non-server spans", map[string]string{"net.peer.name": "front.local"}, nil},
		{"unrenamed key stays exact", map[string]string{"http.request.method": "PUT"}, nil},
		// Values by their string forms, pdata's and Jaeger's.
		{"double as pdata writes it", map[string]string{"ratio": "3.14159265358979"}, []byte{3}},
		{"double as Jaeger writes it", map[string]string{"ratio": "3.141592654"}, []byte{3}},
		{"double by another value", map[string]string{"ratio": "3.14"}, nil},
		{"bool", map[string]string{"cache.hit": "true"}, []byte{3}},
		{"bool false", map[string]string{"cache.hit": "false"}, nil},
		{"bytes in base64", map[string]string{"blob": "AQID"}, []byte{3}},
		{"bytes in hex, as Jaeger", map[string]string{"blob": "010203"}, []byte{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found, err := b.store.FindTraces(ctx, explicit(storage.TraceQuery{Service: "svc", Tags: tt.tags}))
			if err != nil {
				t.Fatal(err)
			}
			var ids []byte
			for _, td := range found.Traces {
				ids = append(ids, td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()[15])
			}
			if string(ids) != string(tt.want) {
				t.Fatalf("got traces %v, want %v", ids, tt.want)
			}
		})
	}
}
