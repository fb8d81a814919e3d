package scrapeapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"

	vscrape "github.com/vigil-obs/vigil/ingest/scrape"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var _ Source = (*vscrape.Manager)(nil)

var t0 = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)

// metadataStore is a fixed set of metric metadata.
type metadataStore []scrape.MetricMetadata

func (s metadataStore) ListMetadata() []scrape.MetricMetadata {
	return append([]scrape.MetricMetadata(nil), s...)
}
func (s metadataStore) GetMetadata(name string) (scrape.MetricMetadata, bool) {
	for _, m := range s {
		if m.MetricFamily == name {
			return m, true
		}
	}
	return scrape.MetricMetadata{}, false
}
func (s metadataStore) SizeMetadata() int   { return 0 }
func (s metadataStore) LengthMetadata() int { return len(s) }

// fakeSource is a leader's view: two jobs, one target down, one dropped.
type fakeSource struct{ follower bool }

func job(name string) *promconfig.ScrapeConfig {
	sc := promconfig.DefaultScrapeConfig
	sc.JobName = name
	if err := sc.Validate(vscrape.DefaultGlobalConfig()); err != nil {
		panic(err)
	}
	return &sc
}

// newTarget builds a target as the scrape manager does: discovered
// labels, then relabelling.
func newTarget(sc *promconfig.ScrapeConfig, addr string, extra ...string) *scrape.Target {
	tl := model.LabelSet{model.AddressLabel: model.LabelValue(addr)}
	for i := 0; i+1 < len(extra); i += 2 {
		tl[model.LabelName(extra[i])] = model.LabelValue(extra[i+1])
	}
	ls, err := scrape.PopulateLabels(labels.NewBuilder(labels.EmptyLabels()), sc, tl, nil)
	if err != nil {
		panic(err)
	}
	return scrape.NewTarget(ls, sc, tl, nil)
}

func (f fakeSource) TargetsActive() map[string][]*scrape.Target {
	if f.follower {
		return map[string][]*scrape.Target{}
	}
	node, app := job("node"), job("checkout")
	n1 := newTarget(node, "10.0.0.7:9100", "__meta_consul_service", "node")
	n1.Report(t0, 12*time.Millisecond, nil)
	n1.SetMetadataStore(metadataStore{
		{MetricFamily: "node_load1", Type: model.MetricTypeGauge, Help: "1m load average."},
		{MetricFamily: "node_cpu_seconds_total", Type: model.MetricTypeCounter, Help: "Seconds the CPUs spent in each mode.", Unit: "seconds"},
	})
	n2 := newTarget(node, "127.0.0.1:9100")
	n2.Report(t0.Add(-time.Second), 2*time.Second, errors.New(`Get "http://127.0.0.1:9100/metrics": context deadline exceeded`))
	n2.SetMetadataStore(metadataStore{})
	c1 := newTarget(app, "127.0.0.1:8080")
	c1.Report(t0, 3*time.Millisecond, nil)
	c1.SetMetadataStore(metadataStore{{MetricFamily: "http_requests_total", Type: model.MetricTypeCounter, Help: "Requests."}})
	// Not yet scraped.
	c2 := newTarget(app, "10.0.0.8:8080")
	c2.SetMetadataStore(metadataStore{})
	return map[string][]*scrape.Target{"node": {n2, n1}, "checkout": {c2, c1}}
}

func (f fakeSource) TargetsDropped() map[string][]*scrape.Target {
	if f.follower {
		return map[string][]*scrape.Target{}
	}
	sc := job("checkout")
	return map[string][]*scrape.Target{"checkout": {scrape.NewTarget(labels.EmptyLabels(), sc,
		model.LabelSet{model.AddressLabel: "10.0.0.9:8080", "__meta_consul_service_metadata_scrape": "false"}, nil)}}
}

func (f fakeSource) TargetsDroppedCounts() map[string]int {
	if f.follower {
		return map[string]int{}
	}
	return map[string]int{"checkout": 3, "node": 0}
}

func (f fakeSource) Leader() bool { return !f.follower }

