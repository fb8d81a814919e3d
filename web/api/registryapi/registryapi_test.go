package registryapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/registry"
	"github.com/vigil-obs/vigil/storage"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	_ Source     = (*registry.Registry)(nil)
	_ nodeSource = (*registry.Registry)(nil)
)

var t0 = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

// fakeSource is a fixed registry: checkout with a healthy instance and
// one in maintenance whose TCP check fails, payments with a TTL check
// that warns, and cache without checks.
type fakeSource struct {
	err      error // from State and History
	gotCheck string
	gotLimit int
	history  []registry.Transition
}

func (f *fakeSource) State(context.Context) (*registry.State, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &registry.State{
		Index: 42,
		Services: []registry.Service{
			{ID: "cache", Name: "cache", Address: "10.0.0.9", Port: 6379},
			{ID: "checkout-1", Name: "checkout", Address: "10.0.0.1", Port: 8080, Tags: []string{"v2", "primary"},
				Meta: map[string]string{"version": "2.4.1"}},
			{ID: "checkout-2", Name: "checkout", Port: 8081},
			{ID: "payments-1", Name: "payments", Address: "10.0.0.3", Port: 9090},
		},
		Checks: []registry.Check{
			{ID: "service:checkout-1", ServiceID: "checkout-1", ServiceName: "checkout", Name: "HTTP /health", Kind: registry.KindHTTP,
				Definition: registry.Definition{HTTP: "http://probe:s3cret@10.0.0.1:8080/health", Method: "GET",
					Header: map[string][]string{"Authorization": {"Bearer hidden"}}, Interval: 10 * time.Second, Timeout: 2 * time.Second},
				Status: registry.StatusPassing, Output: "HTTP GET http://10.0.0.1:8080/health: 200 OK Output: ok",
				StatusSince: t0.Add(-time.Hour), LastRun: t0.Add(-4 * time.Second)},
			{ID: "_service_maintenance:checkout-2", ServiceID: "checkout-2", ServiceName: "checkout", Name: "Service Maintenance Mode",
				Notes: "draining for the upgrade", Kind: registry.KindMaintenance, Status: registry.StatusCritical, StatusSince: t0.Add(-5 * time.Minute)},
			{ID: "service:checkout-2", ServiceID: "checkout-2", ServiceName: "checkout", Name: "TCP", Kind: registry.KindTCP,
				Definition: registry.Definition{TCP: "127.0.0.1:8081", Interval: time.Minute, Timeout: 10 * time.Second},
				Status:     registry.StatusCritical, Output: "dial tcp 127.0.0.1:8081: connect: connection refused",
				StatusSince: t0.Add(-6 * time.Minute), LastRun: t0.Add(-30 * time.Second)},
			{ID: "payments-grpc", ServiceID: "payments-1", ServiceName: "payments", Name: "gRPC health", Kind: registry.KindGRPC,
				Definition: registry.Definition{GRPC: "10.0.0.3:9090/payments.v1.Payments", Interval: 15 * time.Second, Timeout: 10 * time.Second},
				Status:     registry.StatusPassing, Output: "gRPC check 10.0.0.3:9090/payments.v1.Payments: success",
				StatusSince: t0.Add(-2 * time.Hour), LastRun: t0.Add(-time.Second)},
			{ID: "payments-ttl", ServiceID: "payments-1", ServiceName: "payments", Name: "queue lag", Kind: registry.KindTTL,
				Definition: registry.Definition{TTL: 30 * time.Second},
				Status:     registry.StatusWarning, Output: "lag 12s", StatusSince: t0.Add(-3 * time.Minute), LastRun: t0.Add(-10 * time.Second)},
		},
	}, nil
}

func (f *fakeSource) History(_ context.Context, checkID string, limit int) ([]registry.Transition, error) {
	f.gotCheck, f.gotLimit = checkID, limit
	if f.err != nil {
		return nil, f.err
	}
	if len(f.history) > limit {
		return f.history[:limit], nil
	}
	return f.history, nil
}

// configSource is fakeSource with the node of a Registry's Config.
type configSource struct{ *fakeSource }

func (configSource) Config() registry.Config { return registry.DefaultConfig() }

