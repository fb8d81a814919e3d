package scrape

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/file"
	"gopkg.in/yaml.v3"
)

func decodeFile(t *testing.T, path string) (Config, error) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err = dec.Decode(&c)
	if err == nil {
		err = c.Validate()
	}
	return c, err
}

func TestConfigFiles(t *testing.T) {
	good, _ := filepath.Glob("testdata/*.good.yaml")
	bad, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(good) == 0 || len(bad) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range good {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := decodeFile(t, f); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, f := range bad {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := decodeFile(t, f); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestConfigDefaults: Prometheus's defaults apply as Prometheus applies
// them, with Vigil's global scrape_interval of 15s.
func TestConfigDefaults(t *testing.T) {
	c, err := decodeFile(t, "testdata/defaults.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc := c.ScrapeConfigs[0]
	if sc.ScrapeInterval != model.Duration(15*time.Second) || sc.ScrapeTimeout != model.Duration(10*time.Second) ||
		sc.MetricsPath != "/metrics" || sc.Scheme != "http" || sc.HonorLabels || !sc.HonorTimestamps {
		t.Errorf("defaults: interval %v timeout %v path %s scheme %s honor %v/%v", sc.ScrapeInterval, sc.ScrapeTimeout, sc.MetricsPath, sc.Scheme, sc.HonorLabels, sc.HonorTimestamps)
	}

	c, err = decodeFile(t, "testdata/inline.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.ConfigFile != "/etc/prometheus/prometheus.yml" || len(c.ScrapeConfigs) != 3 {
		t.Fatalf("config: %+v", c)
	}
	node, api := c.ScrapeConfigs[0], c.ScrapeConfigs[1]
	// The section's global: timeout and sample limit, interval Vigil's.
	if node.ScrapeInterval != model.Duration(15*time.Second) || node.ScrapeTimeout != model.Duration(5*time.Second) || node.SampleLimit != 1000 {
		t.Errorf("node: interval %v timeout %v sample_limit %d", node.ScrapeInterval, node.ScrapeTimeout, node.SampleLimit)
	}
	if api.ScrapeInterval != model.Duration(30*time.Second) || !api.HonorLabels || api.BodySizeLimit != 10<<20 ||
		api.HTTPClientConfig.BasicAuth == nil || string(api.HTTPClientConfig.BasicAuth.Password) != "secret" ||
		!api.HTTPClientConfig.TLSConfig.InsecureSkipVerify || len(api.RelabelConfigs) != 1 || len(api.MetricRelabelConfigs) != 1 {
		t.Errorf("api: %+v", api)
	}

	// Built in Go: New completes them with the defaults.
	m, err := New(Config{ScrapeConfigs: []*promconfig.ScrapeConfig{{JobName: "x"}}}, Options{Appendable: discard{}})
	if err != nil {
		t.Fatal(err)
	}
	if sc := m.current.ScrapeConfigs[0]; sc.ScrapeInterval != model.Duration(DefaultScrapeInterval) || sc.ScrapeTimeout != model.Duration(10*time.Second) {
		t.Errorf("completed: %v %v", sc.ScrapeInterval, sc.ScrapeTimeout)
	}
}

// TestLoadFile: only global and scrape_configs are read, the others are
// ignored with a warning naming them; relative paths are relative to the
// file.
func TestLoadFile(t *testing.T) {
	var logs bytes.Buffer
	cfg, err := LoadFile("testdata/prometheus.yml", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"rule_files", "alerting", "remote_write"} {
		if !strings.Contains(logs.String(), "section="+section) {
			t.Errorf("no warning about %s:\n%s", section, logs.String())
		}
	}
	if len(cfg.ScrapeConfigs) != 2 || cfg.GlobalConfig.ScrapeInterval != model.Duration(time.Minute) {
		t.Fatalf("config: %+v", cfg)
	}
	node, fast := cfg.ScrapeConfigs[0], cfg.ScrapeConfigs[1]
	if node.ScrapeInterval != model.Duration(time.Minute) || fast.ScrapeInterval != model.Duration(5*time.Second) || fast.ScrapeTimeout != model.Duration(5*time.Second) {
		t.Errorf("intervals: %v, %v/%v", node.ScrapeInterval, fast.ScrapeInterval, fast.ScrapeTimeout)
	}
	abs, _ := filepath.Abs("testdata")
	files := node.ServiceDiscoveryConfigs[0].(*file.SDConfig).Files
	if len(files) != 1 || files[0] != filepath.Join("testdata", "targets/*.json") && files[0] != filepath.Join(abs, "targets/*.json") {
		t.Errorf("file_sd files: %v", files)
	}

	// Without a global section, Vigil's interval applies.
	dir := t.TempDir()
	p := writeFile(t, dir, "p.yml", "scrape_configs: [{job_name: a, static_configs: [{targets: ['a:1']}]}]\nglobal:\n")
	cfg, err = LoadFile(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ScrapeConfigs[0].ScrapeInterval != model.Duration(DefaultScrapeInterval) {
		t.Errorf("interval %v", cfg.ScrapeConfigs[0].ScrapeInterval)
	}
}
