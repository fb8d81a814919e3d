package logsapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-obs/vigil/ingest/otlp"
	"github.com/vigil-obs/vigil/ingest/pipeline"
	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/internal/tail"
	querylogs "github.com/vigil-obs/vigil/query/logs"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/logstore"
	"github.com/vigil-obs/vigil/web/api"
)

// logsStack is the whole log path on real servers: OTLP receiver →
// log pipeline → PostgreSQL, the tail hub fed after commit, and the log
// API on an httptest server.
type logsStack struct {
	rcv *otlp.Receiver
	api *httptest.Server
	hub *tail.Hub[storage.LogRecord]
}

func setupLogs(t *testing.T, tailBuffer int) *logsStack {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 2 * 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	store := logstore.New(pool, parts)
	hub := tail.New[storage.LogRecord](tail.Config{Buffer: tailBuffer})
	pipe, err := pipeline.NewLogs(pipeline.DefaultLogConfig(), pipeline.LogOptions{Writer: store, Committed: querylogs.Publisher(hub)})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := otlp.New(otlp.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}, otlp.Options{Logs: pipe})
	if err != nil {
		t.Fatal(err)
	}
	pipeCtx, stopPipe := context.WithCancel(ctx)
	rcvCtx, stopRcv := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = pipe.Run(pipeCtx) })
	rcvDone := make(chan struct{})
	go func() { defer close(rcvDone); _ = rcv.Run(rcvCtx) }()

	logsAPI := New(querylogs.New(store, querylogs.Config{MaxLookback: 48 * time.Hour}),
		Options{Tail: hub, AllowedOrigins: []string{"https://ui.example"}, WriteTimeout: time.Second})
	mux := http.NewServeMux()
	logsAPI.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
		stopRcv()
		<-rcvDone
		stopPipe()
		wg.Wait()
	})
	return &logsStack{rcv: rcv, api: srv, hub: hub}
}

// provider returns an OTel SDK logger provider exporting synchronously
// over gRPC or HTTP to the stack, as service.
func (s *logsStack) provider(t *testing.T, transport, service string) *sdklog.LoggerProvider {
	t.Helper()
	ctx := context.Background()
	var exp sdklog.Exporter
	var err error
	if transport == "grpc" {
		exp, err = otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(s.rcv.GRPCAddr()), otlploggrpc.WithInsecure())
	} else {
		exp, err = otlploghttp.New(ctx, otlploghttp.WithEndpoint(s.rcv.HTTPAddr()), otlploghttp.WithInsecure())
	}
	if err != nil {
		t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)),
		sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", service), attribute.String("host.name", "node-1"))))
	t.Cleanup(func() { _ = lp.Shutdown(context.Background()) })
	return lp
}

// emit sends one record; the simple processor exports it before
// returning, and the receiver acknowledges only after commit.
func emit(t *testing.T, ctx context.Context, l otellog.Logger, sev otellog.Severity, body attribute.Value, attrs ...attribute.KeyValue) {
	t.Helper()
	var r otellog.Record
	r.SetTimestamp(time.Now())
	r.SetObservedTimestamp(time.Now())
	r.SetSeverity(sev)
	r.SetSeverityText(strings.ToUpper(sev.String()))
	r.SetBody(body)
	r.AddAttributes(attrs...)
	l.Emit(ctx, r)
}

type logsAnswer struct {
	Data []struct {
		Timestamp      time.Time      `json:"timestamp"`
		Service        string         `json:"service"`
		SeverityNumber int            `json:"severity_number"`
		SeverityText   string         `json:"severity_text"`
		Body           any            `json:"body"`
		Attributes     map[string]any `json:"attributes"`
		Resource       map[string]any `json:"resource"`
		TraceID        string         `json:"trace_id"`
		SpanID         string         `json:"span_id"`
	} `json:"data"`
	NextCursor string              `json:"next_cursor"`
	Errors     []api.EnvelopeError `json:"errors"`
}

