package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// planSpan is one span of the benchmark's ten-span trace.
type planSpan struct {
	service int    // index in services
	name    string // span name
	kind    ptrace.SpanKind
	parent  int // index in tracePlan, -1 for the root
	attrs   map[string]string
}

var services = []string{"gateway", "user-service", "order-service", "inventory-service"}

// tracePlan is the ten-span trace every request carries: the gateway's
// server span calls three services (a client span on the gateway, a
// server span on the callee), which query their databases and publish to
// a queue, as an instrumented fleet reports it, so that the service graph
// pairs every call.
var tracePlan = []planSpan{
	{0, "GET /api/users/:id", ptrace.SpanKindServer, -1, nil},
	{0, "GET", ptrace.SpanKindClient, 0, map[string]string{"server.address": "user-service"}},
	{1, "GET /users/:id", ptrace.SpanKindServer, 1, nil},
	{1, "SELECT users", ptrace.SpanKindClient, 2, map[string]string{"db.system": "postgresql", "db.name": "users"}},
	{0, "POST", ptrace.SpanKindClient, 0, map[string]string{"server.address": "order-service"}},
	{2, "POST /orders", ptrace.SpanKindServer, 4, nil},
	{2, "INSERT orders", ptrace.SpanKindClient, 5, map[string]string{"db.system": "postgresql", "db.name": "orders"}},
	{2, "orders publish", ptrace.SpanKindProducer, 5, map[string]string{"messaging.system": "kafka", "messaging.destination.name": "orders"}},
	{0, "GET", ptrace.SpanKindClient, 0, map[string]string{"server.address": "inventory-service"}},
	{3, "GET /stock/:sku", ptrace.SpanKindServer, 8, nil},
}

// planOf returns the tracePlan indexes of service si's spans, in order.
func planOf(si int) []int {
	var out []int
	for i, p := range tracePlan {
		if p.service == si {
			out = append(out, i)
		}
	}
	return out
}

// benchHosts is the number of hosts (host.name) each service runs on:
// exporter w reports as host w%benchHosts, so a host.name search matches
// about one span of the service in benchHosts.
const benchHosts = 8

// hostName is the host.name of service svc on host h.
func hostName(svc string, h int) string { return fmt.Sprintf("%s-7d9f8b-%d", svc, h%benchHosts) }

// Shares of the span attributes and statuses refresh draws, which the
// per-filter searches of measureQueries rely on: http.request.method is
// POST on 10% of spans (the common tag), DELETE on 0.01% (the rare tag),
// GET otherwise, and never PATCH (the tag that matches nothing); 1% of
// spans have an error status; durations are uniform in (0, 200 ms], so
// 199 ms is above their p99.
const (
	commonPerMille   = 100
	rarePerMillion   = 100
	errorPerMille    = 10
	maxBenchDuration = 200 * time.Millisecond
)

