package consulapi_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigil-obs/vigil/registry/consulapi"
)

// checkStatus returns the status of a check as the agent lists it, "" when
// there is no such check.
func checkStatus(t *testing.T, c *api.Client, id string) string {
	t.Helper()
	checks, err := c.Agent().Checks()
	if err != nil {
		t.Fatalf("agent checks: %v", err)
	}
	if chk := checks[id]; chk != nil {
		return chk.Status
	}
	return ""
}

func TestRegisterHTTPAndTTLChecks(t *testing.T) {
	r := startReplica(t, database(t), consulapi.Options{})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("X-Probe") != "yes" || req.Method != http.MethodHead {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer target.Close()

	err := r.client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web-1", Name: "web", Tags: []string{"v1", "primary"}, Address: "127.0.0.1", Port: 8080,
		Meta: map[string]string{"version": "1.2"},
		Checks: api.AgentServiceChecks{
			{CheckID: "web-http", HTTP: target.URL + "/health", Method: http.MethodHead, Header: map[string][]string{"X-Probe": {"yes"}},
				Interval: "100ms", Timeout: "1s", DeregisterCriticalServiceAfter: "500ms"},
			{CheckID: "web-ttl", TTL: "300ms"},
		},
	})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	eventually(t, 5*time.Second, "the HTTP check to pass", func() bool { return checkStatus(t, r.client, "web-http") == "passing" })
	// A TTL check starts critical; updates make it pass.
	if got := checkStatus(t, r.client, "web-ttl"); got != "critical" {
		t.Fatalf("new TTL check is %q, want critical", got)
	}
	entries, _, err := r.client.Health().Service("web", "", true, nil)
	if err != nil || len(entries) != 0 {
		t.Fatalf("passing entries with a critical TTL check: %v, %v", entries, err)
	}
	if err := r.client.Agent().UpdateTTL("web-ttl", "all good", api.HealthPassing); err != nil {
		t.Fatalf("update ttl: %v", err)
	}
	entries, meta, err := r.client.Health().Service("web", "", true, nil)
	if err != nil || len(entries) != 1 {
		t.Fatalf("passing entries: %v, %v", entries, err)
	}
	e := entries[0]
	if e.Service.ID != "web-1" || e.Service.Service != "web" || e.Service.Port != 8080 || e.Service.Meta["version"] != "1.2" ||
		!slices.Equal(e.Service.Tags, []string{"v1", "primary"}) || e.Node.Node != "vigil" || e.Node.Datacenter != "dc1" || len(e.Checks) != 2 {
		t.Fatalf("entry = %+v / %+v / %+v", e.Service, e.Node, e.Checks)
	}
	if meta.LastIndex == 0 || !meta.KnownLeader {
		t.Fatalf("query meta = %+v", meta)
	}
	for _, c := range e.Checks {
		if c.CheckID == "web-ttl" && (c.Output != "all good" || c.Type != "ttl") {
			t.Fatalf("ttl check = %+v", c)
		}
		if c.CheckID == "web-http" && (c.Type != "http" || c.Definition.HTTP != target.URL+"/health" || c.Definition.IntervalDuration != 100*time.Millisecond ||
			!strings.Contains(c.Output, "200 OK")) {
			t.Fatalf("http check = %+v", c)
		}
	}
	// Without updates the TTL check expires.
	eventually(t, 5*time.Second, "the TTL check to expire", func() bool { return checkStatus(t, r.client, "web-ttl") == "critical" })
	if err := r.client.Agent().PassTTL("web-ttl", "back"); err != nil {
		t.Fatal(err)
	}

	// The target goes away: critical, then deregistered after 500ms.
	target.Close()
	eventually(t, 5*time.Second, "the HTTP check to fail", func() bool { return checkStatus(t, r.client, "web-http") == "critical" })
	failedAt := time.Now()
	eventually(t, 5*time.Second, "the critical service to be deregistered", func() bool {
		svcs, err := r.client.Agent().Services()
		return err == nil && len(svcs) == 0
	})
	if d := time.Since(failedAt); d < 300*time.Millisecond {
		t.Fatalf("deregistered %s after turning critical, want about 500ms", d)
	}
	// The history kept the transitions.
	resp, err := http.Get(r.srv.URL + "/v1/vigil/checks/web-http/history")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var hist []struct{ Status, At string }
	if err := jsonDecode(resp, &hist); err != nil {
		t.Fatal(err)
	}
	var statuses []string
	for _, h := range hist {
		statuses = append(statuses, h.Status)
	}
	if !slices.Equal(statuses, []string{"critical", "passing", "critical"}) {
		t.Fatalf("history of web-http (newest first) = %v", statuses)
	}
}

