package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/web/ui"
)

// xssPayload is a span attribute and log body that must show as text.
const xssPayload = `<img src=x onerror="window.__xss=1;alert(1)">`

// screenshotDir holds the pages' screenshots (git-ignored test artifacts).
const screenshotDir = "testdata/screenshots"

// chromiumPath returns the Chromium to drive. Without one the browser
// tests skip, unless CI is set: there they must run.
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("VIGIL_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found (install Debian's chromium package; .ci/run does)")
	}
	t.Skip("chromium not found: browser tests skipped")
	return ""
}

// requireUI fails (CI) or skips when the binary embeds only the placeholder.
func requireUI(t testing.TB) {
	t.Helper()
	if ui.Built() {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("the web UI is not built: run make ui before the Go tests")
	}
	t.Skip("the web UI is not built (make ui): browser tests skipped")
}

// browser is one headless Chromium tab plus what the page reported.
type browser struct {
	ctx     context.Context
	mu      sync.Mutex
	console []string
	dialogs []string
}

func newBrowser(t testing.TB, execPath string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.NoSandbox, // root in containers and CI
		chromedp.WindowSize(1440, 900),
		chromedp.Flag("lang", "en-US"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	b := &browser{ctx: ctx}
	// Start the browser, then watch dialogs and console messages.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, ev.Message)
			b.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, string(m.Type)+": "+m.Text)
			b.mu.Unlock()
		}
	}()
	return b
}

// do runs steps with a deadline, saving a screenshot named after the
// test when they fail.
func (b *browser) do(t testing.TB, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.screenshot(t, "failed-"+strings.ReplaceAll(t.Name(), "/", "-"))
		t.Fatalf("browser: %v", err)
	}
}

func eval[T any](t testing.TB, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it is truthy.
func (b *browser) waitFor(t testing.TB, predicate string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.screenshot(t, "failed-"+strings.ReplaceAll(t.Name(), "/", "-"))
		t.Fatalf("waiting for %s: %v", predicate, err)
	}
}

func (b *browser) screenshot(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
	}
}

// uiSeed is what seedUI sent.
type uiSeed struct {
	traceID     string
	spanIDs     map[string]string // operation → span id
	spans       int
	traceLogs   int
	logProvider func(service string) otellog.Logger
}

