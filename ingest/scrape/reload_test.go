package scrape

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	promconfig "github.com/prometheus/prometheus/config"
)

// promFile is a Prometheus configuration file with sections Vigil
// ignores, scraping addr as job.
func promFile(job, addr string) string {
	return fmt.Sprintf(`
global:
  external_labels: {dc: eu1}
rule_files: [rules/*.yml]
alerting:
  alertmanagers: [{static_configs: [{targets: ['127.0.0.1:9093']}]}]
remote_write: [{url: 'http://127.0.0.1:1/api/v1/write'}]
scrape_configs:
  - job_name: %s
    scrape_interval: %s
    scrape_timeout: %s
    static_configs: [{targets: ['%s']}]
`, job, testInterval, testInterval, addr)
}

// TestFileSD: file_sd_configs follow their file: a target added or
// removed there is scraped or dropped.
func TestFileSD(t *testing.T) {
	st := newStore(t)
	c, _, _ := appMetrics()
	a, b := newTarget(t, c), newTarget(t, c)
	dir := t.TempDir()
	writeFile(t, dir, "targets.json", fmt.Sprintf(`[{"targets": [%q], "labels": {"team": "a"}}]`, a.addr()))
	// The SD file is relative to the configuration file, as in Prometheus.
	file := writeFile(t, dir, "prometheus.yml", fmt.Sprintf(`
scrape_configs:
  - job_name: files
    scrape_interval: %s
    scrape_timeout: %s
    file_sd_configs:
      - files: [targets.json]
        refresh_interval: 200ms
`, testInterval, testInterval))
	m := newManager(t, st.pipe, Config{ConfigFile: file}, Options{})
	start(t, m)
	urlOf := func(tg *target) string { return tg.srv.URL + "/metrics" }

	eventually(t, 10*time.Second, "target a", func() bool {
		return slices.Equal(activeTargets(m, "files"), []string{urlOf(a)})
	})
	eventually(t, 10*time.Second, "a's series with the file's labels", func() bool {
		_, ok := st.last(t, "__name__", "up", "job", "files", "instance", a.addr(), "team", "a")
		return ok
	})
	writeFile(t, dir, "targets.json", fmt.Sprintf(`[{"targets": [%q], "labels": {"team": "b"}}]`, b.addr()))
	eventually(t, 10*time.Second, "target b instead of a", func() bool {
		return slices.Equal(activeTargets(m, "files"), []string{urlOf(b)})
	})
	eventually(t, 10*time.Second, "b's series", func() bool {
		_, ok := st.last(t, "__name__", "up", "job", "files", "instance", b.addr(), "team", "b")
		return ok
	})
}

// TestReload: a reload with an invalid file keeps the running jobs and
// reports the error; a valid file replaces them. Sections other than
// global and scrape_configs are ignored.
func TestReload(t *testing.T) {
	st := newStore(t)
	c, _, _ := appMetrics()
	a, b := newTarget(t, c), newTarget(t, c)
	dir := t.TempDir()
	file := writeFile(t, dir, "prometheus.yml", promFile("first", a.addr()))
	reg := prometheus.NewRegistry()
	m := newManager(t, st.pipe, Config{ConfigFile: file}, Options{Registerer: reg})
	start(t, m)
	eventually(t, 10*time.Second, "job first", func() bool { return len(activeTargets(m, "first")) == 1 })
	ctx := context.Background()

	for _, bad := range []string{
		"scrape_configs: [{job_name: x, scrape_interval: 1s, scrape_timeout: 2s, static_configs: [{targets: ['a:1']}]}]",
		"scrape_configs: [{job_name: x, unknown_key: 1}]",
		"scrape_configs: [{job_name: x}, {job_name: x}]",
		"global: {scrape_interval: 1s, scrape_timeout: 2s}",
		"scrape_configs: [{",
	} {
		writeFile(t, dir, "prometheus.yml", bad)
		err := m.Reload(ctx)
		if err == nil {
			t.Fatalf("reload of %q succeeded", bad)
		}
		s := m.Status()
		if s.Success || s.Error != err.Error() || !slices.Equal(s.Jobs, []string{"first"}) {
			t.Errorf("status after %q: %+v", bad, s)
		}
		if got := testutil.ToFloat64(m.metrics.reloadSuccess); got != 0 {
			t.Errorf("vigil_scrape_last_reload_successful %v", got)
		}
		if len(activeTargets(m, "first")) != 1 {
			t.Fatalf("job first stopped after the invalid %q", bad)
		}
	}
	writeFile(t, dir, "prometheus.yml", promFile("second", b.addr()))
	if err := m.Reload(ctx); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if s := m.Status(); !s.Success || !slices.Equal(s.Jobs, []string{"second"}) || !s.Leader {
		t.Errorf("status: %+v", s)
	}
	eventually(t, 10*time.Second, "job second alone", func() bool {
		act := m.TargetsActive()
		return len(act["first"]) == 0 && len(act["second"]) == 1
	})
	eventually(t, 10*time.Second, "b scraped", func() bool {
		_, ok := st.last(t, "__name__", "up", "job", "second", "instance", b.addr())
		return ok
	})
	// The external label is not a series label, as in Prometheus.
	if got := st.series(t, "__name__", "up", "job", "second"); len(got) != 1 || strings.Contains(fmt.Sprint(got), "eu1") {
		t.Errorf("up of job second: %v", got)
	}
	if got := testutil.ToFloat64(m.metrics.reloadSuccess); got != 1 {
		t.Errorf("vigil_scrape_last_reload_successful %v", got)
	}
	if got := testutil.ToFloat64(m.metrics.reloadFailures); got != 5 {
		t.Errorf("vigil_scrape_reload_failures_total %v", got)
	}
	// Prometheus's own metrics are registered on the registerer.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, want := range []string{"prometheus_target_scrape_pools_total", "prometheus_sd_discovered_targets", "vigil_scrape_leader"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not registered: %v", want, names)
		}
	}
}

// TestNewInvalidFile: a file that does not load is an error at start.
func TestNewInvalidFile(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "prometheus.yml", "scrape_configs: [{job_name: x, foo: 1}]")
	if _, err := New(Config{ConfigFile: file}, Options{Appendable: discard{}}); err == nil {
		t.Fatal("no error")
	}
	if _, err := New(Config{ConfigFile: dir + "/missing.yml"}, Options{Appendable: discard{}}); err == nil {
		t.Fatal("no error for a missing file")
	}
	if _, err := New(Config{}, Options{}); err == nil {
		t.Fatal("no error without an appendable")
	}
	// A job of the file and a built-in job of the same name.
	file = writeFile(t, dir, "dup.yml", promFile(RegistryJobName, "127.0.0.1:1"))
	if _, err := New(Config{ConfigFile: file}, Options{Appendable: discard{}, Jobs: nil}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{ConfigFile: file}, Options{Appendable: discard{}, Jobs: []*promconfig.ScrapeConfig{RegistryJob("127.0.0.1:8500")}}); err == nil {
		t.Fatal("no error for a duplicate job name")
	}
}