func TestFilters(t *testing.T) {
	r := startReplica(t, database(t), consulapi.Options{})
	ag := r.client.Agent()
	for _, s := range []*api.AgentServiceRegistration{
		{ID: "api-1", Name: "api", Tags: []string{"blue", "eu"}, Meta: map[string]string{"env": "prod"}, Check: &api.AgentServiceCheck{TTL: "10s", Status: "passing"}},
		{ID: "api-2", Name: "api", Tags: []string{"green", "eu"}, Meta: map[string]string{"env": "dev"}, Check: &api.AgentServiceCheck{TTL: "10s"}},
		{ID: "api-3", Name: "api", Tags: []string{"blue"}, Meta: map[string]string{"env": "prod"}},
		{ID: "db-1", Name: "db"},
	} {
		if err := ag.ServiceRegister(s); err != nil {
			t.Fatalf("register %s: %v", s.ID, err)
		}
	}
	ids := func(es []*api.ServiceEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Service.ID)
		}
		slices.Sort(out)
		return out
	}
	h := r.client.Health()
	cases := []struct {
		name    string
		tags    []string
		passing bool
		filter  string
		want    []string
	}{
		{name: "all", want: []string{"api-1", "api-2", "api-3"}},
		{name: "passing", passing: true, want: []string{"api-1", "api-3"}},
		{name: "tag", tags: []string{"blue"}, want: []string{"api-1", "api-3"}},
		{name: "two tags", tags: []string{"blue", "eu"}, want: []string{"api-1"}},
		{name: "meta", filter: `Service.Meta.env == "prod"`, want: []string{"api-1", "api-3"}},
		{name: "tag in", filter: `"green" in Service.Tags`, want: []string{"api-2"}},
		{name: "checks passing", filter: `Checks.Status == passing`, want: []string{"api-1"}},
		{name: "and not", filter: `Service.Meta.env == prod and not ("eu" in Service.Tags)`, want: []string{"api-3"}},
		{name: "or", filter: `Service.ID == "api-2" or Service.ID == "api-3"`, want: []string{"api-2", "api-3"}},
		{name: "is empty", filter: `Checks is empty`, want: nil},
		{name: "contains", filter: `Service.Tags contains "eu" and Service.Meta.env != "dev"`, want: []string{"api-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			es, _, err := h.ServiceMultipleTags("api", tc.tags, tc.passing, &api.QueryOptions{Filter: tc.filter})
			if tc.name == "is empty" {
				// "Checks" alone is not a selector of the subset.
				if err == nil || !strings.Contains(err.Error(), "400") {
					t.Fatalf("err = %v, want a 400", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(es); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{`Service.Meta.env matches "p.*"`, `Service.Port > 1`, `Nope == 1`, `Service.ID ==`, `(Service.ID == "a"`} {
		_, _, err := h.Service("api", "", false, &api.QueryOptions{Filter: bad})
		if err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("filter %q: err = %v, want a 400", bad, err)
		}
	}
	// Catalog views.
	svcs, _, err := r.client.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2 || len(svcs["api"]) != 3 || len(svcs["db"]) != 0 {
		t.Fatalf("catalog services = %v", svcs)
	}
	cs, _, err := r.client.Catalog().Service("api", "eu", &api.QueryOptions{Filter: `ServiceMeta.env == "dev"`})
	if err != nil || len(cs) != 1 || cs[0].ServiceID != "api-2" || cs[0].Node != "vigil" || cs[0].Address != "127.0.0.1" {
		t.Fatalf("catalog service = %+v, %v", cs, err)
	}
	nodes, _, err := r.client.Catalog().Nodes(nil)
	if err != nil || len(nodes) != 1 || nodes[0].Node != "vigil" {
		t.Fatalf("nodes = %+v, %v", nodes, err)
	}
	crit, _, err := h.State("critical", nil)
	if err != nil || len(crit) != 1 || crit[0].ServiceID != "api-2" {
		t.Fatalf("critical checks = %+v, %v", crit, err)
	}
	checks, _, err := h.Checks("api", nil)
	if err != nil || len(checks) != 2 {
		t.Fatalf("checks of api = %+v, %v", checks, err)
	}
	svc, _, err := r.client.Agent().Service("api-1", nil)
	if err != nil || svc.Service != "api" || svc.Meta["env"] != "prod" {
		t.Fatalf("agent service = %+v, %v", svc, err)
	}
	self, err := r.client.Agent().Self()
	if err != nil || self["Config"]["Datacenter"] != "dc1" || self["Config"]["NodeName"] != "vigil" {
		t.Fatalf("agent self = %v, %v", self, err)
	}
	if l, err := r.client.Status().Leader(); err != nil || l == "" {
		t.Fatalf("leader = %q, %v", l, err)
	}
	// Maintenance turns a service critical and back.
	if err := ag.EnableServiceMaintenance("api-3", "upgrade"); err != nil {
		t.Fatal(err)
	}
	es, _, err := h.Service("api", "", true, nil)
	if err != nil || slices.Contains(ids(es), "api-3") {
		t.Fatalf("api-3 in maintenance is still passing: %v, %v", ids(es), err)
	}
	if err := ag.DisableServiceMaintenance("api-3"); err != nil {
		t.Fatal(err)
	}
	es, _, err = h.Service("api", "", true, nil)
	if err != nil || !slices.Contains(ids(es), "api-3") {
		t.Fatalf("api-3 out of maintenance is not passing: %v, %v", ids(es), err)
	}
	// Replacing checks drops those not in the new registration.
	if err := ag.ServiceRegisterOpts(&api.AgentServiceRegistration{ID: "api-1", Name: "api"}, api.ServiceRegisterOpts{ReplaceExistingChecks: true}); err != nil {
		t.Fatal(err)
	}
	if got := checkStatus(t, r.client, "service:api-1"); got != "" {
		t.Fatalf("replaced check still there: %q", got)
	}
}

// blockingCall runs a blocking health query at index with wait and
// returns how long it took and the index it answered.
func blockingCall(t *testing.T, c *api.Client, index uint64, wait time.Duration) (time.Duration, uint64) {
	t.Helper()
	start := time.Now()
	_, meta, err := c.Health().Service("svc", "", false, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
	if err != nil {
		t.Errorf("blocking query: %v", err)
		return 0, 0
	}
	return time.Since(start), meta.LastIndex
}

func TestBlockingQuery(t *testing.T) {
	r := startReplica(t, database(t), consulapi.Options{})
	if err := r.client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "svc-1", Name: "svc"}); err != nil {
		t.Fatal(err)
	}
	_, meta, err := r.client.Health().Service("svc", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	idx := meta.LastIndex

	// No change: it returns at the wait, with the same index.
	took, got := blockingCall(t, r.client, idx, time.Second)
	if took < 950*time.Millisecond || took > 3*time.Second || got != idx {
		t.Fatalf("unchanged: took %s, index %d (want ≥ 1s, %d)", took, got, idx)
	}

	// A change wakes it well before the wait.
	go func() {
		time.Sleep(200 * time.Millisecond)
		_ = r.client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "svc-2", Name: "svc"})
	}()
	took, got = blockingCall(t, r.client, idx, 10*time.Second)
	if took > 3*time.Second || got <= idx {
		t.Fatalf("changed: took %s, index %d (want < 3s, > %d)", took, got, idx)
	}

	// The catalog blocks the way Prometheus asks it to.
	_, cmeta, err := r.client.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.Get(fmt.Sprintf("%s/v1/catalog/services?index=%d&wait=300ms&stale", r.srv.URL, cmeta.LastIndex))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(start); d < 250*time.Millisecond || resp.Header.Get("X-Consul-KnownLeader") != "true" ||
		resp.Header.Get("X-Consul-LastContact") != "0" || resp.Header.Get("X-Consul-Index") == "" {
		t.Fatalf("catalog blocking query took %s, headers %v", d, resp.Header)
	}
}

func TestChangeOnOneReplicaWakesAnother(t *testing.T) {
	url := database(t)
	a := startReplica(t, url, consulapi.Options{})
	b := startReplica(t, url, consulapi.Options{})
	if err := a.client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "svc-1", Name: "svc"}); err != nil {
		t.Fatal(err)
	}
	var idx uint64
	eventually(t, 5*time.Second, "b to see a's service", func() bool {
		es, meta, err := b.client.Health().Service("svc", "", false, nil)
		idx = meta.LastIndex
		return err == nil && len(es) == 1
	})
	go func() {
		time.Sleep(200 * time.Millisecond)
		_ = a.client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "svc-2", Name: "svc"})
	}()
	took, got := blockingCall(t, b.client, idx, 10*time.Second)
	if took > 3*time.Second || got <= idx {
		t.Fatalf("b's blocking query took %s, index %d (want < 3s, > %d)", took, got, idx)
	}
	es, _, err := b.client.Health().Service("svc", "", false, nil)
	if err != nil || len(es) != 2 {
		t.Fatalf("b sees %d entries, %v", len(es), err)
	}
}