var checkoutHistory = []registry.Transition{
	{CheckID: "service:checkout-2", ServiceID: "checkout-2", Status: registry.StatusCritical,
		Output: "dial tcp 127.0.0.1:8081: connect: connection refused", At: t0.Add(-6 * time.Minute)},
	{CheckID: "service:checkout-2", ServiceID: "checkout-2", Status: registry.StatusWarning, Output: "slow", At: t0.Add(-20 * time.Minute)},
	{CheckID: "service:checkout-2", ServiceID: "checkout-2", Status: registry.StatusPassing, Output: "ok", At: t0.Add(-time.Hour).In(time.FixedZone("CET", 3600))},
}

func serve(t *testing.T, src Source, target string) (int, []byte) {
	t.Helper()
	mux := http.NewServeMux()
	New(src, nil).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: content type %q", target, ct)
	}
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, body
}

// golden compares body, indented, with testdata/name.golden.
func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	buf.WriteByte('\n')
	got := buf.Bytes()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("body differs from %s (run go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		status       int
		src          Source
	}{
		{"state", "/api/vigil/registry", 200, &fakeSource{}},
		{"state_node", "/api/vigil/registry", 200, configSource{&fakeSource{}}},
		{"state_off", "/api/vigil/registry", 200, nil},
		{"state_off_typed_nil", "/api/vigil/registry", 200, (*registry.Registry)(nil)},
		{"history", "/api/vigil/registry/checks/service:checkout-2/history", 200, &fakeSource{history: checkoutHistory}},
		{"history_limit", "/api/vigil/registry/checks/service:checkout-2/history?limit=1", 200, &fakeSource{history: checkoutHistory}},
		{"history_registered_no_changes", "/api/vigil/registry/checks/payments-ttl/history", 200, &fakeSource{}},
		{"history_unknown", "/api/vigil/registry/checks/nope/history", 404, &fakeSource{}},
		{"history_off", "/api/vigil/registry/checks/nope/history", 200, nil},
		{"error_limit", "/api/vigil/registry/checks/x/history?limit=1001", 400, &fakeSource{}},
		{"error_limit_text", "/api/vigil/registry/checks/x/history?limit=ten", 400, &fakeSource{}},
		{"error_limit_twice", "/api/vigil/registry/checks/x/history?limit=1&limit=2", 400, &fakeSource{}},
		{"error_unknown_param", "/api/vigil/registry?service=checkout", 400, &fakeSource{}},
		{"error_nul_param", "/api/vigil/registry?prettyPrint=%00", 400, &fakeSource{}},
		{"error_utf8_id", "/api/vigil/registry/checks/%ff/history", 400, &fakeSource{}},
		{"error_unavailable", "/api/vigil/registry", 503, &fakeSource{err: storage.ErrUnavailable}},
		{"error_internal", "/api/vigil/registry/checks/x/history", 500, &fakeSource{err: errors.New("pg: relation does not exist")}},
		{"error_timeout", "/api/vigil/registry", 504, &fakeSource{err: context.DeadlineExceeded}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := serve(t, tc.src, tc.target)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			golden(t, tc.name, body)
		})
	}
}

// TestHistoryPassesIDAndLimit checks what the handler asks the Source:
// the unescaped path ID (an escaped slash stays in the ID) and the limit.
func TestHistoryPassesIDAndLimit(t *testing.T) {
	for _, tc := range []struct {
		target string
		id     string
		limit  int
	}{
		{"/api/vigil/registry/checks/service:checkout-2/history", "service:checkout-2", DefaultHistoryLimit},
		{"/api/vigil/registry/checks/a%2Fb%20c/history?limit=7", "a/b c", 7},
		{"/api/vigil/registry/checks/x/history?limit=1000", "x", MaxHistoryLimit},
	} {
		f := &fakeSource{history: checkoutHistory}
		if status, body := serve(t, f, tc.target); status != 200 {
			t.Fatalf("%s: status %d: %s", tc.target, status, body)
		}
		if f.gotCheck != tc.id || f.gotLimit != tc.limit {
			t.Errorf("%s: History(%q, %d), want (%q, %d)", tc.target, f.gotCheck, f.gotLimit, tc.id, tc.limit)
		}
	}
}

func TestWorse(t *testing.T) {
	order := []string{registry.StatusPassing, registry.StatusWarning, registry.StatusCritical, registry.StatusMaintenance}
	for i, a := range order {
		for j, b := range order {
			want := order[max(i, j)]
			if got := worse(a, b); got != want {
				t.Errorf("worse(%s, %s) = %s, want %s", a, b, got, want)
			}
		}
	}
	if got := worse(registry.StatusPassing, "unknown"); got != "unknown" {
		t.Errorf("an unknown status should count as critical, got %s", got)
	}
}