func serve(t *testing.T, src Source, target string) (int, http.Header, []byte) {
	t.Helper()
	mux := http.NewServeMux()
	ext, _ := url.Parse("https://vigil.example.com:443")
	New(src, Options{ExternalURL: ext, ListenAddress: ":8080"}).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: content type %q", target, ct)
	}
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, rec.Header(), body
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
		{"targets", "/api/v1/targets", 200, fakeSource{}},
		{"targets_active", "/api/v1/targets?state=active", 200, fakeSource{}},
		{"targets_dropped", "/api/v1/targets?state=Dropped", 200, fakeSource{}},
		{"targets_pool", "/api/v1/targets?scrapePool=node&state=any", 200, fakeSource{}},
		{"targets_unknown_state", "/api/v1/targets?state=gone", 200, fakeSource{}},
		{"targets_follower", "/api/v1/targets", 200, fakeSource{follower: true}},
		{"metadata", "/api/v1/targets/metadata", 200, fakeSource{}},
		{"metadata_metric", "/api/v1/targets/metadata?metric=node_load1", 200, fakeSource{}},
		{"metadata_match", "/api/v1/targets/metadata?match_target=" + url.QueryEscape(`{job="checkout"}`), 200, fakeSource{}},
		{"metadata_limit", "/api/v1/targets/metadata?limit=1", 200, fakeSource{}},
		{"metadata_follower", "/api/v1/targets/metadata", 200, fakeSource{follower: true}},
		{"error_limit", "/api/v1/targets/metadata?limit=x", 400, fakeSource{}},
		{"error_match", "/api/v1/targets/metadata?match_target=" + url.QueryEscape(`{job=`), 400, fakeSource{}},
		{"error_utf8", "/api/v1/targets?scrapePool=%ff", 400, fakeSource{}},
		{"error_nul", "/api/v1/targets/metadata?metric=a%00b", 400, fakeSource{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := serve(t, tc.src, tc.target)
			if status != tc.status {
				t.Errorf("status %d, want %d: %s", status, tc.status, body)
			}
			if want := map[bool]string{true: "true", false: "false"}[tc.src.Leader()]; h.Get(HeaderLeader) != want {
				t.Errorf("%s: %q, want %q", HeaderLeader, h.Get(HeaderLeader), want)
			}
			golden(t, tc.name, body)
		})
	}
}

func TestMethods(t *testing.T) {
	mux := http.NewServeMux()
	New(fakeSource{}, Options{}).Register(mux)
	for _, p := range []string{PathTargets, PathMetadata} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, p, nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d", p, rec.Code)
		}
	}
}

// TestGlobalURL follows Prometheus's rules for targets on localhost.
func TestGlobalURL(t *testing.T) {
	ext, _ := url.Parse("https://vigil.example.com")
	a := New(fakeSource{}, Options{ExternalURL: ext, ListenAddress: "0.0.0.0:8080"})
	for in, want := range map[string]string{
		"http://127.0.0.1:8080/metrics":  "https://vigil.example.com/metrics",
		"http://localhost:9100/metrics":  "http://vigil.example.com:9100/metrics",
		"http://[::1]/metrics":           "http://vigil.example.com/metrics",
		"http://10.0.0.7:9100/metrics":   "http://10.0.0.7:9100/metrics",
		"https://node.example:9100/m?x=": "https://node.example:9100/m?x=",
	} {
		u, _ := url.Parse(in)
		got, err := a.globalURL(u)
		if err != nil || got.String() != want {
			t.Errorf("%s: %v %v, want %s", in, got, err, want)
		}
	}
}

// FuzzTargets: any query string is answered with 200 or 400 in
// Prometheus's envelope, never a panic.
func FuzzTargets(f *testing.F) {
	for _, s := range []string{"state=active", "scrapePool=node", "state=%ff", "match_target=%7Bjob%3D", "limit=-1", "metric=%00"} {
		f.Add(s)
	}
	mux := http.NewServeMux()
	New(fakeSource{}, Options{}).Register(mux)
	f.Fuzz(func(t *testing.T, q string) {
		if len(q) > 8192 {
			return
		}
		for _, p := range []string{PathTargets, PathMetadata} {
			req := httptest.NewRequest(http.MethodGet, p, nil)
			req.URL.RawQuery = q
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
				t.Fatalf("%s?%q: status %d", p, q, rec.Code)
			}
			var body response
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Status == "" {
				t.Fatalf("%s?%q: body %s: %v", p, q, rec.Body.Bytes(), err)
			}
		}
	})
}
