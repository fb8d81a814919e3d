package registryapi

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/registry"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/registrystore"
)

// TestOverRegistry serves a real Registry over its PostgreSQL store:
// services registered, a TTL check updated twice (two transitions), a
// service put in maintenance, and one deregistered, as the registry's
// Consul API would.
func TestOverRegistry(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	now := t0
	reg, err := registry.New(registry.DefaultConfig(), registry.Options{Store: registrystore.New(pool), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []registry.Registration{
		{Service: registry.Service{ID: "checkout-1", Name: "checkout", Address: "10.0.0.1", Port: 8080, Tags: []string{"v2"}},
			Checks: []registry.Check{{ID: "checkout-1-ttl", Name: "heartbeat", Status: registry.StatusPassing,
				Definition: registry.Definition{TTL: 30 * time.Second}}}},
		{Service: registry.Service{ID: "checkout-2", Name: "checkout", Port: 8081, Meta: map[string]string{"zone": "b"}},
			Checks: []registry.Check{{ID: "checkout-2-http", Name: "HTTP /health",
				Definition: registry.Definition{HTTP: "http://127.0.0.1:8081/health", Interval: 10 * time.Second}}}},
		{Service: registry.Service{Name: "payments", Address: "10.0.0.3", Port: 9090}},
	} {
		if _, err := reg.Register(ctx, r); err != nil {
			t.Fatalf("register %s: %v", r.Service.Name, err)
		}
	}
	now = t0.Add(time.Minute)
	if _, err := reg.UpdateTTL(ctx, "checkout-1-ttl", registry.StatusWarning, "lag 12s"); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(2 * time.Minute)
	if _, err := reg.UpdateTTL(ctx, "checkout-1-ttl", registry.StatusCritical, "lag 90s"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.SetMaintenance(ctx, "payments", true, "migrating the ledger"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, target string
		status       int
	}{
		{"registry_state", "/api/vigil/registry", 200},
		{"registry_history", "/api/vigil/registry/checks/checkout-1-ttl/history", 200},
		{"registry_history_limit", "/api/vigil/registry/checks/checkout-1-ttl/history?limit=1", 200},
		{"registry_history_unknown", "/api/vigil/registry/checks/nope/history", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := serve(t, reg, tc.target)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			golden(t, tc.name, body)
		})
	}

	// The history outlives its check.
	if _, err := reg.Deregister(ctx, "checkout-2"); err != nil {
		t.Fatal(err)
	}
	status, body := serve(t, reg, "/api/vigil/registry/checks/checkout-2-http/history")
	if status != 200 {
		t.Fatalf("history of a deregistered check: status %d: %s", status, body)
	}
	golden(t, "registry_history_deregistered", body)
}
