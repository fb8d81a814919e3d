package scrapeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"gopkg.in/yaml.v3"

	vscrape "github.com/vigil-obs/vigil/ingest/scrape"
)

// discard keeps nothing: the test looks at the API, not at samples.
type discard struct{}

func (discard) AppenderV2(context.Context) promstorage.AppenderV2 { return discard{} }
func (discard) Append(promstorage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	return 0, nil
}
func (discard) Commit() error   { return nil }
func (discard) Rollback() error { return nil }

// TestLive: the API over a running ingest/scrape.Manager shows its
// target up, with the metadata the target exposes.
func TestLive(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "jobs_total", Help: "Jobs done."}))
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer target.Close()

	var cfg vscrape.Config
	doc := fmt.Sprintf("scrape_configs: [{job_name: live, scrape_interval: 200ms, scrape_timeout: 200ms, static_configs: [{targets: [%q]}]}]", target.Listener.Addr())
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	m, err := vscrape.New(cfg, vscrape.Options{Appendable: discard{}, DiscoveryReloadInterval: 100 * time.Millisecond,
		Jobs: []*promconfig.ScrapeConfig{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	mux := http.NewServeMux()
	New(m, Options{}).Register(mux)
	get := func(path string, v any) http.Header {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			t.Fatal(err)
		}
		return rec.Header()
	}
	var targets struct {
		Data targetDiscovery `json:"data"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		h := get(PathTargets, &targets)
		if a := targets.Data.ActiveTargets; len(a) == 1 && a[0].Health == "up" {
			if h.Get(HeaderLeader) != "true" {
				t.Errorf("%s: %q", HeaderLeader, h.Get(HeaderLeader))
			}
			if a[0].Labels.Get("job") != "live" || a[0].ScrapeURL != target.URL+"/metrics" || a[0].LastScrape.IsZero() {
				t.Errorf("target: %+v", a[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("target not up: %+v", targets.Data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var md struct {
		Data []metricMetadata `json:"data"`
	}
	get(PathMetadata+"?metric=jobs_total", &md)
	if len(md.Data) != 1 || md.Data[0].Type != "counter" || md.Data[0].Help != "Jobs done." {
		t.Errorf("metadata: %+v", md.Data)
	}
}
