package jaegerapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/query/servicemap"
	"github.com/vigil-obs/vigil/query/traces"
	"github.com/vigil-obs/vigil/storage"
)

// fakeMap is a ServiceMapReader answering fixed data and recording what
// it was asked.
type fakeMap struct {
	err       error
	end       time.Time
	lookback  time.Duration
	q         servicemap.MonitorQuery
	noMetrics bool
}

func (f *fakeMap) Dependencies(_ context.Context, end time.Time, lookback time.Duration) ([]servicemap.Dependency, error) {
	f.end, f.lookback = end, lookback
	if f.err != nil {
		return nil, f.err
	}
	return []servicemap.Dependency{
		{Parent: "gateway", Child: "redis", CallCount: 33},
		{Parent: "gateway", Child: "user-service", CallCount: 120},
		{Parent: "user-service", Child: "postgres", CallCount: 25},
	}, nil
}

func (f *fakeMap) family(name, help string, q servicemap.MonitorQuery) (servicemap.MetricFamily, error) {
	f.q = q
	if f.err != nil {
		return servicemap.MetricFamily{}, f.err
	}
	fam := servicemap.MetricFamily{Name: name, Help: help}
	if f.noMetrics {
		return fam, nil
	}
	t0 := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	fam.Metrics = []servicemap.Metric{{
		Labels: []servicemap.Label{{Name: "operation", Value: "GET /users"}, {Name: "service_name", Value: "user-service"}},
		Points: []servicemap.Point{{T: t0, V: 0.26666666666666666}, {T: t0.Add(1500 * time.Millisecond), V: math.NaN()}, {T: t0.Add(3 * time.Second), V: math.Inf(1)}},
	}}
	return fam, nil
}

func (f *fakeMap) CallRates(_ context.Context, q servicemap.MonitorQuery) (servicemap.MetricFamily, error) {
	return f.family("service_operation_call_rate", "calls/sec, grouped by service & operation", q)
}

func (f *fakeMap) ErrorRates(_ context.Context, q servicemap.MonitorQuery) (servicemap.MetricFamily, error) {
	return f.family("service_error_rate", "error rate, computed as a fraction of errors/sec over calls/sec, grouped by service", q)
}

func (f *fakeMap) Latencies(_ context.Context, q servicemap.MonitorQuery) (servicemap.MetricFamily, error) {
	return f.family("service_latencies", fmt.Sprintf("%.2fth quantile latency, grouped by service", q.Quantile), q)
}

func serveMap(t *testing.T, f *fakeMap, url string) *httptest.ResponseRecorder {
	t.Helper()
	j := New(traces.New(&memReader{}, traces.Config{}), nil)
	j.SetServiceMap(f)
	mux := http.NewServeMux()
	j.Register(mux)
	path, raw, _ := strings.Cut(url, "?")
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.URL.RawQuery = raw
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec
}

