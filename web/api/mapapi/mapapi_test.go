package mapapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/query/servicemap"
	"github.com/vigil-obs/vigil/storage"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var base = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

// fakeReader answers fixed data and records what it was asked.
type fakeReader struct {
	err      error
	gotMap   servicemap.MapQuery
	gotTrace storage.EdgeTraceQuery
}

func (f *fakeReader) Map(ctx context.Context, q servicemap.MapQuery) (servicemap.Map, error) {
	f.gotMap = q
	if f.err != nil {
		return servicemap.Map{}, f.err
	}
	for k := range q.Filters {
		if k != servicemap.FilterEnvironment && k != servicemap.FilterNamespace {
			return servicemap.Map{}, &servicemap.QueryError{Param: "attr." + k, Msg: "is not a map filter (known: attr.deployment.environment, attr.k8s.namespace.name)"}
		}
	}
	start, end := q.Start, q.End
	if end.IsZero() {
		end = base
	}
	if start.IsZero() {
		start = end.Add(-15 * time.Minute)
	}
	if end.Sub(start) > 24*time.Hour {
		return servicemap.Map{}, &servicemap.QueryError{Param: "start", Msg: "makes a window of 25h0m0s, longer than the retention of 24h0m0s"}
	}
	nan := math.NaN()
	return servicemap.Map{
		Start: start, End: end,
		Nodes: []servicemap.Node{
			{ID: "gateway", Kind: "service", Stats: servicemap.Stats{Calls: 40, Rate: 40.0 / 900, P50: 0.004, P95: 0.02, P99: 0.05}},
			{ID: "postgres", Kind: "database", Stats: servicemap.Stats{Calls: 25, Rate: 25.0 / 900, P50: 0.001, P95: 0.002, P99: 0.0025}},
			{ID: "user", Kind: "user", Stats: servicemap.Stats{P50: nan, P95: nan, P99: nan}},
			{ID: "user-service", Kind: "service", Stats: servicemap.Stats{Calls: 120, Errors: 3, Rate: 120.0 / 900, ErrorRate: 0.025, P50: 0.004, P95: 0.02, P99: 0.05}},
		},
		Edges: []servicemap.Edge{
			{Client: "gateway", Server: "user-service", Stats: servicemap.Stats{Calls: 120, Errors: 3, Rate: 120.0 / 900, ErrorRate: 0.025, P50: 0.004, P95: 0.02, P99: 0.05},
				Marks: []servicemap.Mark{
					{Kind: "breaker_open", Instance: "127.0.0.1:3003", Since: base.Add(-6 * time.Minute), Value: 2},
					{Kind: "retry_budget_exhausted", Since: base.Add(-2 * time.Minute), Value: 4},
				}},
			{Client: "user", Server: "gateway", ConnectionType: "virtual_node", Stats: servicemap.Stats{Calls: 40, Rate: 40.0 / 900, P50: nan, P95: nan, P99: nan}},
			{Client: "user-service", Server: "postgres", ConnectionType: "database", Stats: servicemap.Stats{Calls: 25, Rate: 25.0 / 900, P50: 0.001, P95: 0.002, P99: 0.0025}},
		},
	}, nil
}