func TestTCPAndGRPCChecks(t *testing.T) {
	r := startReplica(t, database(t), consulapi.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(gl) }()
	defer gs.Stop()

	tlsTarget := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer tlsTarget.Close()

	err = r.client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "orders-1", Name: "orders",
		Checks: api.AgentServiceChecks{
			{CheckID: "tcp", TCP: ln.Addr().String(), Interval: "100ms"},
			{CheckID: "grpc", GRPC: gl.Addr().String() + "/orders", Interval: "100ms"},
			{CheckID: "https-skip", HTTP: tlsTarget.URL, TLSSkipVerify: true, Interval: "100ms"},
			{CheckID: "https-verify", HTTP: tlsTarget.URL, Interval: "100ms", Status: "passing"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "tcp, grpc and https checks to settle", func() bool {
		return checkStatus(t, r.client, "tcp") == "passing" && checkStatus(t, r.client, "grpc") == "passing" &&
			checkStatus(t, r.client, "https-skip") == "passing" && checkStatus(t, r.client, "https-verify") == "critical"
	})
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_NOT_SERVING)
	_ = ln.Close()
	eventually(t, 5*time.Second, "tcp and grpc checks to fail", func() bool {
		return checkStatus(t, r.client, "tcp") == "critical" && checkStatus(t, r.client, "grpc") == "critical"
	})
}