// newRequest builds an export request of n ten-span traces (tracePlan),
// ~10 attributes per span, from host h of every service; ids and times
// are filled by refresh.
func newRequest(n, h int) ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	for si, svc := range services {
		rs := td.ResourceSpans().AppendEmpty()
		ra := rs.Resource().Attributes()
		ra.PutStr("service.name", svc)
		ra.PutStr("service.version", "1.4.2")
		ra.PutStr("host.name", hostName(svc, h))
		ra.PutStr("telemetry.sdk.language", "go")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
		ss.Scope().SetVersion("0.63.0")
		mine := planOf(si)
		for t := 0; t < n; t++ {
			for k, pi := range mine {
				p := tracePlan[pi]
				sp := ss.Spans().AppendEmpty()
				sp.SetName(p.name)
				sp.SetKind(p.kind)
				a := sp.Attributes()
				a.PutStr("http.request.method", "GET")
				a.PutStr("url.path", "/api/users/12345")
				a.PutStr("http.route", "/api/users/:id")
				a.PutInt("http.response.status_code", 200)
				a.PutStr("server.address", svc)
				a.PutInt("server.port", 8080)
				a.PutStr("network.protocol.version", "1.1")
				a.PutStr("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)")
				a.PutStr("request.id", "")
				a.PutInt("thread.id", int64(k))
				for key, v := range p.attrs {
					a.PutStr(key, v)
				}
			}
		}
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

// refresh gives every trace of req new random ids, parent links (those
// of tracePlan) and a start time within the last spread (an hour unless
// -spread says otherwise), as if the spans had arrived over that time (so
// that searches over it meet the density of a fleet sending that many
// spans in it, not of one burst), in random order, the hardest case for
// locality; methods, errors and durations are drawn with the shares
// above.
func refresh(req ptraceotlp.ExportRequest, n int, rng *rand.Rand, spread time.Duration) {
	td := req.Traces()
	now := time.Now()
	ids := make([]pcommon.TraceID, n)
	spanIDs := make([][]pcommon.SpanID, n)
	bases := make([]time.Time, n)
	for i := range ids {
		binary.LittleEndian.PutUint64(ids[i][:8], rng.Uint64())
		binary.LittleEndian.PutUint64(ids[i][8:], rng.Uint64())
		bases[i] = now.Add(-time.Duration(rng.Int64N(int64(spread - time.Minute))))
		spanIDs[i] = make([]pcommon.SpanID, len(tracePlan))
		for k := range tracePlan {
			binary.LittleEndian.PutUint64(spanIDs[i][k][:], rng.Uint64()|1)
		}
	}
	for si := 0; si < td.ResourceSpans().Len(); si++ {
		spans := td.ResourceSpans().At(si).ScopeSpans().At(0).Spans()
		mine := planOf(si)
		for i := 0; i < spans.Len(); i++ {
			t, pi := i/len(mine), mine[i%len(mine)]
			sp := spans.At(i)
			sp.SetTraceID(ids[t])
			sp.SetSpanID(spanIDs[t][pi])
			if parent := tracePlan[pi].parent; parent >= 0 {
				sp.SetParentSpanID(spanIDs[t][parent])
			}
			start := bases[t].Add(time.Duration(rng.IntN(500)) * time.Millisecond)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(1+rng.Int64N(int64(maxBenchDuration/time.Microsecond))) * time.Microsecond)))
			a := sp.Attributes()
			a.PutStr("request.id", fmt.Sprintf("%016x", rng.Uint64()))
			a.PutStr("url.path", fmt.Sprintf("/api/users/%d", rng.IntN(100000)))
			method := "GET"
			switch r := rng.IntN(1_000_000); {
			case r < rarePerMillion:
				method = "DELETE"
			case r < commonPerMille*1000:
				method = "POST"
			}
			a.PutStr("http.request.method", method)
			code := int64(200)
			if rng.IntN(1000) < errorPerMille {
				code = 500
				sp.Status().SetCode(ptrace.StatusCodeError)
			} else {
				sp.Status().SetCode(ptrace.StatusCodeUnset)
			}
			a.PutInt("http.response.status_code", code)
		}
	}
}

// loadResult is what the generator observed.
type loadResult struct {
	acked     int64
	refusals  int64 // RESOURCE_EXHAUSTED / UNAVAILABLE answers (retried)
	failures  int64 // other errors
	elapsed   time.Duration
	firstErr  string
	requests  int64
	generator time.Duration // generator CPU (this process)
}

// generate exports from o.workers concurrent clients until target spans
// are acknowledged or maxDuration passes.
func generate(ctx context.Context, addr string, o options) (loadResult, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return loadResult{}, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	var res loadResult
	var errOnce sync.Once
	ctx, cancel := context.WithTimeout(ctx, o.maxDuration)
	defer cancel()
	cpu0 := selfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			req := newRequest(o.tracesPerRq, w)
			spans := int64(req.Traces().SpanCount())
			for ctx.Err() == nil && atomic.LoadInt64(&res.acked) < int64(o.targetSpans) {
				refresh(req, o.tracesPerRq, rng, o.spread)
				_, err := client.Export(ctx, req)
				atomic.AddInt64(&res.requests, 1)
				switch status.Code(err) {
				case codes.OK:
					atomic.AddInt64(&res.acked, spans)
				case codes.ResourceExhausted, codes.Unavailable:
					atomic.AddInt64(&res.refusals, 1)
					time.Sleep(5 * time.Millisecond)
				default:
					if ctx.Err() != nil {
						return
					}
					atomic.AddInt64(&res.failures, 1)
					errOnce.Do(func() { res.firstErr = err.Error() })
				}
			}
		}(w)
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.generator = selfCPU() - cpu0
	return res, nil
}