// seedUI sends one five-span trace over two services (one span failing,
// one carrying the hostile attribute), logs in and outside that trace,
// and a counter exported three times, all through the OTel SDK.
func seedUI(t *testing.T, ts *testServer) *uiSeed {
	t.Helper()
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(ts.grpcAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	checkout := sdkProvider(t, exp, "checkout").Tracer("checkout-http")
	payment := sdkProvider(t, exp, "payment").Tracer("payment-grpc")

	logExp, err := otlploghttp.New(ctx, otlploghttp.WithEndpoint(ts.otlpHTTP), otlploghttp.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	providers := map[string]*sdklog.LoggerProvider{}
	var pmu sync.Mutex
	logger := func(service string) otellog.Logger {
		pmu.Lock()
		defer pmu.Unlock()
		lp, ok := providers[service]
		if !ok {
			lp = sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(logExp)),
				sdklog.WithResource(resource.NewSchemaless(semconv.ServiceName(service))))
			providers[service] = lp
			t.Cleanup(func() { _ = lp.Shutdown(context.Background()) })
		}
		return lp.Logger("ui-test")
	}
	emitLog := func(ctx context.Context, service string, sev otellog.Severity, body attribute.Value, attrs ...attribute.KeyValue) {
		var r otellog.Record
		r.SetTimestamp(time.Now())
		r.SetObservedTimestamp(time.Now())
		r.SetSeverity(sev)
		r.SetSeverityText(strings.ToUpper(sev.String()))
		r.SetBody(body)
		r.AddAttributes(attrs...)
		logger(service).Emit(ctx, r)
	}

	seed := &uiSeed{spanIDs: map[string]string{}, logProvider: logger}
	start := func(ctx context.Context, tr trace.Tracer, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
		c, s := tr.Start(ctx, name, opts...)
		seed.spanIDs[name] = s.SpanContext().SpanID().String()
		seed.spans++
		return c, s
	}
	rctx, root := start(ctx, checkout, "POST /checkout", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("order.id", "A-1001"), attribute.Int("http.response.status_code", 502)))
	seed.traceID = root.SpanContext().TraceID().String()
	emitLog(rctx, "checkout", otellog.SeverityInfo, attribute.StringValue("order received"),
		attribute.String("order.id", "A-1001"))
	_, auth := start(rctx, checkout, "authenticate")
	time.Sleep(2 * time.Millisecond)
	auth.End()
	pctx, charge := start(rctx, payment, "charge card", trace.WithSpanKind(trace.SpanKindServer))
	_, db := start(pctx, payment, "SELECT cards", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", "postgresql")))
	time.Sleep(3 * time.Millisecond)
	db.End()
	charge.AddEvent("card declined", trace.WithAttributes(attribute.String("decline.code", "insufficient_funds")))
	charge.SetStatus(codes.Error, "card declined")
	emitLog(pctx, "payment", otellog.SeverityError, attribute.MapValue(
		attribute.String("msg", "card declined"), attribute.Int("amount_cents", 4200), attribute.String("html", xssPayload)))
	charge.End()
	_, render := start(rctx, checkout, "render receipt", trace.WithAttributes(
		attribute.String("xss.payload", xssPayload), attribute.String("template", "receipt.html")))
	time.Sleep(time.Millisecond)
	render.End()
	root.SetStatus(codes.Error, "payment failed")
	root.End()
	seed.traceLogs = 2
	emitLog(ctx, "checkout", otellog.SeverityWarn, attribute.StringValue("unrelated line outside any trace"))

	// A counter exported three times, a second apart, for rate().
	mexp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(ts.grpcAddr), otlpmetricgrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithResource(resource.NewSchemaless(semconv.ServiceName("checkout"))),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp, sdkmetric.WithInterval(time.Hour))))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	counter, _ := mp.Meter("ui-test").Int64Counter("demo.requests")
	for i := 0; i < 3; i++ {
		counter.Add(ctx, int64(10*(i+1)), metric.WithAttributes(attribute.String("route", "/checkout")))
		if err := mp.ForceFlush(ctx); err != nil {
			t.Fatalf("export metrics: %v", err)
		}
		if i < 2 {
			time.Sleep(time.Second)
		}
	}
	return seed
}