func TestStateSurvivesRestart(t *testing.T) {
	url := database(t)
	a := startReplica(t, url, consulapi.Options{})
	if err := a.client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "keep-1", Name: "keep", Tags: []string{"x"},
		Check: &api.AgentServiceCheck{CheckID: "keep-ttl", TTL: "1h"}}); err != nil {
		t.Fatal(err)
	}
	if err := a.client.Agent().UpdateTTL("keep-ttl", "fine", "pass"); err != nil {
		t.Fatal(err)
	}
	a.stop()
	b := startReplica(t, url, consulapi.Options{})
	es, _, err := b.client.Health().Service("keep", "x", true, nil)
	if err != nil || len(es) != 1 || es[0].Checks[0].Output != "fine" {
		t.Fatalf("after restart: %+v, %v", es, err)
	}
}

func TestTwoReplicasRunEachCheckOnce(t *testing.T) {
	url := database(t)
	a := startReplica(t, url, consulapi.Options{})
	b := startReplica(t, url, consulapi.Options{})
	var mu sync.Mutex
	var hits []time.Time
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		mu.Lock()
		hits = append(hits, time.Now())
		mu.Unlock()
	}))
	defer target.Close()
	const interval = 200 * time.Millisecond
	if err := a.client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "once", Name: "once",
		Check: &api.AgentServiceCheck{HTTP: target.URL, Interval: interval.String()}}); err != nil {
		t.Fatal(err)
	}
	count := func(from time.Time) (n int, minGap time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		minGap = time.Hour
		var prev time.Time
		for _, h := range hits {
			if h.Before(from) {
				continue
			}
			if !prev.IsZero() {
				minGap = min(minGap, h.Sub(prev))
			}
			prev = h
			n++
		}
		return n, minGap
	}
	eventually(t, 5*time.Second, "the first run", func() bool { n, _ := count(time.Time{}); return n > 0 })
	from := time.Now()
	time.Sleep(10 * interval) // the window measured, not a wait for a condition
	n, gap := count(from)
	if n < 8 || n > 11 || gap < interval/2 {
		t.Fatalf("%d runs in 10 intervals, closest two %s apart: want 10, once per interval", n, gap)
	}

	// The replica running the checks stops: the other takes over within
	// two intervals of its lease (the elector's 50ms) plus one check
	// interval.
	leader, other := a, b
	if b.elector.Leader() {
		leader, other = b, a
	}
	leader.stop()
	stopped := time.Now()
	eventually(t, 5*time.Second, "the other replica to run the check", func() bool { n, _ := count(stopped.Add(10 * time.Millisecond)); return n > 0 })
	if d := time.Since(stopped); d > 2*interval+500*time.Millisecond {
		t.Fatalf("took %s to take over", d)
	}
	if !other.elector.Leader() {
		t.Fatal("the remaining replica does not lead")
	}
	from = time.Now()
	time.Sleep(5 * interval)
	if n, gap := count(from); n < 3 || n > 6 || gap < interval/2 {
		t.Fatalf("after failover %d runs in 5 intervals, closest %s apart", n, gap)
	}
}

