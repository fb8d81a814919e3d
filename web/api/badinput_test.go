package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/ingest/pipeline"
	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/internal/tail"
	querylogs "github.com/vigil-obs/vigil/query/logs"
	querymetrics "github.com/vigil-obs/vigil/query/metrics"
	"github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/query/services"
	"github.com/vigil-obs/vigil/query/traces"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/logstore"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
	"github.com/vigil-obs/vigil/storage/postgres/servicestore"
	"github.com/vigil-obs/vigil/storage/postgres/spanstore"
	"github.com/vigil-obs/vigil/web/api"
	"github.com/vigil-obs/vigil/web/api/jaegerapi"
	"github.com/vigil-obs/vigil/web/api/logsapi"
	"github.com/vigil-obs/vigil/web/api/promapi"
)

// The ids of the stored fixtures.
const (
	fixtureTraceID = "5b8efff798038103d269b633813fc60c"
	fixtureSpanID  = "eee19b7ec3c1b174"
)

// apiStack is every query API of this package mounted on one mux, as
// cmd/vigil mounts them, over a real migrated database holding one trace,
// one log record and one metric series, so that every route runs its SQL.
type apiStack struct {
	mux  *http.ServeMux
	logs *syncBuffer // what the APIs logged
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a
// logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func setupAPIs(tb testing.TB) apiStack {
	tb.Helper()
	pool, _ := pgtest.NewPool(tb)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		tb.Fatalf("partitions: %v", err)
	}
	now := time.Now()
	var tid pcommon.TraceID
	var sid pcommon.SpanID
	copy(tid[:], mustHex(tb, fixtureTraceID))
	copy(sid[:], mustHex(tb, fixtureSpanID))

	spans := spanstore.New(pool, parts)
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(tid)
	sp.SetSpanID(sid)
	sp.SetName("GET /cart")
	sp.SetKind(ptrace.SpanKindServer)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Minute)))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Minute + 20*time.Millisecond)))
	sp.Attributes().PutStr("http.method", "GET")
	if err := spans.WriteTraces(ctx, []ptrace.Traces{td}); err != nil {
		tb.Fatalf("write traces: %v", err)
	}

	logStore := logstore.New(pool, parts)
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Minute)))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Minute)))
	lr.SetSeverityNumber(plog.SeverityNumberError)
	lr.Body().SetStr("payment gateway timeout")
	lr.Attributes().PutStr("cart.id", "c-1")
	lr.SetTraceID(tid)
	lr.SetSpanID(sid)
	if err := logStore.WriteLogs(ctx, []plog.Logs{ld}); err != nil {
		tb.Fatalf("write logs: %v", err)
	}

	metrics := metricstore.New(pool, parts, metricstore.Options{})
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("queue.depth")
	g.SetDescription("Jobs waiting.")
	gauge := g.SetEmptyGauge()
	for i := range 10 {
		dp := gauge.DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(i-10) * 15 * time.Second)))
		dp.SetDoubleValue(float64(i))
		dp.Attributes().PutStr("queue", "emails")
	}
	if err := pipeline.NewOTLPMetrics(metrics, pipeline.OTLPMetricsConfig{}, nil).ConsumeMetrics(ctx, md); err != nil {
		tb.Fatalf("write metrics: %v", err)
	}
	engine, err := promql.New(metrics, promql.Config{Timeout: 10 * time.Second}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = engine.Close() })
	hub := tail.New[storage.LogRecord](tail.Config{})
	tb.Cleanup(hub.Close)

	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mux := http.NewServeMux()
	jaegerapi.New(traces.New(spans, traces.Config{}), logger).Register(mux)
	logsapi.New(querylogs.New(logStore, querylogs.Config{}), logsapi.Options{Tail: hub, Logger: logger}).Register(mux)
	api.NewServices(services.New(servicestore.New(pool), services.Config{}), logger).Register(mux)
	promapi.New(engine, querymetrics.New(metrics, metrics, querymetrics.Config{}), promapi.Options{Logger: logger}).Register(mux)
	return apiStack{mux: mux, logs: logs}
}

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range []byte(s[2*i : 2*i+2]) {
			switch {
			case c >= '0' && c <= '9':
				c -= '0'
			case c >= 'a' && c <= 'f':
				c -= 'a' - 10
			default:
				tb.Fatalf("bad hex %q", s)
			}
			v = v<<4 | c
		}
		b[i] = v
	}
	return b
}

