package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jackc/pgx/v5/pgxpool"
	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/agent"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// jaegerPhase is the time each transport is driven in runJaeger.
const jaegerPhase = 8 * time.Second

// spansPerBatch is the size of every Jaeger batch sent: one process and
// ten spans with ten tags each, like the OTLP load's traces.
const spansPerBatch = 10

// thriftBatch builds one batch of a ten-span trace with fresh ids.
func thriftBatch(rng *rand.Rand) *jaegerthrift.Batch {
	now := time.Now().UnixMicro()
	hi, lo := int64(rng.Uint64()), int64(rng.Uint64())
	b := &jaegerthrift.Batch{Process: &jaegerthrift.Process{ServiceName: "legacy-gateway",
		Tags: []*jaegerthrift.Tag{{Key: "hostname", VType: jaegerthrift.TagType_STRING, VStr: ptr("legacy-gateway-1")}}}}
	for i := 0; i < spansPerBatch; i++ {
		sp := &jaegerthrift.Span{TraceIdHigh: hi, TraceIdLow: lo, SpanId: int64(rng.Uint64() | 1),
			OperationName: "GET /api/users/:id", StartTime: now - int64(rng.IntN(500_000)), Duration: int64(1 + rng.IntN(200_000))}
		if i > 0 {
			sp.ParentSpanId = b.Spans[0].SpanId
		}
		sp.Tags = []*jaegerthrift.Tag{
			{Key: "span.kind", VType: jaegerthrift.TagType_STRING, VStr: ptr("server")},
			{Key: "http.method", VType: jaegerthrift.TagType_STRING, VStr: ptr("GET")},
			{Key: "http.url", VType: jaegerthrift.TagType_STRING, VStr: ptr(fmt.Sprintf("/api/users/%d", rng.IntN(100000)))},
			{Key: "http.status_code", VType: jaegerthrift.TagType_LONG, VLong: ptr(int64(200))},
			{Key: "component", VType: jaegerthrift.TagType_STRING, VStr: ptr("express")},
			{Key: "request.id", VType: jaegerthrift.TagType_STRING, VStr: ptr(strconv.FormatUint(rng.Uint64(), 16))},
			{Key: "peer.service", VType: jaegerthrift.TagType_STRING, VStr: ptr("user-service")},
			{Key: "sampler.type", VType: jaegerthrift.TagType_STRING, VStr: ptr("const")},
			{Key: "sampler.param", VType: jaegerthrift.TagType_BOOL, VBool: ptr(true)},
			{Key: "thread.id", VType: jaegerthrift.TagType_LONG, VLong: ptr(int64(i))},
		}
		b.Spans = append(b.Spans, sp)
	}
	return b
}

func ptr[T any](v T) *T { return &v }

// modelBatch converts a thrift batch to the api_v2 model for gRPC.
func modelBatch(b *jaegerthrift.Batch) model.Batch {
	out := model.Batch{Process: &model.Process{ServiceName: b.Process.ServiceName}}
	for _, sp := range b.Spans {
		m := &model.Span{TraceID: model.NewTraceID(uint64(sp.TraceIdHigh), uint64(sp.TraceIdLow)),
			SpanID: model.NewSpanID(uint64(sp.SpanId)), OperationName: sp.OperationName,
			StartTime: time.UnixMicro(sp.StartTime), Duration: time.Duration(sp.Duration) * time.Microsecond}
		if sp.ParentSpanId != 0 {
			m.References = []model.SpanRef{model.NewChildOfRef(m.TraceID, model.NewSpanID(uint64(sp.ParentSpanId)))}
		}
		for _, t := range sp.Tags {
			switch t.VType {
			case jaegerthrift.TagType_LONG:
				m.Tags = append(m.Tags, model.Int64(t.Key, *t.VLong))
			case jaegerthrift.TagType_BOOL:
				m.Tags = append(m.Tags, model.Bool(t.Key, *t.VBool))
			default:
				m.Tags = append(m.Tags, model.String(t.Key, *t.VStr))
			}
		}
		out.Spans = append(out.Spans, m)
	}
	return out
}

