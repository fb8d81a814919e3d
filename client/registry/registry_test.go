package registry

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/client/internal/consultest"
	"github.com/vigil-obs/vigil/client/internal/fakeclock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func baseConfig(agent string) Config {
	return Config{
		Agent:                   agent,
		Token:                   "s3cret",
		Name:                    "user-service",
		ID:                      "user-service-1",
		Address:                 "127.0.0.1",
		Port:                    3001,
		Tags:                    []string{"v1"},
		Meta:                    map[string]string{"team": "users"},
		ScrapeInterval:          15 * time.Second,
		TTL:                     9 * time.Second,
		Note:                    "serving",
		DeregisterCriticalAfter: time.Minute,
	}
}

func TestRegisterBody(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{
			name: "ttl",
			edit: func(*Config) {},
			want: `{"ID":"user-service-1","Name":"user-service","Tags":["v1"],"Address":"127.0.0.1","Port":3001,
				"Meta":{"metrics_path":"/metrics","scrape_interval":"15s","team":"users"},
				"Check":{"CheckID":"service:user-service-1","Name":"Service 'user-service' check","Notes":"kept passing every TTL/3 while the instance runs",
					"Status":"passing","TTL":"9s","DeregisterCriticalServiceAfter":"1m0s"}}`,
		},
		{
			name: "http check, weight, defaults",
			edit: func(c *Config) {
				*c = Config{Agent: c.Agent, Name: "user-service", Address: "10.0.0.7", Port: 3001, Weight: 3,
					HTTPCheck: "http://10.0.0.7:3001/health", ScrapeInterval: 1500 * time.Millisecond, MetricsPath: "/internal/metrics"}
			},
			want: `{"ID":"user-service-10.0.0.7-3001","Name":"user-service","Address":"10.0.0.7","Port":3001,
				"Meta":{"metrics_path":"/internal/metrics","scrape_interval":"1500ms"},"Weights":{"Passing":3,"Warning":1},
				"Check":{"CheckID":"service:user-service-10.0.0.7-3001","Name":"Service 'user-service' check",
					"HTTP":"http://10.0.0.7:3001/health","Method":"GET","Interval":"10s","Timeout":"5s"}}`,
		},
		{
			name: "meta's own metrics path, no scrape interval",
			edit: func(c *Config) {
				*c = Config{Agent: c.Agent, Name: "batch", ID: "batch-1", Address: "10.0.0.8", Port: 9000,
					Meta: map[string]string{"metrics_path": "/prom", "scrape": "false"}}
			},
			want: `{"ID":"batch-1","Name":"batch","Address":"10.0.0.8","Port":9000,
				"Meta":{"metrics_path":"/prom","scrape":"false"},
				"Check":{"CheckID":"service:batch-1","Name":"Service 'batch' check","Notes":"kept passing every TTL/3 while the instance runs",
					"Status":"passing","TTL":"15s"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := consultest.New(t)
			cfg := baseConfig(s.Addr())
			tt.edit(&cfg)
			r, err := New(cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Register(t.Context()); err != nil {
				t.Fatal(err)
			}
			reqs := s.Requests("/v1/agent/service/register")
			if len(reqs) != 1 || reqs[0].Method != http.MethodPut || reqs[0].Token != cfg.Token {
				t.Fatalf("requests %+v", reqs)
			}
			var got, want any
			if err := json.Unmarshal(reqs[0].Body, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("body %s\nwant %s", reqs[0].Body, tt.want)
			}
			if _, ok := s.Services()[r.ID()]; !ok {
				t.Fatalf("agent does not know %s", r.ID())
			}
		})
	}
}

// setup runs a Registration against a fake agent on a fake clock.
type setup struct {
	agent *consultest.Server
	clock *fakeclock.Clock
	reg   *Registration
	stop  func() error
}

func start(t *testing.T, edit func(*Config)) setup {
	t.Helper()
	s := consultest.New(t)
	clk := fakeclock.New(time.Unix(1000, 0))
	cfg := baseConfig(s.Addr())
	edit(&cfg)
	r, err := New(cfg, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return setup{agent: s, clock: clk, reg: r, stop: stop}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRunKeepsTTLAliveAndDeregisters(t *testing.T) {
	st := start(t, func(*Config) {})
	passes := func() int { return len(st.agent.Requests("/v1/agent/check/pass/")) }
	// Registered, passed at once, then waiting TTL/3.
	eventually(t, "registered, passed and waiting", func() bool {
		return len(st.agent.Services()) == 1 && passes() == 1 && st.clock.Waiters() == 1
	})

	// The agent marks the check critical; the next pass, TTL/3 later,
	// brings it back with the note.
	st.agent.SetCheck(st.reg.CheckID(), st.reg.ID(), "critical")
	st.clock.Advance(3*time.Second - time.Millisecond)
	if n := passes(); n != 1 {
		t.Fatalf("%d passes before TTL/3, want 1", n)
	}
	st.clock.Advance(time.Millisecond)
	eventually(t, "check passing", func() bool {
		ch, _ := st.agent.Check(st.reg.CheckID())
		return ch.Status == "passing" && ch.Output == "serving"
	})
	pass := st.agent.Requests("/v1/agent/check/pass/")[1]
	if pass.Method != http.MethodPut || pass.Path != "/v1/agent/check/pass/service:user-service-1" || pass.Query.Get("note") != "serving" || pass.Token != "s3cret" {
		t.Fatalf("pass request %+v", pass)
	}

	if err := st.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if svcs := st.agent.Services(); len(svcs) != 0 {
		t.Fatalf("still registered after Run: %v", svcs)
	}
	if d := st.agent.Requests("/v1/agent/service/deregister/"); len(d) != 1 || d[0].Path != "/v1/agent/service/deregister/user-service-1" {
		t.Fatalf("deregistrations %+v", d)
	}
}

func TestRunRegistersAgainWhenForgotten(t *testing.T) {
	t.Run("ttl", func(t *testing.T) {
		st := start(t, func(*Config) {})
		passes := func() int { return len(st.agent.Requests("/v1/agent/check/pass/")) }
		eventually(t, "registered", func() bool { return len(st.agent.Services()) == 1 && st.clock.Waiters() == 1 })
		st.agent.Forget()
		st.clock.Advance(3 * time.Second)
		// The pass is refused, the instance registers again and passes
		// at once.
		eventually(t, "registered again and passed", func() bool { return len(st.agent.Services()) == 1 && passes() == 3 })
		if ch, ok := st.agent.Check(st.reg.CheckID()); !ok || ch.Status != "passing" || ch.Output != "serving" {
			t.Fatalf("check after re-registration %+v, %v", ch, ok)
		}
		if n := len(st.agent.Requests("/v1/agent/service/register")); n != 2 {
			t.Fatalf("%d registrations, want 2", n)
		}
	})
	t.Run("http check", func(t *testing.T) {
		st := start(t, func(c *Config) { c.HTTPCheck = "http://127.0.0.1:3001/health"; c.ResyncInterval = 20 * time.Second })
		eventually(t, "registered", func() bool { return len(st.agent.Services()) == 1 && st.clock.Waiters() == 1 })
		st.clock.Advance(20 * time.Second)
		eventually(t, "looked up", func() bool {
			return len(st.agent.Requests("/v1/agent/service/user-service-1")) == 1 && st.clock.Waiters() == 1
		})
		if n := len(st.agent.Requests("/v1/agent/service/register")); n != 1 {
			t.Fatalf("%d registrations while known, want 1", n)
		}
		st.agent.Forget()
		st.clock.Advance(20 * time.Second)
		eventually(t, "registered again", func() bool { return len(st.agent.Services()) == 1 })
	})
}

func TestRunRetriesWithBackoff(t *testing.T) {
	var registers, passes atomic.Int64
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/register"):
			if registers.Add(1) <= 2 {
				http.Error(w, "No cluster leader", http.StatusInternalServerError)
			}
		case strings.Contains(r.URL.Path, "/check/pass/"):
			passes.Add(1)
			http.Error(w, "No cluster leader", http.StatusInternalServerError)
		}
	}))
	defer agent.Close()
	clk := fakeclock.New(time.Unix(1000, 0))
	cfg := baseConfig(agent.URL)
	cfg.RetryMin, cfg.RetryMax = time.Second, 2*time.Second
	r, err := New(cfg, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	waitFor := func(n *atomic.Int64, want int64) {
		t.Helper()
		eventually(t, "request and wait", func() bool { return n.Load() == want && clk.Waiters() == 1 })
	}
	// Registration: pauses in [0.5s, 1s], then [1s, 2s].
	waitFor(&registers, 1)
	clk.Advance(500*time.Millisecond - time.Millisecond)
	if registers.Load() != 1 {
		t.Fatal("registered again before half the first pause")
	}
	clk.Advance(500 * time.Millisecond)
	waitFor(&registers, 2)
	clk.Advance(2 * time.Second)
	waitFor(&registers, 3) // accepted
	// A pass at once, then failed ones retried with pauses in the upper
	// half of a ceiling doubling from 1s to RetryMax (2s; never above
	// TTL/3).
	waitFor(&passes, 1)
	clk.Advance(time.Second)
	waitFor(&passes, 2)
	clk.Advance(2 * time.Second)
	waitFor(&passes, 3)
	clk.Advance(3 * time.Second)
	waitFor(&passes, 4)
	clk.Advance(3 * time.Second)
	waitFor(&passes, 5)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestDeregisterUnknownIsNotAnError(t *testing.T) {
	s := consultest.New(t)
	r, err := New(baseConfig(s.Addr()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Deregister(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r.Pass(t.Context()); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("Pass of an unknown check = %v, want ErrNotRegistered", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Name: "s", Address: "10.0.0.1", Port: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Config){
		"no name":        func(c *Config) { c.Name = "" },
		"no address":     func(c *Config) { c.Address = "" },
		"port":           func(c *Config) { c.Port = 70000 },
		"agent":          func(c *Config) { c.Agent = "nowhere" },
		"agent scheme":   func(c *Config) { c.Agent = "ftp://h:1" },
		"id":             func(c *Config) { c.ID = "a/b" },
		"weight":         func(c *Config) { c.Weight = -1 },
		"metrics path":   func(c *Config) { c.MetricsPath = "metrics" },
		"scrape":         func(c *Config) { c.ScrapeInterval = time.Microsecond },
		"ttl":            func(c *Config) { c.TTL = -time.Second },
		"http check":     func(c *Config) { c.HTTPCheck = "tcp://x:1" },
		"deregister":     func(c *Config) { c.DeregisterCriticalAfter = -1 },
		"retry":          func(c *Config) { c.RetryMin, c.RetryMax = 2*time.Second, time.Second },
		"check interval": func(c *Config) { c.HTTPCheck, c.CheckInterval = "http://x:1/h", -1 },
	} {
		c := ok
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, c)
		}
		if _, err := New(c, Options{}); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}