func (f *fakeReader) EdgeTraces(ctx context.Context, q storage.EdgeTraceQuery) ([]storage.EdgeTrace, error) {
	f.gotTrace = q
	if f.err != nil {
		return nil, f.err
	}
	if q.Limit > 1000 {
		return nil, &servicemap.QueryError{Param: "limit", Msg: "must be an integer from 1 to 1000"}
	}
	return []storage.EdgeTrace{
		{Client: "gateway", Server: "user-service", TraceID: [16]byte{0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, Time: base.Add(-time.Minute), Duration: 12500 * time.Microsecond, Failed: true},
		{Client: "gateway", Server: "user-service", TraceID: [16]byte{0xcd, 1}, Time: base.Add(-2 * time.Minute), Duration: 3 * time.Millisecond},
	}, nil
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
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

func TestMapAPI(t *testing.T) {
	secret := errors.New("pq: password authentication failed for user vigil")
	tests := []struct {
		name       string
		url        string
		readerErr  error
		wantStatus int
		golden     string
	}{
		{name: "map", url: "/api/vigil/servicemap", wantStatus: 200, golden: "map"},
		{name: "map window", url: "/api/vigil/servicemap?start=2026-03-04T09:00:00Z&end=1772618400&attr.deployment.environment=prod", wantStatus: 200, golden: "map_window"},
		{name: "map ms", url: "/api/vigil/servicemap?start=1772614800000&end=1772618400.5", wantStatus: 200, golden: "map_ms"},
		{name: "map unknown attr", url: "/api/vigil/servicemap?attr.host.name=x", wantStatus: 400, golden: "error_attr"},
		{name: "map empty attr", url: "/api/vigil/servicemap?attr.=x", wantStatus: 400, golden: "error_attr_empty"},
		{name: "map unknown param", url: "/api/vigil/servicemap?service=x", wantStatus: 400, golden: "error_unknown"},
		{name: "map repeated", url: "/api/vigil/servicemap?start=1&start=2", wantStatus: 400, golden: "error_repeated"},
		{name: "map bad start", url: "/api/vigil/servicemap?start=yesterday", wantStatus: 400, golden: "error_start"},
		{name: "map start after end", url: "/api/vigil/servicemap?start=2000&end=1000", wantStatus: 400, golden: "error_start_after_end"},
		{name: "map over retention", url: "/api/vigil/servicemap?start=2026-03-03T09:00:00Z&end=2026-03-04T10:00:00Z", wantStatus: 400, golden: "error_retention"},
		{name: "map NUL", url: "/api/vigil/servicemap?attr.k8s.namespace.name=a%00b", wantStatus: 400, golden: "error_nul"},
		{name: "map unavailable", url: "/api/vigil/servicemap", readerErr: fmt.Errorf("select: %w", storage.ErrUnavailable), wantStatus: 503, golden: "error_unavailable"},
		{name: "map internal", url: "/api/vigil/servicemap", readerErr: secret, wantStatus: 500, golden: "error_internal"},
		{name: "map deadline", url: "/api/vigil/servicemap", readerErr: context.DeadlineExceeded, wantStatus: 504, golden: "error_deadline"},

		{name: "traces", url: "/api/vigil/servicemap/traces?client=gateway&server=user-service&limit=5", wantStatus: 200, golden: "traces"},
		{name: "traces limit", url: "/api/vigil/servicemap/traces?limit=1001", wantStatus: 400, golden: "error_limit"},
		{name: "traces limit zero", url: "/api/vigil/servicemap/traces?limit=0", wantStatus: 400, golden: "error_limit"},
		{name: "traces attr", url: "/api/vigil/servicemap/traces?attr.deployment.environment=prod", wantStatus: 400, golden: "error_traces_attr"},
		{name: "traces internal", url: "/api/vigil/servicemap/traces", readerErr: secret, wantStatus: 500, golden: "error_internal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeReader{err: tc.readerErr}
			mux := http.NewServeMux()
			New(f, nil).Register(mux)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.url, nil))
			if rec.Code != tc.wantStatus {
				t.Errorf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, rec.Body.Bytes(), "", "  "); err != nil {
				t.Fatalf("invalid JSON %q: %v", rec.Body, err)
			}
			pretty.WriteByte('\n')
			checkGolden(t, tc.golden, pretty.Bytes())
		})
	}
}

func TestMapAPIPassesQuery(t *testing.T) {
	f := &fakeReader{}
	mux := http.NewServeMux()
	New(f, nil).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/vigil/servicemap?start=1772614800&end=2026-03-04T10:00:00Z&attr.k8s.namespace.name=shop", nil))
	want := servicemap.MapQuery{Start: base.Add(-time.Hour), End: base, Filters: map[string]string{"k8s.namespace.name": "shop"}}
	if !f.gotMap.Start.Equal(want.Start) || !f.gotMap.End.Equal(want.End) || fmt.Sprint(f.gotMap.Filters) != fmt.Sprint(want.Filters) {
		t.Errorf("query %+v, want %+v", f.gotMap, want)
	}
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/vigil/servicemap/traces?server=db", nil))
	if f.gotTrace != (storage.EdgeTraceQuery{Server: "db"}) {
		t.Errorf("trace query %+v, want the server only, the rest left to the query layer", f.gotTrace)
	}
}
