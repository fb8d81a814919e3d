package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/vigil-obs/vigil/client/internal/consultest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type traceSink struct {
	ptraceotlp.UnimplementedGRPCServer
	spans atomic.Int64
}

func (s *traceSink) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	s.spans.Add(int64(req.Traces().SpanCount()))
	return ptraceotlp.NewExportResponse(), nil
}

type metricSink struct {
	pmetricotlp.UnimplementedGRPCServer
	points atomic.Int64
}

func (s *metricSink) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	s.points.Add(int64(req.Metrics().DataPointCount()))
	return pmetricotlp.NewExportResponse(), nil
}

type logSink struct {
	plogotlp.UnimplementedGRPCServer
	records atomic.Int64
}

func (s *logSink) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	s.records.Add(int64(req.Logs().LogRecordCount()))
	return plogotlp.NewExportResponse(), nil
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDemoFleet runs the whole demo on loopback against an in-test OTLP
// receiver: the gateway serves users through the client even with one
// instance failing, every service exposes the seed's metrics, and spans,
// metrics and logs reach the receiver.
func TestDemoFleet(t *testing.T) {
	otlp, traces, metrics, logs := startOTLP(t)
	cfg := defaultConfig()
	cfg.OTLPEndpoint = otlp
	cfg.Fault = "fail"
	cfg.MetricInterval = time.Hour // flushed at shutdown
	cfg.LogLevel = slog.LevelWarn
	cfg.gatewayLn = listen(t)
	cfg.userLns = []net.Listener{listen(t), listen(t), listen(t)}
	gw := "http://" + cfg.gatewayLn.Addr().String()
	users := make([]string, 3)
	for i, ln := range cfg.userLns {
		users[i] = "http://" + ln.Addr().String()
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if traces.spans.Load() == 0 || metrics.points.Load() == 0 || logs.records.Load() == 0 {
			t.Errorf("exported %d spans, %d metric points, %d logs; want some of each", traces.spans.Load(), metrics.points.Load(), logs.records.Load())
		}
	}()

	waitReady(t, gw)

	// The third instance fails every request; retries and ejection hide it.
	for i := 1; i <= 30; i++ {
		code, body := httpDo(t, http.MethodGet, gw+"/users/"+itoa(i), "")
		if code != http.StatusOK {
			t.Fatalf("GET /users/%d = %d %s", i, code, body)
		}
		var u struct {
			ID       int    `json:"id"`
			ServedBy string `json:"served_by"`
		}
		if err := json.Unmarshal([]byte(body), &u); err != nil || u.ID != i || u.ServedBy == "user-service-3" {
			t.Fatalf("GET /users/%d body %s", i, body)
		}
	}
	if code, body := httpDo(t, http.MethodPost, gw+"/users", `{"name":"Ada"}`); code != http.StatusCreated && code != http.StatusServiceUnavailable {
		t.Fatalf("POST /users = %d %s", code, body)
	}
	// P2C-EWMA learns from the first failure (it counts as a 1 s sample)
	// and routes around the failing instance, which therefore may not even
	// need ejecting.
	if code, body := httpDo(t, http.MethodGet, gw+"/admin/instances", ""); code != http.StatusOK || strings.Count(body, `"addr"`) != 3 {
		t.Fatalf("admin/instances = %d %s", code, body)
	}
	if code, _ := httpDo(t, http.MethodPost, gw+"/admin/fault?instance=3&mode=slow&delay=10ms", ""); code != http.StatusOK {
		t.Fatalf("set fault = %d", code)
	}
	if code, _ := httpDo(t, http.MethodPost, gw+"/admin/fault?instance=9&mode=slow", ""); code != http.StatusBadRequest {
		t.Fatalf("bad fault request = %d", code)
	}

	for _, base := range append([]string{gw}, users...) {
		for _, path := range []string{"/health", "/ready"} {
			if code, body := httpDo(t, http.MethodGet, base+path, ""); code != http.StatusOK {
				t.Fatalf("%s%s = %d %s", base, path, code, body)
			}
		}
		_, body := httpDo(t, http.MethodGet, base+"/metrics", "")
		for _, want := range []string{
			"http_requests_total{",
			`http_request_duration_seconds_bucket{`,
			`le="0.1"`, `le="0.5"`, `le="1"`, `le="2"`, `le="5"`,
			"active_connections{service=",
			"process_resident_memory_bytes",
		} {
			if !strings.Contains(body, want) {
				t.Fatalf("%s/metrics lacks %q", base, want)
			}
		}
	}
	_, body := httpDo(t, http.MethodGet, users[0]+"/metrics", "")
	if !strings.Contains(body, `http_requests_total{method="GET",route="/users/{id}",status_code="200"}`) {
		t.Fatalf("user-service metrics lack the /users/{id} route:\n%s", body)
	}
}

