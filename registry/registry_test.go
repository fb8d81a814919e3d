package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/registry"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/registrystore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func setup(t *testing.T) *registry.Registry {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	cfg := registry.DefaultConfig()
	cfg.MinCheckInterval = 100 * time.Millisecond
	r, err := registry.New(cfg, registry.Options{Store: registrystore.New(pool)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConfigValidate(t *testing.T) {
	if err := registry.DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, mod := range map[string]func(*registry.Config){
		"node_name":          func(c *registry.Config) { c.NodeName = "" },
		"datacenter":         func(c *registry.Config) { c.Datacenter = "\xff" },
		"min_check_interval": func(c *registry.Config) { c.MinCheckInterval = 0 },
		"sweep_interval":     func(c *registry.Config) { c.SweepInterval = -1 },
		"poll_interval":      func(c *registry.Config) { c.PollInterval = 0 },
		"history_retention":  func(c *registry.Config) { c.HistoryRetention = 0 },
		"max_checks_in_flight": func(c *registry.Config) {
			c.MaxChecksInFlight = 0
		},
	} {
		c := registry.DefaultConfig()
		mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "registry."+name) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestRegisterValidates(t *testing.T) {
	r := setup(t)
	ctx := context.Background()
	ttl := func(c registry.Check) registry.Check {
		if c.ID == "" {
			c.ID = "c"
		}
		return c
	}
	cases := []struct {
		name  string
		reg   registry.Registration
		field string
	}{
		{"no name", registry.Registration{}, "Name"},
		{"nul", registry.Registration{Service: registry.Service{ID: "x", Name: "a\x00b"}}, "Name"},
		{"port", registry.Registration{Service: registry.Service{Name: "a", Port: 70000}}, "Port"},
		{"meta", registry.Registration{Service: registry.Service{Name: "a", Meta: map[string]string{"k": strings.Repeat("v", 600)}}}, "Meta.k"},
		{"no kind", registry.Registration{Service: registry.Service{Name: "a"}, Checks: []registry.Check{ttl(registry.Check{})}}, "exactly one"},
		{"short interval", registry.Registration{Service: registry.Service{Name: "a"},
			Checks: []registry.Check{ttl(registry.Check{Definition: registry.Definition{TCP: "h:1", Interval: time.Millisecond}})}}, "Interval"},
		{"bad url", registry.Registration{Service: registry.Service{Name: "a"},
			Checks: []registry.Check{ttl(registry.Check{Definition: registry.Definition{HTTP: "ftp://x", Interval: time.Second}})}}, "Check.HTTP"},
		{"bad tcp", registry.Registration{Service: registry.Service{Name: "a"},
			Checks: []registry.Check{ttl(registry.Check{Definition: registry.Definition{TCP: "nohost", Interval: time.Second}})}}, "Check.TCP"},
		{"bad status", registry.Registration{Service: registry.Service{Name: "a"},
			Checks: []registry.Check{ttl(registry.Check{Status: "fine", Definition: registry.Definition{TTL: time.Second}})}}, "Status"},
		{"duplicate", registry.Registration{Service: registry.Service{Name: "a"},
			Checks: []registry.Check{ttl(registry.Check{Definition: registry.Definition{TTL: time.Second}}), ttl(registry.Check{Definition: registry.Definition{TTL: time.Second}})}}, "duplicate"},
		{"maintenance id", registry.Registration{Service: registry.Service{Name: "a"},
			Checks: []registry.Check{{ID: registry.MaintenancePrefix + "a", Definition: registry.Definition{TTL: time.Second}}}}, "not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Register(ctx, tc.reg)
			if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want ErrInvalid naming %s", err, tc.field)
			}
		})
	}
	if _, err := r.UpdateTTL(ctx, "c", "great", ""); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("bad TTL status: %v", err)
	}
}

func TestWait(t *testing.T) {
	r := setup(t)
	ctx := context.Background()
	idx, err := r.Register(ctx, registry.Registration{Service: registry.Service{Name: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		index int64
		wait  time.Duration
		min   time.Duration
	}{
		"index 0 does not block":     {0, time.Second, 0},
		"an older index returns":     {idx - 1, time.Second, 0},
		"a future index returns":     {idx + 100, time.Second, 0},
		"the current index waits":    {idx, 200 * time.Millisecond, 190 * time.Millisecond},
		"a zero wait does not block": {idx, 0, 0},
	} {
		start := time.Now()
		r.Wait(ctx, tc.index, tc.wait)
		if d := time.Since(start); d < tc.min || d > tc.min+500*time.Millisecond {
			t.Errorf("%s: took %s", name, d)
		}
	}
	// A change through this registry wakes a waiter.
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = r.Register(ctx, registry.Registration{Service: registry.Service{Name: "b"}})
	}()
	start := time.Now()
	r.Wait(ctx, idx, 5*time.Second)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("woken after %s", d)
	}
	st, err := r.State(ctx)
	if err != nil || st.Index <= idx || len(st.Services) != 2 {
		t.Fatalf("state after the change: %+v, %v", st, err)
	}
}

// TestStopWakesWaiters: a stopping Registry lets its blocking queries
// answer, so that the HTTP server's Shutdown is not held up by them.
func TestStopWakesWaiters(t *testing.T) {
	r := setup(t)
	idx, err := r.Register(context.Background(), registry.Registration{Service: registry.Service{Name: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	woke := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		r.Wait(context.Background(), idx, time.Minute)
		woke <- time.Since(start)
	}()
	time.Sleep(100 * time.Millisecond) // let the waiter block
	cancel()
	select {
	case d := <-woke:
		if d > 5*time.Second {
			t.Fatalf("woke after %s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter was not woken by the stop")
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
