package jaeger

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/ingest"
)

// benchSpansPerBatch is what a Jaeger client typically packs in one
// datagram or request: 100 small spans with a few tags fit in ~10 KB.
const benchSpansPerBatch = 100

// benchBatch is a batch of realistic spans: a few string, int and bool
// tags each, one log on every tenth span.
func benchBatch(traceLow int64) *jaegerthrift.Batch {
	b := simpleBatch("bench-svc", "GET /api/items", traceLow, benchSpansPerBatch)
	b.Process.Tags = []*jaegerthrift.Tag{
		{Key: "hostname", VType: jaegerthrift.TagType_STRING, VStr: new("bench-host")},
		{Key: "ip", VType: jaegerthrift.TagType_STRING, VStr: new("10.1.2.3")},
	}
	for i, sp := range b.Spans {
		sp.Tags = append(sp.Tags,
			&jaegerthrift.Tag{Key: "span.kind", VType: jaegerthrift.TagType_STRING, VStr: new("server")},
			&jaegerthrift.Tag{Key: "http.method", VType: jaegerthrift.TagType_STRING, VStr: new("GET")},
			&jaegerthrift.Tag{Key: "http.url", VType: jaegerthrift.TagType_STRING, VStr: new("/api/items?page=2")},
			&jaegerthrift.Tag{Key: "http.status_code", VType: jaegerthrift.TagType_LONG, VLong: new(int64(200))},
			&jaegerthrift.Tag{Key: "sampler.param", VType: jaegerthrift.TagType_BOOL, VBool: new(true)},
		)
		if i > 0 {
			sp.ParentSpanId = 1
		}
		if i%10 == 0 {
			sp.Logs = []*jaegerthrift.Log{{Timestamp: sp.StartTime + 10, Fields: []*jaegerthrift.Tag{
				{Key: "event", VType: jaegerthrift.TagType_STRING, VStr: new("cache miss")},
			}}}
		}
	}
	return b
}

// BenchmarkUDPCompactDecodeConsume measures what one UDP worker does per
// compact-thrift datagram of 100 spans: thrift decoding, translation to
// pdata, validation, and a consumer that returns at once (the database is
// left out: see BenchmarkHTTPThriftEndToEnd for the pipeline's cost).
func BenchmarkUDPCompactDecodeConsume(b *testing.B) {
	msg := agentMessage(b, benchBatch(1), true)
	h := &datagramHandler{
		exp: newExporter(ingest.TraceConsumerFunc(func(context.Context, ptrace.Traces) error { return nil }),
			ingest.DefaultLimits(), DefaultRetryAfter, slog.New(slog.DiscardHandler)),
		logger: slog.New(slog.DiscardHandler),
	}
	pc := newTestUDPMetrics(b).bind(listenerCompact)
	d := newDatagramDecoder()
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		h.handle(ctx, d, msg, pc)
	}
	b.ReportMetric(float64(b.N*benchSpansPerBatch)/time.Since(start).Seconds(), "spans/s")
}

// BenchmarkHTTPThriftEndToEnd posts binary-thrift batches of 100 spans to
// POST /api/traces from 8 concurrent senders; each answer comes after the
// group-commit pipeline has committed the spans to PostgreSQL.
func BenchmarkHTTPThriftEndToEnd(b *testing.B) {
	_, pipe := newStore(b)
	r := setup(b, func(c *Config, o *Options) {
		*c = Config{HTTPAddr: "127.0.0.1:0"}
		o.Traces = pipe
	})
	url := "http://" + r.r.HTTPAddr() + "/api/traces"
	const bodies = 256
	encoded := make([][]byte, bodies)
	for i := range encoded {
		encoded[i] = thriftBody(b, benchBatch(int64(1000+i)))
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var next atomic.Int64
	b.SetParallelism(4) // 4 × GOMAXPROCS senders
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := encoded[next.Add(1)%bodies]
			resp, err := client.Post(url, "application/x-thrift", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Error(fmt.Sprint("status ", resp.StatusCode))
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*benchSpansPerBatch)/time.Since(start).Seconds(), "spans/s")
}
