package scrape

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"
)

// parseConfig decodes a scrape section as cmd/vigil decodes its file.
func parseConfig(t *testing.T, s string) Config {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte(s)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decode: %v\n%s", err, s)
	}
	return c
}

// staticJob is an inline scrape section of one job scraping addrs every
// testInterval, with extra job settings appended.
func staticJob(job string, extra string, addrs ...string) string {
	return fmt.Sprintf(`
scrape_configs:
  - job_name: %s
    scrape_interval: %s
    scrape_timeout: %s
    static_configs:
      - targets: ['%s']
%s`, job, testInterval, testInterval, strings.Join(addrs, "','"), extra)
}

// appMetrics are a counter, a gauge vector and a histogram, as an
// instrumented application exposes them.
func appMetrics() (prometheus.Counter, *prometheus.GaugeVec, prometheus.Histogram) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "app_requests_total", Help: "Requests served."})
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "app_queue_length", Help: "Queued jobs."}, []string{"queue"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "app_latency_seconds", Help: "Request latency.", Buckets: []float64{0.1, 1}})
	return c, g, h
}

// TestScrapeIntoStore: counters and a histogram scraped from a
// client_golang registry land in the store with job and instance, beside
// Prometheus's synthetic series.
func TestScrapeIntoStore(t *testing.T) {
	st := newStore(t)
	c, g, h := appMetrics()
	c.Add(42)
	g.WithLabelValues("mail").Set(7)
	h.Observe(0.05)
	h.Observe(0.5)
	h.Observe(3)
	tg := newTarget(t, c, g, h)
	m := newManager(t, st.pipe, parseConfig(t, staticJob("app", "", tg.addr())), Options{})
	start(t, m)

	id := []string{"job", "app", "instance", tg.addr()}
	with := func(kv ...string) []string { return append(append([]string{}, id...), kv...) }
	eventually(t, 10*time.Second, "app_requests_total in the store", func() bool {
		_, ok := st.last(t, with("__name__", "app_requests_total")...)
		return ok
	})
	for _, tc := range []struct {
		series []string
		want   float64
	}{
		{with("__name__", "up"), 1},
		{with("__name__", "app_requests_total"), 42},
		{with("__name__", "app_queue_length", "queue", "mail"), 7},
		{with("__name__", "app_latency_seconds_bucket", "le", "0.1"), 1},
		{with("__name__", "app_latency_seconds_bucket", "le", "1.0"), 2},
		{with("__name__", "app_latency_seconds_bucket", "le", "+Inf"), 3},
		{with("__name__", "app_latency_seconds_count"), 3},
		{with("__name__", "app_latency_seconds_sum"), 3.55},
	} {
		p, ok := st.last(t, tc.series...)
		if !ok || p.v != tc.want {
			t.Errorf("%v: %v (found %v), want %v", tc.series, p.v, ok, tc.want)
		}
	}
	for _, name := range []string{"scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"} {
		if _, ok := st.last(t, with("__name__", name)...); !ok {
			t.Errorf("no %s", name)
		}
	}
	if p, _ := st.last(t, with("__name__", "scrape_samples_scraped")...); p.v != 7 {
		t.Errorf("scrape_samples_scraped %v, want 7", p.v)
	}
	active := m.TargetsActive()["app"]
	if len(active) != 1 || active[0].Health() != "up" {
		t.Fatalf("active targets: %v", active)
	}
	if md, ok := active[0].GetMetadata("app_latency_seconds"); !ok || md.Type != "histogram" || md.Help != "Request latency." {
		t.Errorf("metadata of app_latency_seconds: %+v %v", md, ok)
	}
}

// TestTargetGoesAway: a target that stops answering gets up 0, and its
// series get staleness markers, as Prometheus writes them.
func TestTargetGoesAway(t *testing.T) {
	st := newStore(t)
	c, _, _ := appMetrics()
	c.Add(1)
	tg := newTarget(t, c)
	m := newManager(t, st.pipe, parseConfig(t, staticJob("app", "", tg.addr())), Options{})
	start(t, m)
	series := []string{"__name__", "app_requests_total", "job", "app", "instance", tg.addr()}
	eventually(t, 10*time.Second, "app_requests_total", func() bool {
		_, ok := st.last(t, series...)
		return ok
	})
	tg.srv.Close()
	eventually(t, 10*time.Second, "up 0", func() bool {
		p, ok := st.last(t, "__name__", "up", "job", "app")
		return ok && p.v == 0
	})
	eventually(t, 5*time.Second, "a staleness marker", func() bool {
		p, ok := st.last(t, series...)
		return ok && isStale(p.v)
	})
	active := m.TargetsActive()["app"]
	if len(active) != 1 || active[0].Health() != "down" || active[0].LastError() == nil {
		t.Fatalf("target after it went away: %v", active)
	}
}