// TestUIBrowser drives the embedded UI in headless Chromium against a
// Vigil seeded through the OTel SDK.
func TestUIBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	requireUI(t)
	began := time.Now()
	// A short idle timeout lets "idle tail stops until asked" see it.
	ts := startServer(t, pgtest.NewDatabase(t), func(c *Config) { c.Logs.Tail.IdleTimeout = 3 * time.Second })
	seed := seedUI(t, ts)
	b := newBrowser(t, chromium)
	base := ts.httpURL

	t.Run("services", func(t *testing.T) {
		b.do(t, chromedp.Navigate(base+"/services"))
		b.waitFor(t, `[...document.querySelectorAll('.services-table .service-name')].map(e => e.textContent).join(',') === 'checkout,payment'`)
		lastSeen := eval[[]string](t, b, `[...document.querySelectorAll('.services-table tbody tr td:last-child')].map(e => e.textContent)`)
		for _, v := range lastSeen {
			if v == "–" || v == "" {
				t.Errorf("last seen %q", lastSeen)
			}
		}
		b.screenshot(t, "services")
	})

	t.Run("trace search and waterfall", func(t *testing.T) {
		b.do(t, chromedp.Navigate(base+"/traces?service=checkout&range=1h"))
		b.waitFor(t, `document.querySelectorAll('.trace-row').length === 1`)
		b.waitFor(t, `!!document.querySelector('.scatter canvas')`)
		if got := eval[string](t, b, `document.querySelector('.trace-row .root-op').textContent`); got != "POST /checkout" {
			t.Errorf("root operation %q", got)
		}
		if got := eval[string](t, b, `document.querySelector('.trace-row .span-count').textContent`); got != fmt.Sprintf("%d spans", seed.spans) {
			t.Errorf("span count %q", got)
		}
		b.screenshot(t, "traces")
		b.do(t, chromedp.Click(chromedp.CSS(".trace-row a")))
		b.waitFor(t, fmt.Sprintf(`location.pathname === '/trace/%s' && document.querySelectorAll('.span-row').length === %d`, seed.traceID, seed.spans))
		ops := eval[[]string](t, b, `[...document.querySelectorAll('.span-row .op')].map(e => e.textContent)`)
		want := []string{"POST /checkout", "authenticate", "charge card", "SELECT cards", "render receipt"}
		if !slices.Equal(ops, want) {
			t.Errorf("waterfall rows %q, want %q", ops, want)
		}
		if n := eval[int](t, b, `document.querySelectorAll('.span-row.is-error').length`); n != 2 {
			t.Errorf("%d error rows, want 2 (root and charge card)", n)
		}
		if n := eval[int](t, b, `document.querySelectorAll('.cp-seg').length`); n == 0 {
			t.Error("no critical path drawn")
		}
		b.screenshot(t, "trace")
	})

	t.Run("span details render hostile values as text", func(t *testing.T) {
		b.do(t, chromedp.Click(chromedp.CSS(fmt.Sprintf(`.span-row[data-span-id="%s"]`, seed.spanIDs["render receipt"]))))
		b.waitFor(t, `!!document.querySelector('.span-detail .span-attributes')`)
		attrs := eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('.span-detail .span-attributes tr')].map(r => [r.querySelector('th').textContent, r.querySelector('td').textContent]))`)
		if attrs["xss.payload"] != xssPayload || attrs["template"] != "receipt.html" {
			t.Errorf("attributes %q", attrs)
		}
		if n := eval[int](t, b, `document.querySelectorAll('.span-detail img, .content img').length`); n != 0 {
			t.Errorf("%d img elements made from telemetry", n)
		}
		if !strings.Contains(eval[string](t, b, `location.search`), "span="+seed.spanIDs["render receipt"]) {
			t.Error("selected span not in the URL")
		}
		b.screenshot(t, "span")
		// The failed span: status, event, and its log record.
		b.do(t, chromedp.Click(chromedp.CSS(fmt.Sprintf(`.span-row[data-span-id="%s"]`, seed.spanIDs["charge card"]))))
		b.waitFor(t, `document.querySelector('.span-detail')?.textContent.includes('card declined') && document.querySelectorAll('.span-detail .span-log').length === 1`)
		if got := eval[string](t, b, `document.querySelector('.span-detail .span-log').textContent`); !strings.Contains(got, "amount_cents") {
			t.Errorf("span log %q", got)
		}
	})

	t.Run("logs filter by trace id", func(t *testing.T) {
		b.do(t, chromedp.Navigate(base+"/logs?trace_id="+seed.traceID))
		b.waitFor(t, fmt.Sprintf(`document.querySelectorAll('.log-row').length === %d`, seed.traceLogs))
		refs := eval[[]string](t, b, `[...document.querySelectorAll('.log-row .trace-ref')].map(a => a.getAttribute('href'))`)
		if len(refs) != seed.traceLogs {
			t.Errorf("trace links %q", refs)
		}
		for _, r := range refs {
			if !strings.HasPrefix(r, "/trace/"+seed.traceID) {
				t.Errorf("trace link %q", r)
			}
		}
		b.waitFor(t, `!!document.querySelector('.histogram canvas')`)
		// The structured body expands, as text.
		b.do(t, chromedp.Click(chromedp.CSS(".log-row.sev-error .log-body .toggle")))
		b.waitFor(t, `document.querySelector('.log-row.sev-error .log-body pre')?.textContent.includes('"amount_cents": 4200')`)
		if n := eval[int](t, b, `document.querySelectorAll('.log-list img').length`); n != 0 {
			t.Errorf("%d img elements made from a log body", n)
		}
		// Without the filter the unrelated line shows too.
		b.do(t, chromedp.Navigate(base+"/logs?service=checkout"))
		b.waitFor(t, `document.querySelectorAll('.log-row').length === 2`)
		b.do(t, chromedp.Navigate(base+"/logs?trace_id="+seed.traceID))
		b.waitFor(t, `document.querySelectorAll('.log-row').length === 2`)
		b.screenshot(t, "logs")
	})

	t.Run("live tail", func(t *testing.T) {
		b.do(t, chromedp.Navigate(base+"/logs?service=tail-svc"))
		b.do(t, chromedp.Click(chromedp.CSS(`input[name="tail"]`)))
		b.waitFor(t, `document.querySelector('.tail-status')?.classList.contains('live')`)
		line := fmt.Sprintf("tailed line %d", time.Now().UnixNano())
		var r otellog.Record
		r.SetTimestamp(time.Now())
		r.SetSeverity(otellog.SeverityInfo)
		r.SetSeverityText("INFO")
		r.SetBody(attribute.StringValue(line))
		seed.logProvider("tail-svc").Emit(context.Background(), r)
		b.waitFor(t, fmt.Sprintf(`[...document.querySelectorAll('.log-row .log-body')].some(e => e.textContent === %q)`, line))
		if !strings.Contains(eval[string](t, b, `location.search`), "tail=1") {
			t.Error("tail state not in the URL")
		}
		b.screenshot(t, "tail")
	})

	t.Run("idle tail stops until asked", func(t *testing.T) {
		b.do(t, chromedp.Navigate(base+"/logs?service=quiet-svc"))
		b.do(t, chromedp.Click(chromedp.CSS(`input[name="tail"]`)))
		b.waitFor(t, `document.querySelector('.tail-status')?.classList.contains('live')`)
		// No record matches: the server closes the tail after
		// logs.tail.idle_timeout and the page offers to reconnect.
		b.waitFor(t, `document.querySelector('.tail-status')?.classList.contains('idle')`)
		b.screenshot(t, "tail-idle")
		b.do(t, chromedp.Click(chromedp.CSS(`.tail-reconnect`)))
		b.waitFor(t, `document.querySelector('.tail-status')?.classList.contains('live')`)
		b.do(t, chromedp.Click(chromedp.CSS(`input[name="tail"]`)))
	})

	t.Run("metrics rate query draws a chart", func(t *testing.T) {
		b.do(t, chromedp.Navigate(base+"/explore?range=15m"))
		b.do(t, chromedp.WaitVisible(chromedp.CSS("#promql")),
			chromedp.SendKeys(chromedp.CSS("#promql"), "rate(demo_req"))
		// Metric names complete from /api/v1/label/__name__/values.
		b.waitFor(t, `[...document.querySelectorAll('.suggestions li')].some(li => li.textContent.startsWith('demo_requests_total'))`)
		b.do(t, chromedp.SendKeys(chromedp.CSS("#promql"), kb.Tab))
		b.waitFor(t, `document.querySelector('#promql').value === 'rate(demo_requests_total'`)
		b.do(t, chromedp.SendKeys(chromedp.CSS("#promql"), "[1m])"), chromedp.Click(chromedp.CSS(".run-query")))
		b.waitFor(t, `!!document.querySelector('.result-chart .uplot canvas')`)
		b.waitFor(t, `document.querySelector('.result-chart .u-legend')?.textContent.includes('route="/checkout"')`)
		if q := eval[string](t, b, `new URLSearchParams(location.search).get('q')`); q != "rate(demo_requests_total[1m])" {
			t.Errorf("query in URL %q", q)
		}
		b.screenshot(t, "metrics")
		// A syntax error shows the API's message under the editor.
		b.do(t, chromedp.Navigate(base+"/explore?q="+strings.ReplaceAll("rate(demo_requests_total[1m]", "[", "%5B")))
		b.waitFor(t, `document.querySelector('.query-error')?.textContent.length > 0`)
	})

	t.Run("switching to Chinese", func(t *testing.T) {
		b.do(t, chromedp.Navigate(base+"/traces"))
		b.waitFor(t, `document.querySelector('a[data-nav="traces"]')?.textContent === 'Traces'`)
		_ = eval[chromedp.Void](t, b, `(() => { const s = document.querySelector('.lang-select'); s.value = 'zh-CN'; s.dispatchEvent(new Event('change', { bubbles: true })); })()`)
		b.waitFor(t, `document.querySelector('a[data-nav="traces"]').textContent === '链路追踪' && document.documentElement.lang === 'zh-CN'`)
		b.screenshot(t, "zh")
		// The dark theme, remembered like the language.
		b.do(t, chromedp.Click(chromedp.CSS(".theme-toggle")))
		b.waitFor(t, `document.documentElement.dataset.theme === 'dark' && localStorage.getItem('vigil.theme') === 'dark'`)
		b.do(t, chromedp.Navigate(base+"/trace/"+seed.traceID+"?span="+seed.spanIDs["charge card"]))
		b.waitFor(t, `!!document.querySelector('.span-detail .span-attributes')`)
		b.screenshot(t, "zh-dark")
		_ = eval[chromedp.Void](t, b, `localStorage.removeItem('vigil.theme')`)
		// Remembered across loads.
		b.do(t, chromedp.Reload())
		b.waitFor(t, `document.querySelector('a[data-nav="logs"]')?.textContent === '日志'`)
		_ = eval[chromedp.Void](t, b, `localStorage.removeItem('vigil.lang')`)
	})

	b.mu.Lock()
	defer b.mu.Unlock()
	if eval[bool](t, b, `window.__xss !== undefined`) || len(b.dialogs) > 0 {
		t.Errorf("script from telemetry ran: window.__xss set or dialogs %q", b.dialogs)
	}
	for _, m := range b.console {
		if strings.Contains(m, "Content Security Policy") || strings.Contains(m, "Refused to") {
			t.Errorf("CSP violation: %s", m)
		}
	}
	t.Logf("browser test took %v", time.Since(began).Round(time.Millisecond))
}

// TestUIBrowserLogin runs with read tokens: the UI loads, asks for the
// token, then reads the APIs and the live tail with it.
func TestUIBrowserLogin(t *testing.T) {
	chromium := chromiumPath(t)
	requireUI(t)
	ts := startServer(t, pgtest.NewDatabase(t), func(c *Config) {
		c.Auth.ReadTokens = []string{"read-secret"}
	})
	b := newBrowser(t, chromium)
	b.do(t, chromedp.Navigate(ts.httpURL+"/logs?service=tail-svc&tail=1"))
	b.waitFor(t, `!!document.querySelector('form.login input[name="token"]')`)
	b.screenshot(t, "login")
	b.do(t, chromedp.SendKeys(chromedp.CSS(`form.login input[name="token"]`), "read-secret"+kb.Enter))
	b.waitFor(t, `!document.querySelector('form.login') && document.querySelector('.tail-status')?.classList.contains('live')`)
	if tok := eval[string](t, b, `sessionStorage.getItem('vigil.token')`); tok != "read-secret" {
		t.Errorf("token in sessionStorage %q", tok)
	}
	// The WebSocket got in with the token subprotocol: a record arrives.
	body := fmt.Sprintf(`{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"tail-svc"}}]},
		"scopeLogs":[{"logRecords":[{"timeUnixNano":"%d","severityNumber":9,"body":{"stringValue":"authorized tail line"}}]}]}]}`, time.Now().UnixNano())
	resp, err := http.Post("http://"+ts.otlpHTTP+"/v1/logs", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	b.waitFor(t, `[...document.querySelectorAll('.log-row .log-body')].some(e => e.textContent === 'authorized tail line')`)
}

// BenchmarkUITraceRender measures the time from navigation to the first
// render of the trace view for large traces (docs/benchmarks.md), with its
// own repetitions: run it once (make bench-ui, -benchtime 1x).
func BenchmarkUITraceRender(bm *testing.B) {
	t := bm
	chromium := chromiumPath(t)
	requireUI(t)
	ts := startServer(t, pgtest.NewDatabase(t))
	b := newBrowser(t, chromium)
	for _, n := range []int{1000, 10000} {
		id := seedBigTrace(t, ts, n)
		var render, fetch []float64
		for i := 0; i < 6; i++ {
			b.do(t, chromedp.Navigate(ts.httpURL+"/trace/"+id))
			b.waitFor(t, `performance.getEntriesByName('vigil.trace.rendered').length > 0`)
			if got := eval[int](t, b, `document.querySelector('.total-spans').textContent|0`); got != n {
				t.Fatalf("trace shows %d spans, want %d", got, n)
			}
			r := eval[float64](t, b, `performance.getEntriesByName('vigil.trace.rendered')[0].startTime`)
			f := eval[float64](t, b, `(performance.getEntriesByType('resource').find(e => e.name.includes('/api/traces/')) || {duration: 0}).duration`)
			if i == 0 {
				continue // warms the asset cache and the database
			}
			render = append(render, r)
			fetch = append(fetch, f)
		}
		b.screenshot(t, fmt.Sprintf("trace-%d", n))
		t.Logf("%d spans: first render %.0f ms median (min %.0f, max %.0f) after navigation; of which trace JSON fetch %.0f ms median",
			n, median(render), slices.Min(render), slices.Max(render), median(fetch))
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	return s[len(s)/2]
}

// seedBigTrace sends one trace of n spans over five services with a
// branching tree, through the SDK's batch processor, and returns its id.
func seedBigTrace(t testing.TB, ts *testServer, n int) string {
	t.Helper()
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(ts.grpcAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	var tracers []trace.Tracer
	var tps []*sdktrace.TracerProvider
	for i := 0; i < 5; i++ {
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(fmt.Sprintf("svc-%d", i)))),
			sdktrace.WithBatcher(exp, sdktrace.WithMaxExportBatchSize(1000), sdktrace.WithMaxQueueSize(n+1)))
		tps = append(tps, tp)
		tracers = append(tracers, tp.Tracer("bench"))
	}
	t0 := time.Now().Add(-time.Minute)
	type node struct {
		sc         trace.SpanContext
		start, end time.Time
	}
	nodes := make([]node, 0, n)
	total := 30 * time.Second
	_, root := tracers[0].Start(ctx, "GET /big", trace.WithTimestamp(t0))
	root.End(trace.WithTimestamp(t0.Add(total)))
	nodes = append(nodes, node{root.SpanContext(), t0, t0.Add(total)})
	for i := 1; i < n; i++ {
		// Parents among recent spans give depth and breadth alike.
		p := nodes[(i*7919)%len(nodes)]
		if i > 50 {
			p = nodes[i-1-(i*31)%50]
		}
		span := p.end.Sub(p.start)
		off := time.Duration((i * 37) % 100 * int(span) / 200)
		st := p.start.Add(off)
		en := st.Add(span / time.Duration(2+i%3))
		pctx := trace.ContextWithSpanContext(ctx, p.sc)
		_, s := tracers[i%5].Start(pctx, fmt.Sprintf("op-%d", i%40), trace.WithTimestamp(st),
			trace.WithAttributes(attribute.Int("i", i), attribute.String("kind", "bench")))
		if i%97 == 0 {
			s.SetStatus(codes.Error, "boom")
		}
		s.End(trace.WithTimestamp(en))
		nodes = append(nodes, node{s.SpanContext(), st, en})
	}
	for _, tp := range tps {
		if err := tp.ForceFlush(ctx); err != nil {
			t.Fatalf("flush spans: %v", err)
		}
	}
	for _, tp := range tps { // they share the exporter: shut down once all flushed
		_ = tp.Shutdown(ctx)
	}
	return root.SpanContext().TraceID().String()
}