// startOTLP runs an in-test OTLP gRPC receiver until the test ends and
// returns its address and sinks.
func startOTLP(t *testing.T) (string, *traceSink, *metricSink, *logSink) {
	t.Helper()
	otlpLn := listen(t)
	traces, metrics, logs := &traceSink{}, &metricSink{}, &logSink{}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, traces)
	pmetricotlp.RegisterGRPCServer(srv, metrics)
	plogotlp.RegisterGRPCServer(srv, logs)
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(otlpLn); err != nil {
			t.Errorf("serve otlp: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return otlpLn.Addr().String(), traces, metrics, logs
}

// waitReady waits for the gateway to see user-service.
func waitReady(t *testing.T, gw string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(gw + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("gateway never became ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []config{
		{Fault: "explode"},
		{Fault: "none", SlowDelay: -1, UserAddrs: []string{"x"}},
		{Fault: "none", LoadRPS: -1, UserAddrs: []string{"x"}},
		{Fault: "none"},
		{Fault: "none", UserAddrs: []string{"x"}, ConsulAddr: "127.0.0.1:8500"},
		{Fault: "none", UserAddrs: []string{"x"}, ConsulAddr: "127.0.0.1:8500", ConsulTTL: time.Second, ScrapeInterval: time.Microsecond},
	} {
		if err := c.validate(); err == nil {
			t.Errorf("validate(%+v) = nil", c)
		}
	}
	if err := defaultConfig().validate(); err != nil {
		t.Fatal(err)
	}
}

// TestDemoFleetConsul runs the demo with -consul-addr against an in-test
// Consul-compatible agent: every user-service instance registers with a TTL
// check and scrape meta, the gateway discovers them through blocking
// queries and serves requests, follows a deregistration at once, and the
// instances deregister on shutdown.
func TestDemoFleetConsul(t *testing.T) {
	otlp, _, _, _ := startOTLP(t)
	agent := consultest.New(t)
	cfg := defaultConfig()
	cfg.OTLPEndpoint = otlp
	cfg.MetricInterval = time.Hour
	cfg.LogLevel = slog.LevelWarn
	cfg.ConsulAddr = agent.Addr()
	cfg.ConsulTTL = 300 * time.Millisecond // passes every 100ms
	cfg.gatewayLn = listen(t)
	cfg.userLns = []net.Listener{listen(t), listen(t), listen(t)}
	gw := "http://" + cfg.gatewayLn.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
	defer stop()

	waitReady(t, gw)
	svcs := agent.Services()
	if len(svcs) != 3 {
		t.Fatalf("%d registrations, want 3: %v", len(svcs), svcs)
	}
	for i, ln := range cfg.userLns {
		port := ln.Addr().(*net.TCPAddr).Port
		id := "user-service-127.0.0.1-" + itoa(port)
		reg, ok := svcs[id]
		if !ok {
			t.Fatalf("instance %d not registered as %s: %v", i+1, id, svcs)
		}
		if reg.Name != "user-service" || reg.Address != "127.0.0.1" || reg.Port != port ||
			reg.Meta["metrics_path"] != "/metrics" || reg.Meta["scrape_interval"] != "15s" || reg.Meta["instance"] != "user-service-"+itoa(i+1) {
			t.Fatalf("registration %+v", reg)
		}
		if reg.Check == nil || reg.Check.TTL != "300ms" {
			t.Fatalf("check %+v, want a 300ms TTL", reg.Check)
		}
	}
	// The TTL checks are kept passing with the note.
	eventually(t, "ttl passes", func() bool { return len(agent.Requests("/v1/agent/check/pass/")) >= 3 })
	if ch, ok := agent.Check("service:user-service-127.0.0.1-" + itoa(cfg.userLns[0].Addr().(*net.TCPAddr).Port)); !ok || ch.Status != "passing" || ch.Output != "user-service-1 serving" {
		t.Fatalf("check %+v, %v", ch, ok)
	}

	served := map[string]bool{}
	for i := 1; i <= 30; i++ {
		code, body := httpDo(t, http.MethodGet, gw+"/users/"+itoa(i), "")
		if code != http.StatusOK {
			t.Fatalf("GET /users/%d = %d %s", i, code, body)
		}
		var u struct {
			ServedBy string `json:"served_by"`
		}
		if err := json.Unmarshal([]byte(body), &u); err != nil {
			t.Fatal(err)
		}
		served[u.ServedBy] = true
	}
	if len(served) < 2 {
		t.Errorf("served by %v, want the calls spread over the instances", served)
	}
	eventually(t, "a blocking query", func() bool {
		for _, r := range agent.Requests("/v1/health/service/user-service") {
			if r.Query.Get("passing") != "true" {
				t.Fatalf("health query %v without passing", r.Query)
			}
			if r.Query.Has("index") && r.Query.Get("wait") != "" {
				return true
			}
		}
		return false
	})

	// The gateway follows the registry: a fourth instance joins its set
	// and leaves it when deregistered.
	extra := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":1,"served_by":"extra"}`))
	}))
	defer extra.Close()
	extraPort := extra.Listener.Addr().(*net.TCPAddr).Port
	agent.Register(consultest.Registration{ID: "extra", Name: "user-service", Address: "127.0.0.1", Port: extraPort})
	agent.SetCheck("service:extra", "extra", "passing")
	instances := func(n int) func() bool {
		return func() bool {
			_, body := httpDo(t, http.MethodGet, gw+"/admin/instances", "")
			return strings.Count(body, `"addr"`) == n
		}
	}
	eventually(t, "the extra instance in the gateway's set", instances(4))
	agent.Deregister("extra")
	eventually(t, "the extra instance out of the gateway's set", instances(3))

	// An agent that lost its state gets the instances back within TTL/3.
	agent.Forget()
	eventually(t, "instances registered again", func() bool { return len(agent.Services()) == 3 })
	eventually(t, "the gateway's set back to three", instances(3))

	stop()
	if svcs := agent.Services(); len(svcs) != 0 {
		t.Fatalf("still registered after shutdown: %v", svcs)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
