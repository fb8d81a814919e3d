package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// logsPerRequest is the number of log records in one export request of the
// log load (spread evenly over the services of load.go).
const logsPerRequest = 500

// The rare words planted in about 0.1 % of the records each: an English
// word that no other body contains, and a two-character Chinese word
// ("circuit breaking") whose characters appear nowhere else.
const (
	rareWord   = "zebraquokka"
	rareWordZH = "熔断"
)

// tailProbeService is the service name of the live-tail probe records, so
// that the tail filter matches them and nothing of the bulk load.
const tailProbeService = "tail-probe"

// tailSentAttr is the attribute holding a probe record's export time (Unix
// nanoseconds, as a decimal string).
const tailSentAttr = "bench.sent_unix_nano"

var (
	englishLines = []string{
		"connection refused while calling inventory-service at 10.%d.%d.%d:8080 for GET /stock/%d: dial tcp: connect: connection refused; retrying in %d ms, circuit state closed",
		"request timeout after %d ms waiting for upstream order-service POST /orders (request %016x); the client closed the connection and the transaction was rolled back",
		"user %d logged in successfully from 192.168.%d.%d using password authentication; session %016x created with a lifetime of %d seconds and remember-me enabled",
		"slow query detected: SELECT id, name, email FROM users WHERE id = $1 took %d ms (threshold 200 ms) on replica db-users-%d, rows returned %d, pool %d/20 in use",
		"cache miss for key product:%d:details in redis cluster cache-%d; loading from the database and repopulating the cache with a ttl of %d seconds, %d loaders waiting",
	}
	winstonMessages = []string{"request completed", "request failed", "upstream slow", "validation error", "payment authorized"}
	chineseLines    = []string{
		"用户%d登录失败：密码错误次数超过限制，账户已被临时锁定三十分钟，请稍后重试或联系管理员处理。请求编号 %016x",
		"订单%d创建成功，支付金额%d元，库存已扣减，物流信息将在二十四小时内同步到用户的订单详情页面。请求编号 %016x",
		"库存服务响应超时%d毫秒，已触发降级策略，返回缓存中的商品数据，并向值班工程师发送告警通知。请求编号 %016x",
		"数据库连接池已满，当前等待请求%d个，最长等待时间%d毫秒，建议检查慢查询并适当扩大连接池容量。请求编号 %016x",
	}
	routes   = []string{"/api/users/:id", "/api/orders", "/api/products/:sku", "/api/cart", "/healthz"}
	methods  = []string{"GET", "POST", "PUT", "DELETE"}
	loggers  = []string{"http.access", "db.pool", "cache", "auth", "payments"}
	severity = []struct {
		num  plog.SeverityNumber
		text string
	}{{plog.SeverityNumberInfo, "INFO"}, {plog.SeverityNumberWarn, "WARN"}, {plog.SeverityNumberError, "ERROR"}, {plog.SeverityNumberDebug, "DEBUG"}}
)

// newLogRequest builds an export request of n log records: one resource
// per service of load.go (service.name, version, host, SDK language), a
// scope each, and 8 attributes per record; fillLogs sets the contents.
func newLogRequest(n int) plogotlp.ExportRequest {
	ld := plog.NewLogs()
	for si, svc := range services {
		rl := ld.ResourceLogs().AppendEmpty()
		ra := rl.Resource().Attributes()
		ra.PutStr("service.name", svc)
		ra.PutStr("service.version", "1.4.2")
		ra.PutStr("host.name", fmt.Sprintf("%s-7d9f8b-%d", svc, si))
		ra.PutStr("telemetry.sdk.language", "nodejs")
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName("winston")
		sl.Scope().SetVersion("3.17.0")
		per := n / len(services)
		if si < n%len(services) {
			per++
		}
		for range per {
			a := sl.LogRecords().AppendEmpty().Attributes()
			a.EnsureCapacity(8)
			for _, k := range []string{"logger.name", "thread.name", "http.request.method", "http.route", "http.response.status_code", "user.id", "request.id", "client.address"} {
				a.PutStr(k, "")
			}
		}
	}
	return plogotlp.NewExportRequestFromLogs(ld)
}

// logFiller rewrites the records of a request with fresh contents.
type logFiller struct {
	rng       *rand.Rand
	buf       []byte
	traceID   pcommon.TraceID
	spanID    pcommon.SpanID
	traceLeft int
}