// TestRelabel: relabel_configs shape the target's labels and
// metric_relabel_configs drop and rename series, before anything is
// stored; honor_labels decides who wins a clash with the target's own
// job label.
func TestRelabel(t *testing.T) {
	st := newStore(t)
	c, g, _ := appMetrics()
	c.Add(5)
	g.WithLabelValues("mail").Set(1)
	clash := prometheus.NewGauge(prometheus.GaugeOpts{Name: "app_info", Help: "Info.", ConstLabels: prometheus.Labels{"job": "exported"}})
	clash.Set(1)
	tg := newTarget(t, c, g, clash)
	relabel := `    relabel_configs:
      - target_label: env
        replacement: prod
      - source_labels: [__address__]
        regex: '127\.0\.0\.1:(.*)'
        target_label: port
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: app_queue_length
        action: drop
      - source_labels: [__name__]
        regex: app_requests_total
        target_label: __name__
        replacement: app_served_total
`
	cfg := parseConfig(t, staticJob("plain", relabel, tg.addr()))
	honored := parseConfig(t, staticJob("honored", relabel+"    honor_labels: true\n", tg.addr()))
	cfg.ScrapeConfigs = append(cfg.ScrapeConfigs, honored.ScrapeConfigs...)
	m := newManager(t, st.pipe, cfg, Options{})
	start(t, m)

	port := tg.addr()[strings.LastIndexByte(tg.addr(), ':')+1:]
	eventually(t, 10*time.Second, "both jobs' series", func() bool {
		_, ok1 := st.last(t, "__name__", "app_served_total", "job", "plain")
		_, ok2 := st.last(t, "__name__", "app_info", "job", "exported")
		return ok1 && ok2
	})
	got := st.series(t, "__name__", "app_served_total", "job", "plain")
	want := fmt.Sprintf(`{__name__="app_served_total", env="prod", instance="%s", job="plain", port="%s"}`, tg.addr(), port)
	if _, ok := got[want]; !ok || len(got) != 1 {
		t.Errorf("renamed series: %v, want %s", got, want)
	}
	if got := st.series(t, "__name__", "app_requests_total"); len(got) != 0 {
		t.Errorf("the original name was stored: %v", got)
	}
	if got := st.series(t, "__name__", "app_queue_length"); len(got) != 0 {
		t.Errorf("a dropped metric was stored: %v", got)
	}
	// honor_labels: false keeps the target's job and renames the exposed one.
	if got := st.series(t, "__name__", "app_info", "job", "plain", "exported_job", "exported"); len(got) != 1 {
		t.Errorf("honor_labels false: %v", st.series(t, "__name__", "app_info"))
	}
	// honor_labels: true keeps the exposed job.
	if got := st.series(t, "__name__", "app_info", "job", "exported", "instance", tg.addr(), "env", "prod"); len(got) != 1 {
		t.Errorf("honor_labels true: %v", st.series(t, "__name__", "app_info"))
	}
	// scrape_samples_post_metric_relabeling counts what survived.
	pre, _ := st.last(t, "__name__", "scrape_samples_scraped", "job", "plain")
	post, _ := st.last(t, "__name__", "scrape_samples_post_metric_relabeling", "job", "plain")
	if pre.v != 3 || post.v != 2 {
		t.Errorf("samples scraped %v, post relabelling %v; want 3 and 2", pre.v, post.v)
	}
}

// TestLimits: a target over sample_limit or body_size_limit is down with
// the reason in its last error, and none of its samples of that scrape
// is stored; up and the synthetic series are.
func TestLimits(t *testing.T) {
	st := newStore(t)
	_, g, _ := appMetrics()
	for i := range 5 {
		g.WithLabelValues(fmt.Sprintf("queue-%d", i)).Set(float64(i))
	}
	tg := newTarget(t, g)
	cfg := parseConfig(t, staticJob("samples", "    sample_limit: 3\n", tg.addr()))
	body := parseConfig(t, staticJob("body", "    body_size_limit: 100B\n", tg.addr()))
	cfg.ScrapeConfigs = append(cfg.ScrapeConfigs, body.ScrapeConfigs...)
	m := newManager(t, st.pipe, cfg, Options{})
	start(t, m)

	eventually(t, 10*time.Second, "up of both jobs", func() bool {
		_, ok1 := st.last(t, "__name__", "up", "job", "samples")
		_, ok2 := st.last(t, "__name__", "up", "job", "body")
		return ok1 && ok2
	})
	for job, reason := range map[string]string{"samples": "sample limit exceeded", "body": "body size limit"} {
		if p, _ := st.last(t, "__name__", "up", "job", job); p.v != 0 {
			t.Errorf("%s: up %v", job, p.v)
		}
		if got := st.series(t, "__name__", "app_queue_length", "job", job); len(got) != 0 {
			t.Errorf("%s: samples stored over the limit: %v", job, got)
		}
		active := m.TargetsActive()[job]
		if len(active) != 1 || active[0].Health() != "down" || active[0].LastError() == nil ||
			!strings.Contains(active[0].LastError().Error(), reason) {
			t.Errorf("%s: target %v, want down with %q", job, active, reason)
		}
	}
	if p, _ := st.last(t, "__name__", "scrape_samples_scraped", "job", "samples"); p.v != 5 {
		t.Errorf("scrape_samples_scraped %v, want 5", p.v)
	}
}