func TestJaegerServiceMapAPI(t *testing.T) {
	tests := []struct {
		name       string
		url        string
		err        error
		noMetrics  bool
		wantStatus int
		golden     string
	}{
		{name: "dependencies", url: "/api/dependencies?endTs=1772618400000&lookback=3600000", wantStatus: 200, golden: "deps"},
		{name: "dependencies of a service", url: "/api/dependencies?service=redis", wantStatus: 200, golden: "deps_service"},
		{name: "dependencies bad endTs", url: "/api/dependencies?endTs=now", wantStatus: 400, golden: "deps_error_endts"},
		{name: "dependencies bad lookback", url: "/api/dependencies?lookback=-5", wantStatus: 400, golden: "deps_error_lookback"},
		{name: "dependencies internal", url: "/api/dependencies", err: errors.New("pq: secret"), wantStatus: 500, golden: "map_error_internal"},
		{name: "dependencies unavailable", url: "/api/dependencies", err: storage.ErrUnavailable, wantStatus: 503, golden: "map_error_unavailable"},

		{name: "calls", url: "/api/metrics/calls?service=user-service&groupByOperation=true", wantStatus: 200, golden: "metrics_calls"},
		{name: "calls pretty", url: "/api/metrics/calls?service=user-service&groupByOperation=true&prettyPrint=true", wantStatus: 200, golden: "metrics_calls_pretty"},
		{name: "errors empty", url: "/api/metrics/errors?service=nobody", noMetrics: true, wantStatus: 200, golden: "metrics_errors_empty"},
		{name: "latencies", url: "/api/metrics/latencies?service=user-service&quantile=0.95", wantStatus: 200, golden: "metrics_latencies"},
		{name: "latencies no quantile", url: "/api/metrics/latencies?service=user-service", wantStatus: 400, golden: "metrics_error_quantile"},
		{name: "calls no service", url: "/api/metrics/calls", wantStatus: 400, golden: "metrics_error_service"},
		{name: "calls bad kind", url: "/api/metrics/calls?service=a&spanKind=server&spanKind=sideways", wantStatus: 400, golden: "metrics_error_kind"},
		{name: "calls bad group", url: "/api/metrics/calls?service=a&groupByOperation=maybe", wantStatus: 400, golden: "metrics_error_group"},
		{name: "calls bad step", url: "/api/metrics/calls?service=a&step=1s", wantStatus: 400, golden: "metrics_error_step"},
		{name: "calls zero ratePer", url: "/api/metrics/calls?service=a&ratePer=0", wantStatus: 400, golden: "metrics_error_rateper"},
		{name: "calls refused", url: "/api/metrics/calls?service=a", err: &servicemap.QueryError{Msg: "service_call_rate query refused", Err: errors.New("exceeded maximum resolution of 11,000 points per timeseries")}, wantStatus: 400, golden: "metrics_error_refused"},
		{name: "calls internal", url: "/api/metrics/calls?service=a", err: errors.New("pq: secret"), wantStatus: 500, golden: "map_error_internal"},
		{name: "minstep", url: "/api/metrics/minstep", wantStatus: 200, golden: "metrics_minstep"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := serveMap(t, &fakeMap{err: tc.err, noMetrics: tc.noMetrics}, tc.url)
			if rec.Code != tc.wantStatus {
				t.Errorf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			checkGolden(t, tc.golden, append(bytes.Clone(rec.Body.Bytes()), '\n'))
		})
	}
}

func TestJaegerMonitorParameters(t *testing.T) {
	f := &fakeMap{}
	serveMap(t, f, "/api/metrics/calls?service=a&service=b")
	want := servicemap.MonitorQuery{Services: []string{"a", "b"}, SpanKinds: []string{"SPAN_KIND_SERVER"},
		Lookback: time.Hour, Step: 5 * time.Second, RatePer: 10 * time.Minute}
	if fmt.Sprintf("%+v", f.q) != fmt.Sprintf("%+v", want) {
		t.Errorf("defaults: got %+v, want %+v", f.q, want)
	}
	serveMap(t, f, "/api/metrics/latencies?service=a&quantile=0.99&groupByOperation=1&spanKind=client&spanKind=consumer&endTs=1772618400000&lookback=600000&step=60000&ratePer=120000")
	want = servicemap.MonitorQuery{Services: []string{"a"}, GroupByOperation: true, SpanKinds: []string{"SPAN_KIND_CLIENT", "SPAN_KIND_CONSUMER"},
		End: time.UnixMilli(1772618400000).UTC(), Lookback: 10 * time.Minute, Step: time.Minute, RatePer: 2 * time.Minute, Quantile: 0.99}
	if fmt.Sprintf("%+v", f.q) != fmt.Sprintf("%+v", want) {
		t.Errorf("given: got %+v, want %+v", f.q, want)
	}
	serveMap(t, f, "/api/dependencies")
	if !f.end.IsZero() || f.lookback != 24*time.Hour {
		t.Errorf("dependency defaults: end %v lookback %v, want zero (now) and 24h", f.end, f.lookback)
	}
}

func TestJaegerServiceMapRoutesOff(t *testing.T) {
	mux := http.NewServeMux()
	New(traces.New(&memReader{}, traces.Config{}), nil).Register(mux)
	for _, url := range []string{"/api/dependencies", "/api/metrics/calls?service=a", "/api/metrics/minstep"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("%s without a service map: status %d, want 404", url, rec.Code)
		}
	}
}