// fill gives every record of req a new body (40 % English lines, 35 %
// winston JSON lines, 25 % Chinese sentences, ~200 bytes each; 0.1 % carry
// rareWord and 0.1 % rareWordZH), a severity, a time within the last 24
// hours (observed now), unique request and user ids, and for ~30 % a trace
// and span id shared by runs of three records.
func (f *logFiller) fill(req plogotlp.ExportRequest) {
	now := time.Now()
	rls := req.Logs().ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		recs := rls.At(i).ScopeLogs().At(0).LogRecords()
		for j := 0; j < recs.Len(); j++ {
			f.record(recs.At(j), now)
		}
	}
}

func (f *logFiller) record(lr plog.LogRecord, now time.Time) {
	rng := f.rng
	reqID := rng.Uint64()
	user := rng.IntN(1_000_000)
	status := 200
	switch r := rng.IntN(100); {
	case r < 3:
		status = 500
	case r < 8:
		status = 404
	}
	b := f.buf[:0]
	switch pick, kind := rng.IntN(1000), rng.IntN(100); {
	case pick == 0:
		b = fmt.Appendf(b, "%s: "+englishLines[0], rareWord, rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(100000), 50+rng.IntN(950))
	case pick == 1:
		b = fmt.Appendf(b, "服务%s已开启，"+chineseLines[2], rareWordZH, 100+rng.IntN(9900), reqID)
	case kind < 40:
		switch k := rng.IntN(len(englishLines)); k {
		case 0:
			b = fmt.Appendf(b, englishLines[k], rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(100000), 50+rng.IntN(950))
		case 1:
			b = fmt.Appendf(b, englishLines[k], 1000+rng.IntN(29000), reqID)
		case 2:
			b = fmt.Appendf(b, englishLines[k], user, rng.IntN(256), rng.IntN(256), reqID, 3600)
		case 3:
			b = fmt.Appendf(b, englishLines[k], 200+rng.IntN(5000), rng.IntN(4), rng.IntN(100), rng.IntN(21))
		default:
			b = fmt.Appendf(b, englishLines[k], rng.IntN(100000), rng.IntN(6), 60+rng.IntN(3540), rng.IntN(10))
		}
	case kind < 75:
		b = fmt.Appendf(b, `{"level":"info","message":%q,"requestId":"%016x","method":%q,"path":"/api/users/%d","statusCode":%d,"duration":%d,"userAgent":"Mozilla/5.0 (X11; Linux x86_64)"}`,
			winstonMessages[rng.IntN(len(winstonMessages))], reqID, methods[rng.IntN(len(methods))], user, status, 1+rng.IntN(3000))
	default:
		switch k := rng.IntN(len(chineseLines)); k {
		case 0, 2:
			b = fmt.Appendf(b, chineseLines[k], 100+rng.IntN(9900), reqID)
		default:
			b = fmt.Appendf(b, chineseLines[k], rng.IntN(100000), rng.IntN(5000), reqID)
		}
	}
	f.buf = b
	lr.Body().SetStr(string(b))
	sev := severity[0]
	switch r := rng.IntN(100); {
	case r < 10:
		sev = severity[1]
	case r < 14:
		sev = severity[2]
	case r < 20:
		sev = severity[3]
	}
	lr.SetSeverityNumber(sev.num)
	lr.SetSeverityText(sev.text)
	// Stay a few minutes inside the 24-hour window that searches cover.
	lr.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Duration(rng.Int64N(int64(23*time.Hour + 50*time.Minute))))))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(now))
	if rng.IntN(10) < 3 {
		if f.traceLeft == 0 {
			binary.LittleEndian.PutUint64(f.traceID[:8], rng.Uint64())
			binary.LittleEndian.PutUint64(f.traceID[8:], rng.Uint64())
			binary.LittleEndian.PutUint64(f.spanID[:], rng.Uint64()|1)
			f.traceLeft = 3
		}
		f.traceLeft--
		lr.SetTraceID(f.traceID)
		lr.SetSpanID(f.spanID)
	} else {
		lr.SetTraceID(pcommon.NewTraceIDEmpty())
		lr.SetSpanID(pcommon.NewSpanIDEmpty())
	}
	a := lr.Attributes()
	a.PutStr("logger.name", loggers[rng.IntN(len(loggers))])
	a.PutStr("thread.name", "worker-"+strconv.Itoa(rng.IntN(16)))
	a.PutStr("http.request.method", methods[rng.IntN(len(methods))])
	a.PutStr("http.route", routes[rng.IntN(len(routes))])
	a.PutInt("http.response.status_code", int64(status))
	a.PutInt("user.id", int64(user))
	a.PutStr("request.id", strconv.FormatUint(reqID, 16))
	a.PutStr("client.address", "10.0."+strconv.Itoa(rng.IntN(256))+"."+strconv.Itoa(rng.IntN(256)))
}