func TestHealthSeries(t *testing.T) {
	r := startReplica(t, database(t), consulapi.Options{})
	var ok atomic.Bool
	ok.Store(true)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !ok.Load() {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer target.Close()
	if err := r.client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "pay-1", Name: "pay",
		Check: &api.AgentServiceCheck{CheckID: "pay-http", HTTP: target.URL, Interval: "100ms"}}); err != nil {
		t.Fatal(err)
	}
	status := func(s string) labels.Labels {
		return labels.FromStrings("__name__", "consul_health_service_status", "check", "pay-http", "node", "vigil",
			"service_id", "pay-1", "service_name", "pay", "status", s)
	}
	healthy := labels.FromStrings("__name__", "consul_catalog_service_node_healthy", "node", "vigil", "service_id", "pay-1", "service_name", "pay")
	want := func(cur string, h float64) func() bool {
		return func() bool {
			for _, s := range []string{"passing", "warning", "critical", "maintenance"} {
				v, found := r.app.last(status(s))
				if !found || (s == cur) != (v == 1) || (s != cur && v != 0) {
					return false
				}
			}
			v, found := r.app.last(healthy)
			return found && v == h
		}
	}
	eventually(t, 5*time.Second, "passing series", want("passing", 1))
	ok.Store(false)
	eventually(t, 5*time.Second, "warning series (429)", want("warning", 0))
	if err := r.client.Agent().ServiceDeregister("pay-1"); err != nil {
		t.Fatal(err)
	}
	if err := r.client.Agent().ServiceDeregister("pay-1"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("second deregister: %v, want a 404", err)
	}
	eventually(t, 5*time.Second, "stale markers", func() bool {
		for _, s := range []string{"passing", "warning", "critical", "maintenance"} {
			if v, _ := r.app.last(status(s)); !isStale(v) {
				return false
			}
		}
		v, _ := r.app.last(healthy)
		return isStale(v)
	})
}

