package scrape

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/consul"
	"github.com/prometheus/prometheus/model/labels"
)

// fakeRegistry answers the part of Consul's HTTP API that Prometheus's
// consul_sd_configs uses, as Vigil's registry does: the agent's
// datacenter, the catalog's services and each service's instances, with
// X-Consul-Index on every answer and blocking queries (index and wait)
// that return when the index moves past the client's or wait elapses.
type fakeRegistry struct {
	srv *httptest.Server

	mu       sync.Mutex
	index    uint64
	changed  chan struct{} // closed and replaced on every change
	services map[string][]instance
}

type instance struct {
	ID, Address string
	Port        int
	Meta        map[string]string
}

func newFakeRegistry(t *testing.T) *fakeRegistry {
	t.Helper()
	f := &fakeRegistry{index: 1, changed: make(chan struct{}), services: map[string][]instance{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/agent/self", func(w http.ResponseWriter, r *http.Request) {
		f.answer(w, r, false, func() any { return map[string]any{"Config": map[string]any{"Datacenter": "dc1"}} })
	})
	mux.HandleFunc("GET /v1/catalog/services", func(w http.ResponseWriter, r *http.Request) {
		f.answer(w, r, true, func() any {
			out := map[string][]string{}
			for name := range f.services {
				out[name] = []string{}
			}
			return out
		})
	})
	mux.HandleFunc("GET /v1/health/service/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		f.answer(w, r, true, func() any {
			out := []any{}
			for _, in := range f.services[name] {
				out = append(out, map[string]any{
					"Node":    map[string]any{"Node": "vigil", "Address": "127.0.0.1", "Datacenter": "dc1"},
					"Service": map[string]any{"ID": in.ID, "Service": name, "Address": in.Address, "Port": in.Port, "Meta": in.Meta, "Tags": []string{}},
					"Checks":  []any{map[string]any{"Status": "passing", "ServiceName": name}},
				})
			}
			return out
		})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// answer writes body() once the index differs from the query's index
// (for blocking endpoints), or its wait elapsed, or the client left.
func (f *fakeRegistry) answer(w http.ResponseWriter, r *http.Request, blocking bool, body func() any) {
	q := r.URL.Query()
	if blocking && q.Has("index") {
		idx, _ := strconv.ParseUint(q.Get("index"), 10, 64)
		wait := 5 * time.Minute
		if d, err := time.ParseDuration(q.Get("wait")); err == nil {
			wait = d
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for {
			f.mu.Lock()
			cur, ch := f.index, f.changed
			f.mu.Unlock()
			if cur != idx {
				break
			}
			select {
			case <-ch:
				continue
			case <-timer.C:
			case <-r.Context().Done():
				return
			}
			break
		}
	}
	f.mu.Lock()
	b, _ := json.Marshal(body())
	idx := f.index
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
	w.Header().Set("X-Consul-KnownLeader", "true")
	w.Header().Set("X-Consul-LastContact", "0")
	_, _ = w.Write(b)
}

// set replaces a service's instances (none deregisters it).
func (f *fakeRegistry) set(name string, ins ...instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ins) == 0 {
		delete(f.services, name)
	} else {
		f.services[name] = ins
	}
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeRegistry) addr() string {
	u, _ := url.Parse(f.srv.URL)
	return u.Host
}

func hostPort(t *testing.T, tg *target) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(tg.addr())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return h, port
}

// TestRegistryJob: RegistryJob discovers the registry's instances
// through Prometheus's Consul discovery, with the job, instance, path
// and interval each instance registered, drops those that opt out, and
// follows deregistrations.
func TestRegistryJob(t *testing.T) {
	st := newStore(t)
	c, _, _ := appMetrics()
	api, checkout, hidden := newTarget(t, c), newTarget(t, c), newTarget(t, c)
	reg := newFakeRegistry(t)
	h, p := hostPort(t, api)
	reg.set("api", instance{ID: "api-1", Address: h, Port: p, Meta: map[string]string{"scrape_interval": "300ms"}})
	h, p = hostPort(t, checkout)
	reg.set("checkout", instance{ID: "checkout-1", Address: h, Port: p, Meta: map[string]string{"metrics_path": "/internal/metrics"}})
	h, p = hostPort(t, hidden)
	reg.set("hidden", instance{ID: "hidden-1", Address: h, Port: p, Meta: map[string]string{"scrape": "false"}})

	job := RegistryJob(reg.addr())
	// Questions follow each other closely in the test.
	job.ServiceDiscoveryConfigs[0].(*consul.SDConfig).RefreshInterval = model.Duration(100 * time.Millisecond)
	m := newManager(t, st.pipe, Config{}, Options{Jobs: []*promconfig.ScrapeConfig{job}})
	start(t, m)

	eventually(t, 10*time.Second, "two registry targets", func() bool {
		return len(m.TargetsActive()[RegistryJobName]) == 2
	})
	byJob := map[string]string{}
	for _, tg := range m.TargetsActive()[RegistryJobName] {
		ls := tg.Labels(labels.NewBuilder(labels.EmptyLabels()))
		byJob[ls.Get("job")] = ls.Get("instance") + " " + tg.URL().String() + " " + tg.GetValue(model.ScrapeIntervalLabel) + " " + tg.GetValue(model.ScrapeTimeoutLabel)
	}
	want := map[string]string{
		"api":      api.addr() + " " + api.srv.URL + "/metrics 300ms 300ms",
		"checkout": checkout.addr() + " " + checkout.srv.URL + "/internal/metrics 15s 10s",
	}
	if !mapsEqual(byJob, want) {
		t.Errorf("targets:\n%v\nwant\n%v", byJob, want)
	}
	if n := m.TargetsDroppedCounts()[RegistryJobName]; n != 1 {
		t.Errorf("%d dropped targets, want 1 (hidden)", n)
	}
	eventually(t, 10*time.Second, "api scraped as job api", func() bool {
		p, ok := st.last(t, "__name__", "up", "job", "api", "instance", api.addr())
		return ok && p.v == 1
	})
	if hidden.requests.Load() != 0 {
		t.Error("the instance registered with scrape=false was scraped")
	}

	reg.set("api")
	eventually(t, 10*time.Second, "api gone", func() bool {
		var jobs []string
		for _, tg := range m.TargetsActive()[RegistryJobName] {
			jobs = append(jobs, tg.Labels(labels.NewBuilder(labels.EmptyLabels())).Get("job"))
		}
		return slices.Equal(jobs, []string{"checkout"})
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRegistryJobValid: the job passes Prometheus's validation with the
// defaults of New, and its relabelling reads the documented keys.
func TestRegistryJobValid(t *testing.T) {
	job := RegistryJob("127.0.0.1:8500")
	if err := job.Validate(DefaultGlobalConfig()); err != nil {
		t.Fatal(err)
	}
	if job.ScrapeInterval != model.Duration(DefaultScrapeInterval) || job.MetricsPath != "/metrics" {
		t.Errorf("interval %v, path %s", job.ScrapeInterval, job.MetricsPath)
	}
	var src []string
	for _, rc := range job.RelabelConfigs {
		for _, l := range rc.SourceLabels {
			src = append(src, string(l))
		}
	}
	for _, key := range []string{MetaScrape, MetaMetricsPath, MetaScrapeInterval, MetaScrapeTimeout} {
		if !slices.Contains(src, "__meta_consul_service_metadata_"+key) {
			t.Errorf("%s not read", key)
		}
	}
	if !strings.Contains(job.ServiceDiscoveryConfigs[0].(*consul.SDConfig).Server, "8500") {
		t.Error("server not set")
	}
}