func (s *logsStack) get(t *testing.T, path string) (int, logsAnswer) {
	t.Helper()
	resp, err := http.Get(s.api.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var a logsAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return resp.StatusCode, a
}

func bodies(a logsAnswer) []string {
	var out []string
	for _, d := range a.Data {
		out = append(out, fmt.Sprint(d.Body))
	}
	return out
}

var (
	traceA = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	spanA  = trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	traceB = trace.TraceID{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01}
	spanB  = trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
)

func spanCtx(tid trace.TraceID, sid trace.SpanID) context.Context {
	return trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
}

func TestLogsSearch(t *testing.T) {
	s := setupLogs(t, 64)
	checkout := s.provider(t, "grpc", "checkout").Logger("checkout")
	gateway := s.provider(t, "http", "gateway").Logger("winston")

	ctxA, ctxB := spanCtx(traceA, spanA), spanCtx(traceB, spanB)
	emit(t, ctxA, checkout, otellog.SeverityInfo, attribute.StringValue("cart loaded"), attribute.String("cart.id", "c-1"))
	emit(t, ctxA, checkout, otellog.SeverityWarn, attribute.StringValue("payment gateway timeout, retrying"))
	emit(t, ctxA, checkout, otellog.SeverityError, attribute.StringValue("用户登录失败：密码错误"))
	emit(t, ctxB, checkout, otellog.SeverityInfo, attribute.StringValue("Connection refused by inventory"))
	emit(t, ctxB, gateway, otellog.SeverityInfo, attribute.StringValue(
		`{"level":"info","message":"request completed","requestId":"req-42","method":"POST","path":"/api/orders","statusCode":500,"duration":120}`))
	emit(t, context.Background(), gateway, otellog.SeverityInfo, attribute.StringValue(
		`{"level":"info","message":"request completed","requestId":"req-43","method":"GET","path":"/api/orders","statusCode":200,"duration":8}`))
	emit(t, context.Background(), gateway, otellog.SeverityDebug, attribute.MapValue(
		attribute.String("requestId", "req-44"), attribute.Int("statusCode", 404)))
	// A token longer than the indexed 64 bytes.
	long := strings.Repeat("0123456789abcdef", 5)
	emit(t, context.Background(), gateway, otellog.SeverityDebug, attribute.StringValue("uploaded blob "+long+" to storage"))

	hexA := fmt.Sprintf("%x", traceA[:])
	cases := []struct {
		name, query string
		want        []string // bodies, newest first
	}{
		{"trace id", "trace_id=" + hexA, []string{"用户登录失败：密码错误", "payment gateway timeout, retrying", "cart loaded"}},
		{"span id", fmt.Sprintf("span_id=%x", spanB[:]) + "&service=checkout", []string{"Connection refused by inventory"}},
		{"english word any case", "q=TIMEOUT", []string{"payment gateway timeout, retrying"}},
		{"phrase", "q=%22connection+refused%22", []string{"Connection refused by inventory"}},
		{"phrase out of order", "q=%22refused+connection%22", nil},
		{"chinese word", "q=登录", []string{"用户登录失败：密码错误"}},
		{"chinese and english", "q=密码+错误", []string{"用户登录失败：密码错误"}},
		{"token too long to index", "q=" + strings.ToUpper(long), []string{"uploaded blob " + long + " to storage"}},
		{"long token and word", "q=blob+" + long, []string{"uploaded blob " + long + " to storage"}},
		{"long token prefix", "q=" + long[:70], nil},
		{"severity name", "severity=warn", []string{"用户登录失败：密码错误", "payment gateway timeout, retrying"}},
		{"severity number", "severity=17", []string{"用户登录失败：密码错误"}},
		{"log attribute", "attr.cart.id=c-1", []string{"cart loaded"}},
		{"json body fields", "attr.statusCode=500&attr.method=POST", []string{`{"level":"info","message":"request completed","requestId":"req-42","method":"POST","path":"/api/orders","statusCode":500,"duration":120}`}},
		{"map body field", "attr.requestId=req-44", []string{"map[requestId:req-44 statusCode:404]"}},
		{"resource attribute", "attr.host.name=node-1&service=gateway&severity=info", []string{
			`{"level":"info","message":"request completed","requestId":"req-43","method":"GET","path":"/api/orders","statusCode":200,"duration":8}`,
			`{"level":"info","message":"request completed","requestId":"req-42","method":"POST","path":"/api/orders","statusCode":500,"duration":120}`}},
		{"unknown service", "service=nope", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, a := s.get(t, "/api/logs?"+c.query)
			if code != http.StatusOK {
				t.Fatalf("status %d: %+v", code, a.Errors)
			}
			if got := bodies(a); strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("got %q\nwant %q", got, c.want)
			}
		})
	}

	code, a := s.get(t, "/api/traces/"+hexA+"/logs")
	if code != http.StatusOK || len(a.Data) != 3 {
		t.Fatalf("trace logs: %d %q", code, bodies(a))
	}
	first := a.Data[0]
	if first.Body != "cart loaded" || first.TraceID != hexA || first.SpanID != fmt.Sprintf("%x", spanA[:]) ||
		first.Service != "checkout" || first.SeverityNumber != 9 || first.SeverityText != "INFO" ||
		first.Attributes["cart.id"] != "c-1" || first.Resource["host.name"] != "node-1" {
		t.Fatalf("trace logs: first record %+v", first)
	}
}