func TestBadInput(t *testing.T) {
	r := startReplica(t, database(t), consulapi.Options{Tokens: []string{"s3cret"}})
	do := func(method, path, body string, hdr map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), method, r.srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, _ = fmt.Fprint(b, readAll(resp))
		return resp.StatusCode, b.String()
	}
	tok := map[string]string{"X-Consul-Token": "s3cret"}
	cases := []struct {
		name, method, path, body string
		hdr                      map[string]string
		code                     int
		contains                 string
	}{
		{"no token", "GET", "/v1/agent/services", "", nil, 403, "ACL not found"},
		{"wrong token", "GET", "/v1/agent/services", "", map[string]string{"X-Consul-Token": "nope"}, 403, "ACL not found"},
		{"query token", "GET", "/v1/agent/services?token=s3cret", "", nil, 200, "{}"},
		{"leader needs none", "GET", "/v1/status/leader", "", nil, 200, ":8300"},
		{"bad json", "PUT", "/v1/agent/service/register", `{"Name": "x", "Port": "80"}`, tok, 400, "Port"},
		{"bad check json", "PUT", "/v1/agent/service/register", `{"Name": "x", "Check": {"TTL": 5, "Interval": "soon"}}`, tok, 400, "Check.Interval"},
		{"syntax", "PUT", "/v1/agent/service/register", `{"Name": `, tok, 400, "body"},
		{"no name", "PUT", "/v1/agent/service/register", `{"ID": "x"}`, tok, 400, "Name"},
		{"two kinds", "PUT", "/v1/agent/service/register", `{"Name": "x", "Check": {"TTL": "1s", "TCP": "a:1"}}`, tok, 400, "exactly one"},
		{"script", "PUT", "/v1/agent/service/register", `{"Name": "x", "Check": {"Args": ["true"], "Interval": "1s"}}`, tok, 400, "Check.Args"},
		{"unknown endpoint", "GET", "/v1/kv/foo", "", tok, 404, "Unknown endpoint"},
		{"wrong method", "GET", "/v1/agent/service/register", "", tok, 405, "method GET not allowed"},
		{"wrong method read", "DELETE", "/v1/catalog/services", "", tok, 405, "not allowed"},
		{"unknown service", "PUT", "/v1/agent/service/deregister/nope", "", tok, 404, "Unknown service ID"},
		{"unknown check", "PUT", "/v1/agent/check/pass/nope", "", tok, 404, "Unknown check ID"},
		{"bad state", "GET", "/v1/health/state/sick", "", tok, 400, "Invalid check state"},
		{"bad index", "GET", "/v1/catalog/services?index=x", "", tok, 400, "Invalid index"},
		{"bad wait", "GET", "/v1/catalog/services?index=1&wait=forever", "", tok, 400, "Invalid wait"},
		{"maintenance without enable", "PUT", "/v1/agent/service/maintenance/x", "", tok, 400, "enable"},
		{"bad update status", "PUT", "/v1/agent/check/update/x", `{"Status": "great"}`, tok, 400, "Status"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(tc.method, tc.path, tc.body, tc.hdr)
			if code != tc.code || !strings.Contains(body, tc.contains) {
				t.Fatalf("%s %s = %d %q, want %d containing %q", tc.method, tc.path, code, body, tc.code, tc.contains)
			}
		})
	}
}
