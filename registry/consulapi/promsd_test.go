package consulapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/consul"
	"github.com/prometheus/prometheus/discovery/targetgroup"

	"github.com/vigil-obs/vigil/registry/consulapi"
)

// TestPrometheusConsulSD runs Prometheus's own consul_sd_configs
// discoverer, unchanged, against the API: it sees the services, and a
// new one through its blocking catalog watch (120 s wait) at once.
func TestPrometheusConsulSD(t *testing.T) {
	r := startReplica(t, database(t), consulapi.Options{})
	if err := r.client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80,
		Tags: []string{"prod"}, Check: &api.AgentServiceCheck{TTL: "1h", Status: "passing"}}); err != nil {
		t.Fatal(err)
	}
	conf := &consul.SDConfig{Server: r.srv.Listener.Addr().String(), Scheme: "http", AllowStale: true,
		RefreshInterval: model.Duration(10 * time.Millisecond), TagSeparator: ","}
	refresh := discovery.NewRefreshMetrics(prometheus.NewRegistry())
	metrics := conf.NewDiscovererMetrics(prometheus.NewRegistry(), refresh)
	d, err := consul.NewDiscovery(conf, nil, metrics)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan []*targetgroup.Group, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx, ch)
	}()
	defer func() { cancel(); <-done }()

	targets := map[string]model.LabelSet{}
	await := func(what string, cond func() bool) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for !cond() {
			select {
			case tgs := <-ch:
				for _, tg := range tgs {
					for _, tl := range tg.Targets {
						targets[string(tl[model.AddressLabel])] = tg.Labels.Merge(tl)
					}
				}
			case <-timeout:
				t.Fatalf("timed out waiting for %s; have %v", what, targets)
			}
		}
	}
	await("web-1", func() bool { return targets["10.0.0.1:80"] != nil })
	ls := targets["10.0.0.1:80"]
	if ls["__meta_consul_service"] != "web" || ls["__meta_consul_dc"] != "dc1" || ls["__meta_consul_health"] != "passing" ||
		ls["__meta_consul_tags"] != ",prod," || ls["__meta_consul_node"] != "vigil" {
		t.Fatalf("labels = %v", ls)
	}
	start := time.Now()
	if err := r.client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "api-1", Name: "api", Port: 9090}); err != nil {
		t.Fatal(err)
	}
	// No address: the node's.
	await("api-1", func() bool { return targets["127.0.0.1:9090"] != nil })
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a new service took %s to be discovered", d)
	}
}