func TestLogsBadParameters(t *testing.T) {
	s := setupLogs(t, 64)
	cases := []struct{ query, msg string }{
		{"severity=loud", `parameter 'severity' "loud" is not a severity number`},
		{"severity=25", "parameter 'severity' must be a severity number from 1 to 24"},
		{"trace_id=xyz", "parameter 'trace_id' must be 32 hex digits, got 3 characters"},
		{"span_id=zzzzzzzzzzzzzzzz", "parameter 'span_id' must be hexadecimal"},
		{"limit=0", "parameter 'limit' must be an integer from 1 to 1000"},
		{"cursor=abc", "parameter 'cursor' is not a cursor returned by this API"},
		{"start=yesterday", "parameter 'start' must be an RFC 3339 time or Unix seconds"},
		{"start=2030-01-02T00:00:00Z&end=2030-01-01T00:00:00Z", "parameter 'start' is after 'end'"},
		{"q=%22open", "parameter 'q' has an unterminated quoted phrase"},
		{"colour=red", "parameter 'colour' is unknown"},
		{"service=a&service=b", "parameter 'service' must be given once"},
		{"attr.=x", "parameter 'attr.' needs a key after 'attr.'"},
		{"q=%zz", "malformed query string"},
	}
	for _, c := range cases {
		code, a := s.get(t, "/api/logs?"+c.query)
		if code != http.StatusBadRequest || len(a.Errors) != 1 || !strings.HasPrefix(a.Errors[0].Msg, c.msg) {
			t.Errorf("%s: %d %+v, want 400 %q", c.query, code, a.Errors, c.msg)
		}
	}
	if code, a := s.get(t, "/api/traces/zz/logs"); code != http.StatusBadRequest {
		t.Errorf("bad trace id: %d %+v", code, a.Errors)
	}
}

// TestLogsPaginationStable pages through records with a small limit while
// newer records keep arriving: every record older than the first page is
// seen exactly once, in order.
func TestLogsPaginationStable(t *testing.T) {
	s := setupLogs(t, 64)
	l := s.provider(t, "grpc", "pager").Logger("p")
	const n = 23
	for i := range n {
		emit(t, context.Background(), l, otellog.SeverityInfo, attribute.StringValue(fmt.Sprintf("record %02d", i)))
	}
	var got []string
	path := "/api/logs?service=pager&limit=5"
	for page := 0; ; page++ {
		code, a := s.get(t, path)
		if code != http.StatusOK {
			t.Fatalf("page %d: %d %+v", page, code, a.Errors)
		}
		got = append(got, bodies(a)...)
		// New records arrive between pages; they are newer than the
		// cursor and must not shift the pages that follow.
		emit(t, context.Background(), l, otellog.SeverityInfo, attribute.StringValue(fmt.Sprintf("late %d", page)))
		if a.NextCursor == "" {
			break
		}
		path = "/api/logs?service=pager&limit=5&cursor=" + url.QueryEscape(a.NextCursor)
		if page > 10 {
			t.Fatal("too many pages")
		}
	}
	if len(got) != n {
		t.Fatalf("got %d records: %q", len(got), got)
	}
	for i, b := range got {
		if want := fmt.Sprintf("record %02d", n-1-i); b != want {
			t.Fatalf("record %d: %q, want %q (all: %q)", i, b, want, got)
		}
	}
}

