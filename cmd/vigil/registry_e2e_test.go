package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	consul "github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

// withRegistry turns the registry on, on a loopback port.
func withRegistry(c *Config) { c.Registry.Address = "127.0.0.1:0" }

// queryBy runs the instant query q and returns its samples by the value of label.
func queryBy(t *testing.T, ts *testServer, q, label string) map[string]float64 {
	t.Helper()
	resp, code := getJSON[promVector](t, ts.httpURL+"/api/v1/query?query="+url.QueryEscape(q))
	if code != http.StatusOK || resp.Status != "success" {
		t.Fatalf("%s: %d %+v", q, code, resp)
	}
	out := map[string]float64{}
	for _, r := range resp.Data.Result {
		v, _ := strconv.ParseFloat(fmt.Sprint(r.Value[1]), 64)
		out[r.Metric[label]] = v
	}
	return out
}

// registeredInstance serves a counter on a loopback listener and
// registers it with ts's registry as user-service-1, with an HTTP check
// and the meta that makes Vigil scrape it every 500 ms. It returns the
// Consul client, the instance's address and its server.
func registeredInstance(t *testing.T, ts *testServer) (*consul.Client, string, *http.Server) {
	t.Helper()
	reg := prometheus.NewRegistry()
	served := prometheus.NewCounter(prometheus.CounterOpts{Name: "users_served_total", Help: "Users served."})
	reg.MustRegister(served)
	served.Add(42)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
	go func() { _ = target.Serve(ln) }()
	t.Cleanup(func() { _ = target.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	instance := ln.Addr().String()

	client, err := consul.NewClient(&consul.Config{Address: ts.registry})
	if err != nil {
		t.Fatal(err)
	}
	err = client.Agent().ServiceRegister(&consul.AgentServiceRegistration{
		ID: "user-service-1", Name: "user-service", Address: "127.0.0.1", Port: port, Tags: []string{"v1"},
		Meta:  map[string]string{"metrics_path": "/metrics", "scrape_interval": "500ms"},
		Check: &consul.AgentServiceCheck{HTTP: "http://" + instance + "/metrics", Interval: "1s", Timeout: "1s"},
	})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	return client, instance, target
}

// TestRegistryInstanceIsScrapedAndChecked registers an instance the way
// the seed's services do, through hashicorp/consul/api against Vigil's
// registry, with no scrape configuration at all: Vigil health-checks it,
// scrapes it (up 1, its own counter), and when its listener closes the
// check turns critical and up turns 0.
func TestRegistryInstanceIsScrapedAndChecked(t *testing.T) {
	ts := startServer(t, pgtest.NewDatabase(t), withRegistry)

	client, instance, target := registeredInstance(t, ts)
	waitUntil(t, "the registered instance scraped and passing", func() (bool, string) {
		up := queryBy(t, ts, `up{job="user-service"}`, "instance")
		served := queryBy(t, ts, `users_served_total{job="user-service"}`, "instance")
		passing := queryBy(t, ts, `consul_health_service_status{service_name="user-service", status="passing"}`, "service_id")
		return up[instance] == 1 && served[instance] == 42 && passing["user-service-1"] == 1,
			fmt.Sprintf("up %v, users_served_total %v, passing %v", up, served, passing)
	})
	entries, _, err := client.Health().Service("user-service", "v1", true, nil)
	if err != nil || len(entries) != 1 || net.JoinHostPort(entries[0].Service.Address, strconv.Itoa(entries[0].Service.Port)) != instance {
		t.Fatalf("passing entries: %v %+v", err, entries)
	}

	// The instance goes away: its check turns critical and up 0.
	_ = target.Close()
	waitUntil(t, "the closed instance down and critical", func() (bool, string) {
		up := queryBy(t, ts, `up{job="user-service"}`, "instance")
		critical := queryBy(t, ts, `consul_health_service_status{service_name="user-service", status="critical"}`, "service_id")
		return up[instance] == 0 && len(up) == 1 && critical["user-service-1"] == 1, fmt.Sprintf("up %v, critical %v", up, critical)
	})
	entries, _, err = client.Health().Service("user-service", "", true, nil)
	if err != nil || len(entries) != 0 {
		t.Fatalf("passing entries after the failure: %v %+v", err, entries)
	}
	targets, code := getJSON[struct {
		Data struct {
			ActiveTargets []struct {
				ScrapePool string            `json:"scrapePool"`
				Health     string            `json:"health"`
				LastError  string            `json:"lastError"`
				Labels     map[string]string `json:"labels"`
			} `json:"activeTargets"`
		} `json:"data"`
	}](t, ts.httpURL+"/api/v1/targets")
	if code != http.StatusOK || len(targets.Data.ActiveTargets) != 1 || targets.Data.ActiveTargets[0].Health != "down" ||
		targets.Data.ActiveTargets[0].Labels["job"] != "user-service" || targets.Data.ActiveTargets[0].LastError == "" {
		t.Fatalf("targets: %d %+v", code, targets)
	}
}

// TestRegistryDemoFleetDiscovers runs the reference client's demo fleet
// against Vigil's registry: the user-service instances register, the
// gateway finds them through it and serves requests, and Vigil scrapes
// the instances it was never told about.
func TestRegistryDemoFleetDiscovers(t *testing.T) {
	ts := startServer(t, pgtest.NewDatabase(t), withRegistry, fastDerive)
	bin := filepath.Join(t.TempDir(), "vigil-demo")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vigil-demo")
	build.Dir = filepath.Join("..", "..", "client")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build vigil-demo: %v\n%s", err, out)
	}
	users := []string{freePort(t), freePort(t), freePort(t)}
	ctx, cancel := context.WithCancel(context.Background())
	demo := exec.CommandContext(ctx, bin, "-otlp-endpoint", ts.grpcAddr, "-gateway-addr", freePort(t),
		"-user-addrs", strings.Join(users, ","), "-consul-addr", ts.registry, "-scrape-interval", "1s",
		"-load", "20", "-metric-interval", "1s", "-log-level", "warn")
	var out strings.Builder
	demo.Stdout, demo.Stderr = &out, &out
	if err := demo.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = demo.Wait()
		if t.Failed() {
			t.Logf("vigil-demo output:\n%s", out.String())
		}
	})

	waitUntil(t, "instances registered, scraped, and called by the gateway", func() (bool, string) {
		up := queryBy(t, ts, `up{job="user-service"}`, "instance")
		healthy := 0
		for _, u := range users {
			if up[u] == 1 {
				healthy++
			}
		}
		e, _ := readMap(t, ts).edge("gateway", "user-service")
		return healthy == len(users) && e.Calls > 0, fmt.Sprintf("up %v, edge %+v", up, e)
	})
	client, err := consul.NewClient(&consul.Config{Address: ts.registry})
	if err != nil {
		t.Fatal(err)
	}
	entries, _, err := client.Health().Service("user-service", "", true, nil)
	if err != nil || len(entries) != len(users) {
		t.Fatalf("passing user-service instances: %v %d", err, len(entries))
	}
}