// do sends one request to the stack: a GET with the query string, or a
// form POST with it as body.
func (s apiStack) do(tb testing.TB, method, path, query string) *httptest.ResponseRecorder {
	tb.Helper()
	target := path
	var body *strings.Reader
	if method == http.MethodPost {
		body = strings.NewReader(query)
	} else if query != "" {
		target += "?" + query
	}
	var r *http.Request
	if body != nil {
		r = httptest.NewRequest(method, target, body)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	w := httptest.NewRecorder()
	s.mux.ServeHTTP(w, r.WithContext(ctx))
	return w
}

// answer is the error part of the three envelopes: Jaeger's and the log
// API's ({"errors":[{"code","msg"}]}) and Prometheus's
// ({"status","errorType","error"}).
type answer struct {
	Errors []struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"errors"`
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

// storageLeaks are fragments of PostgreSQL error text that no answer may
// carry (unless the request itself holds them, and the answer quotes it).
var storageLeaks = []string{"SQLSTATE", "invalid byte sequence", "ERROR:", "pgx", "postgres"}

// leak returns the fragment of storage text body carries that the
// request does not, or "".
func leak(body, request string) string {
	if u, err := url.QueryUnescape(request); err == nil {
		request += u
	}
	for _, l := range storageLeaks {
		if strings.Contains(body, l) && !strings.Contains(request, l) {
			return l
		}
	}
	return ""
}

// badRoute is an API route and its parameters; base holds valid values
// of the other parameters the route needs to reach its parser.
type badRoute struct {
	method, path string // path may hold {} for the path parameter
	pathParam    string // the name of that parameter
	params       []string
	base         url.Values
	prom         bool // Prometheus envelope
}

var logFilter = []string{"service", "severity", "q", "trace_id", "span_id", "start", "end", "attr.cart.id", "prettyPrint"}

var badRoutes = []badRoute{
	{method: "GET", path: "/api/services", params: []string{"prettyPrint"}},
	{method: "GET", path: "/api/services/{}/operations", pathParam: "service", params: []string{"prettyPrint"}},
	{method: "GET", path: "/api/operations", params: []string{"service", "spanKind", "prettyPrint"}, base: url.Values{"service": {"checkout"}}},
	{method: "GET", path: "/api/traces", params: []string{"service", "operation", "tag", "tags", "start", "end", "lookback", "minDuration", "maxDuration", "limit", "traceID", "prettyPrint"}, base: url.Values{"service": {"checkout"}}},
	{method: "GET", path: "/api/traces/{}", pathParam: "traceID", params: []string{"prettyPrint"}},
	{method: "GET", path: "/api/traces/{}/logs", pathParam: "traceID", params: []string{"prettyPrint"}},
	{method: "GET", path: "/api/vigil/services", params: []string{"prettyPrint"}},
	{method: "GET", path: "/api/logs", params: append([]string{"limit", "cursor"}, logFilter...)},
	{method: "GET", path: "/api/logs/histogram", params: append([]string{"buckets"}, logFilter...)},
	{method: "GET", path: "/api/logs/tail", params: logFilter},
	{method: "GET", path: "/api/v1/query", params: []string{"query", "time", "timeout"}, base: url.Values{"query": {"queue_depth"}}, prom: true},
	{method: "POST", path: "/api/v1/query", params: []string{"query", "time", "timeout"}, base: url.Values{"query": {"queue_depth"}}, prom: true},
	{method: "GET", path: "/api/v1/query_range", params: []string{"query", "start", "end", "step", "timeout"}, base: url.Values{"query": {"queue_depth"}, "start": {"0"}, "end": {"60"}, "step": {"15"}}, prom: true},
	{method: "POST", path: "/api/v1/query_range", params: []string{"query", "start", "end", "step", "timeout"}, base: url.Values{"query": {"queue_depth"}, "start": {"0"}, "end": {"60"}, "step": {"15"}}, prom: true},
	{method: "GET", path: "/api/v1/series", params: []string{"match[]", "start", "end", "limit"}, base: url.Values{"match[]": {"queue_depth"}}, prom: true},
	{method: "POST", path: "/api/v1/series", params: []string{"match[]", "start", "end", "limit"}, base: url.Values{"match[]": {"queue_depth"}}, prom: true},
	{method: "GET", path: "/api/v1/labels", params: []string{"match[]", "start", "end", "limit"}, prom: true},
	{method: "POST", path: "/api/v1/labels", params: []string{"match[]", "start", "end", "limit"}, prom: true},
	{method: "GET", path: "/api/v1/label/{}/values", pathParam: "name", params: []string{"match[]", "start", "end", "limit"}, prom: true},
	{method: "GET", path: "/api/v1/metadata", params: []string{"metric", "limit", "limit_per_metric"}, prom: true},
}

// paramLimit is the documented byte limit of a parameter.
func paramLimit(name string, prom bool) int {
	if prom && (name == "query" || name == "match[]") {
		return api.MaxExprBytes
	}
	return api.MaxParamBytes
}

// TestBadParameterValues sends a NUL byte, invalid UTF-8 and an over-long
// value in every parameter of every route and expects 400 naming the
// parameter, in the route's own envelope, without storage text.
func TestBadParameterValues(t *testing.T) {
	s := setupAPIs(t)
	for _, rt := range badRoutes {
		names := rt.params
		if rt.pathParam != "" {
			names = append([]string{rt.pathParam}, names...)
		}
		for _, name := range names {
			for _, bad := range []struct{ kind, value string }{
				{"nul", "a\x00b"},
				{"invalid utf-8", "a\xffb"},
				{"truncated utf-8", "\xe7\x99"},
				{"too long", strings.Repeat("a", paramLimit(name, rt.prom)+1)},
			} {
				t.Run(rt.method+" "+rt.path+" "+name+" "+bad.kind, func(t *testing.T) {
					path, q := rt.path, url.Values{}
					for k, v := range rt.base {
						q[k] = v
					}
					if name == rt.pathParam {
						path = strings.Replace(path, "{}", url.PathEscape(bad.value), 1)
					} else {
						path = strings.Replace(path, "{}", "x", 1)
						q.Set(name, bad.value)
					}
					want := name
					if rt.method == http.MethodPost && len(q.Encode()) > api.MaxExprBytes {
						want = "body" // the form body's own bound comes first
					}
					checkBadParam(t, s, rt, path, q.Encode(), want)
				})
			}
		}
	}
}

// TestBadEscapedValues: values whose raw text is clean but which decode
// to a NUL byte or invalid UTF-8 (JSON and PromQL escapes, the U__ label
// name escaping) are refused as well.
func TestBadEscapedValues(t *testing.T) {
	s := setupAPIs(t)
	jaeger, prom := badRoute{}, badRoute{prom: true}
	tests := []struct {
		name        string
		rt          badRoute
		method      string
		path, query string
		param       string
	}{
		{"tags json nul value", jaeger, "GET", "/api/traces", "service=checkout&tags=" + url.QueryEscape(`{"k":"a\u0000"}`), "tags"},
		{"tags json nul key", jaeger, "GET", "/api/traces", "service=checkout&tags=" + url.QueryEscape(`{"\u0000":"v"}`), "tags"},
		{"query equal nul", prom, "GET", "/api/v1/query", "query=" + url.QueryEscape(`queue_depth{queue="\x00"}`), "query"},
		{"query regex nul", prom, "GET", "/api/v1/query", "query=" + url.QueryEscape(`{job=~"\\x00"}`), "query"},
		{"query regex alternation nul", prom, "POST", "/api/v1/query", "query=" + url.QueryEscape(`{job=~"a|\\x00"}`), "query"},
		{"query invalid utf-8", prom, "GET", "/api/v1/query", "query=" + url.QueryEscape(`queue_depth{queue="\xff"}`), "query"},
		{"query label name nul", prom, "GET", "/api/v1/query", "query=" + url.QueryEscape(`{"a\x00"="b"}`), "query"},
		{"query nested selector", prom, "GET", "/api/v1/query", "query=" + url.QueryEscape(`sum(rate(x{a="\x00"}[5m]))`), "query"},
		{"range query regex nul", prom, "GET", "/api/v1/query_range", "start=0&end=60&step=15&query=" + url.QueryEscape(`{job=~"\\x00"}`), "query"},
		{"series match nul", prom, "GET", "/api/v1/series", "match[]=" + url.QueryEscape(`{job="\x00"}`), "match[]"},
		{"series match regex nul", prom, "POST", "/api/v1/series", "match[]=" + url.QueryEscape(`{job=~"\\x00"}`), "match[]"},
		{"labels match nul", prom, "GET", "/api/v1/labels", "match[]=" + url.QueryEscape(`{job=~"\\x00"}`), "match[]"},
		{"label values match nul", prom, "GET", "/api/v1/label/job/values", "match[]=" + url.QueryEscape(`{job=~"\\x00"}`), "match[]"},
		{"label name escaped nul", prom, "GET", "/api/v1/label/U___0_/values", "", "name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := tc.rt
			rt.method = tc.method
			checkBadParam(t, s, rt, tc.path, tc.query, tc.param)
		})
	}
}

func checkBadParam(t *testing.T, s apiStack, rt badRoute, path, query, param string) {
	t.Helper()
	w := s.do(t, rt.method, path, query)
	body := w.Body.String()
	var a answer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatalf("%d %q: not JSON: %v", w.Code, body, err)
	}
	if w.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %s", w.Code, body)
	}
	if rt.prom {
		if a.Status != "error" || a.ErrorType != "bad_data" || !strings.Contains(a.Error, `"`+param+`"`) {
			t.Fatalf("answer %s, want bad_data naming %q", body, param)
		}
	} else if len(a.Errors) != 1 || a.Errors[0].Code != 400 || !strings.Contains(a.Errors[0].Msg, "parameter '"+param+"'") {
		t.Fatalf("answer %s, want one error naming parameter '%s'", body, param)
	}
	if l := leak(body, path+"?"+query); l != "" {
		t.Fatalf("answer %s carries %q", body, l)
	}
}

// TestGoodParametersStillWork: the routes of the bad-input tests answer
// 200 with valid values, so that the tests above see refusals of the
// values and not of the routes.
func TestGoodParametersStillWork(t *testing.T) {
	s := setupAPIs(t)
	for _, rt := range badRoutes {
		if rt.path == "/api/logs/tail" {
			continue // needs a WebSocket
		}
		path := rt.path
		switch rt.pathParam {
		case "service":
			path = strings.Replace(path, "{}", "checkout", 1)
		case "traceID":
			path = strings.Replace(path, "{}", fixtureTraceID, 1)
		case "name":
			path = strings.Replace(path, "{}", "queue", 1)
		}
		t.Run(rt.method+" "+path, func(t *testing.T) {
			w := s.do(t, rt.method, path, rt.base.Encode())
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body.String())
			}
		})
	}
}

// fuzzRoutes are the routes FuzzAPIParameters picks from; {} is the path
// parameter.
var fuzzRoutes = []struct{ method, path string }{
	{"GET", "/api/services"},
	{"GET", "/api/services/{}/operations"},
	{"GET", "/api/operations"},
	{"GET", "/api/traces"},
	{"GET", "/api/traces/{}"},
	{"GET", "/api/traces/{}/logs"},
	{"GET", "/api/vigil/services"},
	{"GET", "/api/logs"},
	{"GET", "/api/logs/histogram"},
	{"GET", "/api/logs/tail"},
	{"GET", "/api/v1/query"},
	{"POST", "/api/v1/query"},
	{"GET", "/api/v1/query_range"},
	{"POST", "/api/v1/query_range"},
	{"GET", "/api/v1/series"},
	{"POST", "/api/v1/series"},
	{"GET", "/api/v1/labels"},
	{"POST", "/api/v1/labels"},
	{"GET", "/api/v1/label/{}/values"},
	{"GET", "/api/v1/metadata"},
}

// maxFuzzRequest caps the path parameter and query string of one fuzzed
// request together: past the parameter limits, so that over-long values
// are tried, while keeping each run cheap.
const maxFuzzRequest = 3 * api.MaxParamBytes

// FuzzAPIParameters sends arbitrary parameters to every route of every
// API over a real database and requires an answer that is not a 500 and
// carries no storage text. What it finds is kept in
// testdata/fuzz/FuzzAPIParameters.
func FuzzAPIParameters(f *testing.F) {
	seeds := []struct {
		route       int
		seg, params string
	}{
		{0, "", ""},
		{1, "checkout", "prettyPrint=true"},
		{1, "\x00", ""},
		{1, "\xff\xfe", ""},
		{2, "", "service=%00&spanKind=server"},
		{2, "", "service=%C3%28"},
		{3, "", "service=checkout&tag=http.method:GET&tags=%7B%22k%22%3A%22%5Cu0000%22%7D"},
		{3, "", "service=checkout&operation=%00&lookback=1h&limit=5&minDuration=1ms"},
		{3, "", "service=" + strings.Repeat("s", api.MaxParamBytes+1)},
		{3, "", "traceID=" + fixtureTraceID + "&traceID=%00"},
		{4, fixtureTraceID, ""},
		{4, "%00", ""},
		{5, fixtureTraceID, ""},
		{6, "", "prettyPrint=%FF"},
		{7, "", "service=checkout&q=timeout&attr.cart.id=c-1&severity=warn"},
		{7, "", "q=%00&attr.%00=x"},
		{8, "", "service=checkout&buckets=10"},
		{9, "", "service=%00"},
		{10, "", "query=queue_depth"},
		{10, "", "query=" + url.QueryEscape(`{job=~"\\x00"}`)},
		{11, "", "query=" + url.QueryEscape(`queue_depth{queue="\x00"}`)},
		{12, "", "query=rate(queue_depth[1m])&start=0&end=600&step=15"},
		{13, "", "query=" + url.QueryEscape(`{a="\xff"}`) + "&start=0&end=60&step=15"},
		{14, "", "match[]=queue_depth"},
		{15, "", "match[]=" + url.QueryEscape(`{job=~"a|\\x00"}`)},
		{16, "", "match[]=" + url.QueryEscape(`{"\x00"="a"}`)},
		{17, "", "match[]=%00"},
		{18, "queue", ""},
		{18, "%00", ""},
		{18, "U___0_", ""},
		{19, "", "metric=%00&limit=1"},
		{19, "", "metric=" + strings.Repeat("m", 5000)},
	}
	for _, s := range seeds {
		f.Add(uint8(s.route), s.seg, s.params)
	}
	s := setupAPIs(f)
	f.Fuzz(func(t *testing.T, route uint8, seg, params string) {
		if len(seg)+len(params) > maxFuzzRequest {
			t.Skip("over the fuzzing size cap")
		}
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		if strings.Contains(rt.path, "{}") && (seg == "" || strings.ContainsAny(seg, "/?#")) {
			t.Skip("not a path segment")
		}
		path := strings.Replace(rt.path, "{}", url.PathEscape(seg), 1)
		r := &http.Request{
			Method:     rt.method,
			URL:        &url.URL{Path: strings.Replace(rt.path, "{}", seg, 1), RawPath: path, RawQuery: params},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header:     http.Header{},
			Host:       "127.0.0.1",
			RemoteAddr: "127.0.0.1:40000",
			Body:       http.NoBody,
		}
		if rt.method == http.MethodPost {
			r.URL.RawQuery = ""
			r.Body = readCloser{strings.NewReader(params)}
			r.ContentLength = int64(len(params))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		w := httptest.NewRecorder()
		s.mux.ServeHTTP(w, r.WithContext(ctx))
		body := w.Body.String()
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s?%s: 500 %s\nlog:\n%s", rt.method, path, params, body, s.logs.String())
		}
		if l := leak(body, seg+"?"+params); l != "" {
			t.Fatalf("%s %s?%s: %d %s carries %q", rt.method, path, params, w.Code, body, l)
		}
	})
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