func (s *logsStack) dialTail(t *testing.T, query string, header http.Header) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(s.api.URL, "http") + "/api/logs/tail?" + query
	conn, resp, err := websocket.DefaultDialer.Dial(u, header)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", u, err, resp)
	}
	resp.Body.Close()
	t.Cleanup(func() { conn.Close() })
	// The subscription exists once the handshake is answered.
	return conn
}

func TestLogsTail(t *testing.T) {
	s := setupLogs(t, 64)
	conn := s.dialTail(t, "service=checkout&severity=warn&q=boom", nil)
	checkout := s.provider(t, "grpc", "checkout").Logger("c")
	other := s.provider(t, "http", "other").Logger("o")

	start := time.Now()
	emit(t, context.Background(), checkout, otellog.SeverityError, attribute.StringValue("boom 1"))
	emit(t, context.Background(), checkout, otellog.SeverityInfo, attribute.StringValue("boom but only info"))
	emit(t, context.Background(), other, otellog.SeverityError, attribute.StringValue("boom elsewhere"))
	emit(t, context.Background(), checkout, otellog.SeverityWarn, attribute.StringValue("no match here"))
	emit(t, context.Background(), checkout, otellog.SeverityFatal, attribute.StringValue("BOOM 2"))

	want := []string{"boom 1", "BOOM 2"}
	_ = conn.SetReadDeadline(start.Add(time.Second))
	for _, w := range want {
		var f struct {
			Type   string `json:"type"`
			Record struct {
				Body    string `json:"body"`
				Service string `json:"service"`
			} `json:"record"`
		}
		if err := conn.ReadJSON(&f); err != nil {
			t.Fatalf("waiting for %q: %v", w, err)
		}
		if f.Type != "record" || f.Record.Body != w || f.Record.Service != "checkout" {
			t.Fatalf("got %+v, want record %q", f, w)
		}
	}
	// Nothing else arrives.
	_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, msg, err := conn.ReadMessage(); err == nil {
		t.Fatalf("unexpected frame %s", msg)
	}
}

func TestLogsTailOrigin(t *testing.T) {
	s := setupLogs(t, 64)
	u := "ws" + strings.TrimPrefix(s.api.URL, "http") + "/api/logs/tail"
	_, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err %v, resp %v", err, resp)
	}
	resp.Body.Close()
	s.dialTail(t, "", http.Header{"Origin": {"https://ui.example"}}).Close()
	s.dialTail(t, "", http.Header{"Origin": {s.api.URL}}).Close()
	code, a := s.get(t, "/api/logs/tail?severity=nope")
	if code != http.StatusBadRequest {
		t.Fatalf("bad filter: %d %+v", code, a.Errors)
	}
	if code, _ := s.get(t, "/api/logs/tail"); code != http.StatusBadRequest {
		t.Fatalf("plain GET: %d", code)
	}
}

// TestLogsTailSlowClient measures ingest with and without a subscriber
// that never reads: the hub drops for it instead of blocking the commit
// path, so the rate stays comparable.
func TestLogsTailSlowClient(t *testing.T) {
	s := setupLogs(t, 8)
	l := s.provider(t, "grpc", "flood").Logger("f")
	body := attribute.StringValue(strings.Repeat("x", 2000))
	run := func() time.Duration {
		start := time.Now()
		for range 150 {
			emit(t, context.Background(), l, otellog.SeverityInfo, body)
		}
		return time.Since(start)
	}
	base := run()
	conn := s.dialTail(t, "service=flood", nil) // never read
	_ = conn
	slow := run()
	t.Logf("150 exports: %v without a tail client, %v with one that never reads", base, slow)
	if slow > 3*base+time.Second {
		t.Fatalf("a client that never reads slowed ingest from %v to %v", base, slow)
	}
}