// TestTargetsUIBrowser shows a registered instance on the targets page:
// its scrape target up, and under registered services its passing check;
// the page renders in Chinese.
func TestTargetsUIBrowser(t *testing.T) {
	requireUI(t)
	chromium := chromiumPath(t)
	ts := startServer(t, pgtest.NewDatabase(t), withRegistry)
	_, instance, _ := registeredInstance(t, ts)
	waitUntil(t, "the registered instance scraped", func() (bool, string) {
		up := queryBy(t, ts, `up{job="user-service"}`, "instance")
		return up[instance] == 1, fmt.Sprint(up)
	})

	b := newBrowser(t, chromium)
	b.do(t, chromedp.Navigate(ts.httpURL+"/"))
	b.waitFor(t, `!!document.querySelector('[data-nav="targets"]')`)
	b.do(t, chromedp.Click(chromedp.CSS(`[data-nav="targets"]`)))
	row := fmt.Sprintf(`[data-target="http://%s/metrics"]`, instance)
	b.waitFor(t, fmt.Sprintf(`document.querySelector('%s')?.getAttribute('data-health') === 'up'`, row))
	b.screenshot(t, "targets")

	b.do(t, chromedp.Click(chromedp.CSS(`[data-tab="services"]`)))
	b.waitFor(t, `(() => { const s = document.querySelector('[data-service="user-service"]');
		return s && s.querySelector('[data-instance="user-service-1"]') && s.querySelector('[data-check][data-status="passing"]'); })()`)
	b.screenshot(t, "targets-services")

	_ = eval[chromedp.Void](t, b, `(() => { const s = document.querySelector('.lang-select'); s.value = 'zh-CN'; s.dispatchEvent(new Event('change', { bubbles: true })); })()`)
	b.waitFor(t, `document.querySelector('.targets-page h1')?.textContent === '监控目标' && document.querySelector('[data-tab="services"]')?.textContent === '注册服务'`)
	b.screenshot(t, "targets-services-zh")
}