// generateLogs exports from o.workers concurrent clients until
// o.targetSpans records are acknowledged or o.maxDuration passes. A record
// counts as acknowledged when its request succeeded and the partial-success
// answer did not reject it.
func generateLogs(ctx context.Context, client plogotlp.GRPCClient, o options) loadResult {
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
			f := &logFiller{rng: rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano()))), buf: make([]byte, 0, 512)}
			req := newLogRequest(logsPerRequest)
			n := int64(req.Logs().LogRecordCount())
			for ctx.Err() == nil && atomic.LoadInt64(&res.acked) < int64(o.targetSpans) {
				f.fill(req)
				resp, err := client.Export(ctx, req)
				atomic.AddInt64(&res.requests, 1)
				switch status.Code(err) {
				case codes.OK:
					rej := resp.PartialSuccess().RejectedLogRecords()
					atomic.AddInt64(&res.acked, n-rej)
					if rej > 0 {
						atomic.AddInt64(&res.failures, 1)
						errOnce.Do(func() { res.firstErr = "partial success: " + resp.PartialSuccess().ErrorMessage() })
					}
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
	return res
}

// dialLogs opens an OTLP/gRPC logs client to addr.
func dialLogs(addr string) (plogotlp.GRPCClient, func() error, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return plogotlp.NewGRPCClient(conn), conn.Close, nil
}

// tailResult is what one live-tail probe observed.
type tailResult struct {
	sent     int             // probe records acknowledged
	latency  []time.Duration // export-call start → frame received, per record received
	dropped  int64           // records the server reported as dropped
	firstErr string
}

// tailProbe opens GET /api/logs/tail?service=tail-probe on httpAddr, then
// exports one probe record per request every interval (at most limit, until
// stop is closed), each carrying its export time in tailSentAttr, and
// measures export-call start → WebSocket frame received. It waits up to 3 s
// for the last frames.
func tailProbe(ctx context.Context, client plogotlp.GRPCClient, httpAddr string, limit int, interval time.Duration, stop <-chan struct{}) (tailResult, error) {
	var res tailResult
	u := "ws://" + httpAddr + "/api/logs/tail?" + url.Values{"service": {tailProbeService}}.Encode()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
	if err != nil {
		return res, fmt.Errorf("open live tail %s: %w", u, err)
	}
	defer ws.Close()
	var (
		mu       sync.Mutex
		received int
	)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			_, msg, err := ws.ReadMessage()
			at := time.Now()
			if err != nil {
				return
			}
			var f struct {
				Type    string `json:"type"`
				Dropped int64  `json:"dropped"`
				Record  struct {
					Attributes map[string]any `json:"attributes"`
				} `json:"record"`
			}
			if json.Unmarshal(msg, &f) != nil {
				continue
			}
			mu.Lock()
			switch f.Type {
			case "dropped":
				res.dropped += f.Dropped
			case "record":
				if s, ok := f.Record.Attributes[tailSentAttr].(string); ok {
					if ns, err := strconv.ParseInt(s, 10, 64); err == nil {
						res.latency = append(res.latency, at.Sub(time.Unix(0, ns)))
						received++
					}
				}
			}
			mu.Unlock()
		}
	}()

	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", tailProbeService)
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.Body().SetStr("live tail probe record")
	lr.SetSeverityNumber(plog.SeverityNumberInfo)
	req := plogotlp.NewExportRequestFromLogs(ld)
	t := time.NewTicker(interval)
	defer t.Stop()
loop:
	for res.sent < limit && ctx.Err() == nil {
		select {
		case <-stop:
			break loop
		case <-t.C:
		}
		sent := time.Now()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(sent))
		lr.Attributes().PutStr(tailSentAttr, strconv.FormatInt(sent.UnixNano(), 10))
		if _, err := client.Export(ctx, req); err != nil {
			if res.firstErr == "" {
				res.firstErr = err.Error()
			}
			continue
		}
		res.sent++
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := received >= res.sent
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = ws.Close()
	<-readDone
	mu.Lock()
	defer mu.Unlock()
	return res, nil
}