// drive runs send from o.workers goroutines for d and returns the spans
// acknowledged per second; send returns the spans it got acknowledged.
func drive(ctx context.Context, workers int, d time.Duration, send func(ctx context.Context, rng *rand.Rand) (int, error)) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var acked atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				n, err := send(ctx, rng)
				if err != nil && ctx.Err() == nil {
					firstErr.CompareAndSwap(nil, err)
					time.Sleep(5 * time.Millisecond)
				}
				acked.Add(int64(n))
			}
		}(w)
	}
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok && acked.Load() == 0 {
		return 0, e
	}
	return float64(acked.Load()) / time.Since(start).Seconds(), nil
}

// settledCount waits until the span count stops growing and returns it.
func settledCount(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var last int64 = -1
	for {
		var n int64
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM spans").Scan(&n); err != nil {
			return 0, err
		}
		if n == last {
			return n, nil
		}
		last = n
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// udpPhase sends compact-thrift datagrams at rate spans/s for d and
// returns the spans sent.
func udpPhase(ctx context.Context, addr string, rate float64, d time.Duration) (int64, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	buf := thrift.NewTMemoryBufferLen(8 << 10)
	client := agent.NewAgentClientFactory(buf, thrift.NewTCompactProtocolFactoryConf(nil))
	interval := time.Duration(float64(time.Second) * spansPerBatch / rate)
	var sent int64
	start := time.Now()
	next := start
	for time.Since(start) < d && ctx.Err() == nil {
		buf.Reset()
		if err := client.EmitBatch(ctx, thriftBatch(rng)); err != nil {
			return sent, err
		}
		if _, err := conn.Write(buf.Bytes()); err == nil {
			sent += spansPerBatch
		}
		next = next.Add(interval)
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		}
	}
	return sent, nil
}

// udpDropped sums Vigil's dropped and malformed datagram counters.
func udpDropped(base string) (float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var n float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "vigil_ingest_jaeger_udp_packets_dropped_total") {
			f, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			n += f
		}
	}
	return n, nil
}

