package derive_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/ingest/derive"
	"github.com/vigil-obs/vigil/storage"
)

// benchTraces builds n traces of 4 spans as instrumented HTTP services
// send them: a server span with a route, a client call to another
// service, that service's server span, and a database call; each with
// the attributes of the semantic conventions.
func benchTraces(n int) (ptrace.Traces, int) {
	td := ptrace.NewTraces()
	start := pcommon.NewTimestampFromTime(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	resource := func(service string) ptrace.SpanSlice {
		rs := td.ResourceSpans().AppendEmpty()
		a := rs.Resource().Attributes()
		a.PutStr("service.name", service)
		a.PutStr("service.version", "1.4.2")
		a.PutStr("deployment.environment.name", "prod")
		a.PutStr("k8s.namespace.name", "shop")
		a.PutStr("k8s.pod.name", service+"-7d9f8b6c5d-x2x4z")
		a.PutStr("host.name", "node-12")
		a.PutStr("telemetry.sdk.language", "go")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
		return ss.Spans()
	}
	front, back := resource("frontend"), resource("orders")
	add := func(spans ptrace.SpanSlice, trace, id, parent uint64, kind ptrace.SpanKind, name string, attrs map[string]string) {
		sp := spans.AppendEmpty()
		var tid pcommon.TraceID
		var sid, pid pcommon.SpanID
		tid[0], tid[15], sid[7], pid[7] = byte(trace>>8), byte(trace), byte(id), byte(parent)
		sid[6], pid[6] = byte(trace), byte(trace)
		sp.SetTraceID(tid)
		sp.SetSpanID(sid)
		if parent != 0 {
			sp.SetParentSpanID(pid)
		}
		sp.SetKind(kind)
		sp.SetName(name)
		sp.SetStartTimestamp(start)
		sp.SetEndTimestamp(start + pcommon.Timestamp(1+trace%400)*pcommon.Timestamp(time.Millisecond))
		for k, v := range attrs {
			sp.Attributes().PutStr(k, v)
		}
		sp.Attributes().PutInt("http.response.status_code", 200)
	}
	for i := range n {
		t := uint64(i)
		route := fmt.Sprintf("/api/items/:id/%d", i%20)
		add(front, t, 1, 0, ptrace.SpanKindServer, "GET /api/items/"+fmt.Sprint(i), map[string]string{
			"http.request.method": "GET", "http.route": route, "url.path": "/api/items/" + fmt.Sprint(i),
			"user_agent.original": "Mozilla/5.0", "network.protocol.version": "1.1", "server.address": "shop.example", "client.address": "10.0.0.1"})
		add(front, t, 2, 1, ptrace.SpanKindClient, "GET", map[string]string{
			"http.request.method": "GET", "server.address": "orders", "server.port": "8080", "url.full": "http://orders:8080/orders/" + fmt.Sprint(i)})
		add(back, t, 3, 2, ptrace.SpanKindServer, "GET /orders/:id", map[string]string{
			"http.request.method": "GET", "http.route": "/orders/:id", "url.path": "/orders/" + fmt.Sprint(i), "client.address": "10.0.0.2"})
		add(back, t, 4, 3, ptrace.SpanKindClient, "SELECT orders", map[string]string{
			"db.system": "postgresql", "db.namespace": "orders", "db.query.text": "SELECT * FROM orders WHERE id = $1", "server.address": "pg"})
	}
	return td, 4 * n
}

// rollupCases run a benchmark with the map rollups kept, as with a
// database, and without, so that their cost shows.
var rollupCases = []struct {
	name    string
	rollups derive.RollupStore
}{{"rollups", discardRollups{}}, {"none", nil}}

// BenchmarkCommitted measures the ingest-path cost per span (ns/span,
// allocs/span) of batches of 1000 spans, with writer goroutines calling
// concurrently.
func BenchmarkCommitted(b *testing.B) {
	for _, rc := range rollupCases {
		b.Run(rc.name, func(b *testing.B) {
			cfg := derive.DefaultConfig()
			cfg.Replica = "bench"
			d, err := derive.New(cfg, derive.Options{Appendable: &capture{}, Rollups: rc.rollups})
			if err != nil {
				b.Fatal(err)
			}
			td, spans := benchTraces(250)
			batch := []ptrace.Traces{td}
			d.Committed(batch) // create the series
			if err := d.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					d.Committed(batch)
				}
			})
			b.StopTimer()
			perSpan := float64(b.Elapsed().Nanoseconds()) / float64(b.N*spans)
			b.ReportMetric(perSpan, "ns/span")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkCommittedSerial is BenchmarkCommitted from one goroutine, for
// allocations per span.
func BenchmarkCommittedSerial(b *testing.B) {
	for _, rc := range rollupCases {
		b.Run(rc.name, func(b *testing.B) {
			d, err := derive.New(derive.DefaultConfig(), derive.Options{Appendable: &capture{}, Rollups: rc.rollups})
			if err != nil {
				b.Fatal(err)
			}
			td, spans := benchTraces(250)
			batch := []ptrace.Traces{td}
			d.Committed(batch)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				d.Committed(batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
			b.ReportMetric(float64(testing.AllocsPerRun(1, func() { d.Committed(batch) }))/float64(spans), "allocs/span")
		})
	}
}

// BenchmarkFlush measures a flush of 10,000 span-metrics series, 1,000
// edges and, with rollups, 100 nodes (the time Committed may wait for the
// snapshot is part of it).
func BenchmarkFlush(b *testing.B) {
	td := ptrace.NewTraces()
	for s := range 100 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprint("svc-", s))
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		for o := range 100 {
			sp := spans.AppendEmpty()
			sp.SetName(fmt.Sprint("op-", o))
			sp.SetKind(ptrace.SpanKindClient)
			switch {
			case o < 10:
				sp.Attributes().PutStr("db.system", "postgresql")
				sp.Attributes().PutStr("db.name", fmt.Sprint("db-", o))
			case o < 20:
				sp.SetKind(ptrace.SpanKindServer)
				sp.SetParentSpanID(pcommon.SpanID{1})
			}
		}
	}
	for _, rc := range rollupCases {
		b.Run(rc.name, func(b *testing.B) {
			d, err := derive.New(derive.DefaultConfig(), derive.Options{Appendable: discard{}, Rollups: rc.rollups})
			if err != nil {
				b.Fatal(err)
			}
			d.Committed([]ptrace.Traces{td})
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				d.Committed([]ptrace.Traces{td})
				if err := d.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// discard is an AppendableV2 that keeps nothing.
type discard struct{}

func (discard) AppenderV2(context.Context) promstorage.AppenderV2 { return discardApp{} }

type discardApp struct{}

func (discardApp) Append(promstorage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	return 0, nil
}
func (discardApp) Commit() error   { return nil }
func (discardApp) Rollback() error { return nil }

// discardRollups is a RollupStore that keeps nothing.
type discardRollups struct{}

func (discardRollups) WriteMapRollups(context.Context, time.Time, []storage.MapRollup) error {
	return nil
}
