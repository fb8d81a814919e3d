package spanstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/storage"
)

// benchBatch builds n spans shaped like cmd/vigil-bench's: ten attributes,
// two of them unique per span.
func benchBatch(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "user-service")
	rs.Resource().Attributes().PutStr("host.name", "user-service-7d9f8b-1")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("otelhttp")
	now := time.Now()
	for i := 0; i < n; i++ {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{byte(i), byte(i >> 8), byte(i >> 16), 1, 2, 3})
		sp.SetSpanID(pcommon.SpanID{byte(i), byte(i >> 8), byte(i >> 16), 1})
		sp.SetParentSpanID(pcommon.SpanID{9, byte(i)})
		sp.SetName("GET /users/:id")
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
		a := sp.Attributes()
		a.PutStr("http.request.method", "GET")
		a.PutStr("url.path", fmt.Sprintf("/api/users/%d", i))
		a.PutStr("http.route", "/api/users/:id")
		a.PutInt("http.response.status_code", 200)
		a.PutStr("server.address", "user-service")
		a.PutInt("server.port", 8080)
		a.PutStr("network.protocol.version", "1.1")
		a.PutStr("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)")
		a.PutStr("request.id", fmt.Sprintf("%016x", i*7919))
		a.PutInt("thread.id", int64(i%8))
	}
	return td
}

// BenchmarkBuildRows measures the writer's CPU per span with warm
// dictionaries: dictionary lookups, payload encoding, Bloom filter and
// binary COPY encoding, without the database round trip.
func BenchmarkBuildRows(b *testing.B) {
	st := setupBench(b)
	batch := []ptrace.Traces{benchBatch(1000)}
	ctx := context.Background()
	if _, _, err := st.buildRows(ctx, batch); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rows, tags, err := st.buildRows(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		_ = encodeCopy(rows)
		_ = encodeTagCopy(tags)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/span")
}

// BenchmarkFindTraces measures a tag search over 20,000 stored spans of
// one service (benchBatch's shape, spread over the last ten minutes): a
// rare tag (one span in 1,000 carries the status code searched for) and a
// tag no span carries (a full walk of the window), by the name the spans
// carry, and the rare tag by its legacy name (found through the
// storage/semconv alias). It is the search cost the semantic-convention
// aliases must not change.
func BenchmarkFindTraces(b *testing.B) {
	st := setupBench(b)
	ctx := context.Background()
	now := time.Now()
	for chunk := range 20 {
		td := benchBatch(1000)
		spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
		for i := range spans.Len() {
			sp := spans.At(i)
			sp.SetTraceID(pcommon.TraceID{byte(i), byte(i >> 8), byte(chunk), 7, 7})
			start := now.Add(-time.Duration(chunk*1000+i) * 30 * time.Millisecond)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Millisecond)))
			if i == 500 {
				sp.Attributes().PutInt("http.response.status_code", 503)
			}
		}
		if err := st.WriteTraces(ctx, []ptrace.Traces{td}); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct{ name, key, value string }{
		{"rare", "http.response.status_code", "503"},
		{"absent", "http.response.status_code", "418"},
		{"rare-legacy-name", "http.status_code", "503"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := storage.TraceQuery{Service: "user-service", StartMin: now.Add(-15 * time.Minute), StartMax: now.Add(time.Minute),
				Limit: 20, Tags: map[string]string{bc.key: bc.value}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := st.FindTraces(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