// runJaeger measures, in one run against one Vigil: OTLP/gRPC, Jaeger
// collector HTTP thrift and Jaeger gRPC spans/s end to end (acknowledged
// after commit), and Jaeger agent UDP compact thrift at 50 %, 100 % and
// 150 % of its sustainable rate with the share of spans dropped.
func runJaeger(ctx context.Context, o options, logger *slog.Logger, w io.Writer) error {
	dbURL, drop, err := createDB(ctx, o.adminURL, "vigil_bench_", o.keep)
	if err != nil {
		return err
	}
	defer drop()
	bin, _ := filepath.Abs(o.vigilBin)
	vp, err := startVigil(ctx, bin, dbURL, true)
	if err != nil {
		return err
	}
	defer func() { _ = vp.stop() }()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	// OTLP/gRPC baseline, same workers and phase length.
	ob := o
	ob.maxDuration, ob.targetSpans = jaegerPhase, 1<<40
	lr, err := generate(ctx, vp.addrs["otlp_grpc"], ob)
	if err != nil {
		return err
	}
	otlpRate := float64(lr.acked) / lr.elapsed.Seconds()
	logger.Info("otlp phase", "spans_per_s", otlpRate)

	httpClient := &http.Client{Timeout: 30 * time.Second}
	thriftURL := "http://" + vp.addrs["jaeger_http"] + "/api/traces"
	httpRate, err := drive(ctx, o.workers, jaegerPhase, func(ctx context.Context, rng *rand.Rand) (int, error) {
		// Five batches per request, as a client's reporter flushes.
		batch := thriftBatch(rng)
		for i := 0; i < 4; i++ {
			batch.Spans = append(batch.Spans, thriftBatch(rng).Spans...)
		}
		body, err := thrift.NewTSerializer().Write(ctx, batch)
		if err != nil {
			return 0, err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, thriftURL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-thrift")
		resp, err := httpClient.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return 0, fmt.Errorf("jaeger http: %d", resp.StatusCode)
		}
		return len(batch.Spans), nil
	})
	if err != nil {
		return err
	}
	logger.Info("jaeger http phase", "spans_per_s", httpRate)

	cc, err := grpc.NewClient(vp.addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	collector := api_v2.NewCollectorServiceClient(cc)
	grpcRate, err := drive(ctx, o.workers, jaegerPhase, func(ctx context.Context, rng *rand.Rand) (int, error) {
		b := modelBatch(thriftBatch(rng))
		for i := 0; i < 4; i++ {
			b.Spans = append(b.Spans, modelBatch(thriftBatch(rng)).Spans...)
		}
		_, err := collector.PostSpans(ctx, &api_v2.PostSpansRequest{Batch: b})
		if c := status.Code(err); c == codes.ResourceExhausted || c == codes.Unavailable {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		return len(b.Spans), nil
	})
	if err != nil {
		return err
	}
	logger.Info("jaeger grpc phase", "spans_per_s", grpcRate)

	// UDP: the sustainable rate is what is stored when sending as fast as
	// one socket can; then 50 %, 100 %, 150 % of it.
	base := "http://" + vp.addrs["http"]
	type udpRow struct {
		label          string
		offered, sent  float64
		stored, droppd float64
	}
	var rows []udpRow
	phase := func(label string, rate float64) (udpRow, error) {
		before, err := settledCount(ctx, pool)
		if err != nil {
			return udpRow{}, err
		}
		d0, _ := udpDropped(base)
		sent, err := udpPhase(ctx, vp.addrs["udp_compact"], rate, jaegerPhase)
		if err != nil {
			return udpRow{}, err
		}
		after, err := settledCount(ctx, pool)
		if err != nil {
			return udpRow{}, err
		}
		d1, _ := udpDropped(base)
		return udpRow{label: label, offered: rate, sent: float64(sent) / jaegerPhase.Seconds(),
			stored: float64(after-before) / jaegerPhase.Seconds(), droppd: d1 - d0}, nil
	}
	probe, err := phase("probe (unpaced)", 1e9)
	if err != nil {
		return err
	}
	sustainable := probe.stored
	rows = append(rows, probe)
	for _, f := range []float64{0.5, 1.0, 1.5} {
		r, err := phase(fmt.Sprintf("%.0f %% of sustainable", f*100), f*sustainable)
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}

	fmt.Fprintf(w, "# vigil-bench -signal jaeger\n\nmachine: %s\n", machine())
	fmt.Fprintf(w, "each phase %s; %d workers for OTLP/gRPC, Jaeger HTTP and gRPC (50 ten-span traces per OTLP request, 5 ten-span traces per Jaeger request)\n\n", jaegerPhase, o.workers)
	fmt.Fprintf(w, "| transport | spans/s committed | ratio to OTLP/gRPC |\n|---|---|---|\n")
	fmt.Fprintf(w, "| OTLP/gRPC | %.0f | 1.00 |\n", otlpRate)
	fmt.Fprintf(w, "| Jaeger collector HTTP thrift | %.0f | %.2f |\n", httpRate, httpRate/otlpRate)
	fmt.Fprintf(w, "| Jaeger collector gRPC | %.0f | %.2f |\n", grpcRate, grpcRate/otlpRate)
	fmt.Fprintf(w, "\nJaeger agent UDP, compact thrift, one sender, 10 spans per datagram:\n\n")
	fmt.Fprintf(w, "| phase | offered spans/s | sent spans/s | stored spans/s | not stored | datagrams dropped by Vigil |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		lost := 0.0
		if r.sent > 0 {
			lost = 1 - r.stored/r.sent
		}
		offered := fmt.Sprintf("%.0f", r.offered)
		if r.offered >= 1e9 {
			offered = "unpaced"
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.1f %% | %.0f |\n", r.label, offered, r.sent, r.stored, 100*max(lost, 0), r.droppd)
	}
	return nil
}
