package discovery

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/client/internal/consultest"
	"github.com/vigil-obs/vigil/client/internal/fakeclock"
)

// consulSetup is a fake Consul with user-service registered on two
// instances whose checks pass.
func consulSetup(t *testing.T) *consultest.Server {
	t.Helper()
	s := consultest.New(t)
	for _, r := range []consultest.Registration{
		{ID: "user-1", Name: "user-service", Address: "10.0.0.1", Port: 3001, Tags: []string{"v1", "eu"}, Meta: map[string]string{"metrics_path": "/metrics"}},
		{ID: "user-2", Name: "user-service", Address: "10.0.0.2", Port: 3001, Tags: []string{"v1"}},
	} {
		s.Register(r)
		s.SetCheck("service:"+r.ID, r.ID, "passing")
	}
	return s
}

func newTestConsul(t *testing.T, s *consultest.Server, target string, base ConsulConfig, opts ConsulOptions) *Consul {
	t.Helper()
	tgt, err := ParseTarget(target)
	if err != nil {
		t.Fatal(err)
	}
	base.Agent = s.Addr()
	r, err := ConsulBuilder(base, opts).Build(tgt)
	if err != nil {
		t.Fatal(err)
	}
	return r.(*Consul)
}

// waitBlocked waits until n health queries carrying ?index= have reached
// the server.
func waitBlocked(t *testing.T, s *consultest.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		blocking := 0
		for _, r := range s.Requests("/v1/health/service/") {
			if r.Query.Has("index") {
				blocking++
			}
		}
		if blocking >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d blocking queries reached the server, want %d", blocking, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConsulBlockingQueryWakesOnChange(t *testing.T) {
	s := consulSetup(t)
	r := newTestConsul(t, s, "consul:///user-service", ConsulConfig{Token: "s3cret", MinInterval: time.Millisecond}, ConsulOptions{})
	ctx := t.Context()

	first, err := r.Resolve(ctx, Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(first.Instances); !slices.Equal(got, []string{"10.0.0.1:3001", "10.0.0.2:3001"}) || first.TTL != 0 {
		t.Fatalf("first answer %v ttl %v", got, first.TTL)
	}
	if first.Version != "5" { // 1, plus two registrations and two checks
		t.Fatalf("version %q, want the X-Consul-Index 5", first.Version)
	}

	type result struct {
		snap Snapshot
		err  error
		at   time.Time
	}
	done := make(chan result, 1)
	go func() {
		snap, err := r.Resolve(ctx, first)
		done <- result{snap, err, time.Now()}
	}()
	waitBlocked(t, s, 1)
	select {
	case res := <-done:
		t.Fatalf("Resolve returned without a change: %+v", res)
	case <-time.After(20 * time.Millisecond):
	}
	changed := time.Now()
	s.Register(consultest.Registration{ID: "user-3", Name: "user-service", Address: "10.0.0.3", Port: 3001})
	res := <-done
	woke := res.at.Sub(changed)
	t.Logf("woke %v after the change", woke)
	if woke > 100*time.Millisecond {
		t.Errorf("woke %v after the change, want within 100ms", woke)
	}
	if res.err != nil || len(res.snap.Instances) != 3 || res.snap.Version != "6" {
		t.Fatalf("after change: %+v, %v", res.snap, res.err)
	}

	reqs := s.Requests("/v1/health/service/")
	if len(reqs) != 2 {
		t.Fatalf("%d queries, want 2", len(reqs))
	}
	if q := reqs[0].Query; q.Has("index") || q.Get("passing") != "true" {
		t.Errorf("first query %v: want passing and no index", q)
	}
	if q := reqs[1].Query; q.Get("index") != "5" || q.Get("wait") != "5m0s" || q.Get("passing") != "true" {
		t.Errorf("blocking query %v: want index=5, wait=5m0s, passing", q)
	}
	if reqs[1].Path != "/v1/health/service/user-service" || reqs[1].Token != "s3cret" {
		t.Errorf("blocking query path %q token %q", reqs[1].Path, reqs[1].Token)
	}
}

func TestConsulFilters(t *testing.T) {
	s := consulSetup(t)
	s.Register(consultest.Registration{ID: "user-sick", Name: "user-service", Address: "10.0.0.9", Port: 3001, Tags: []string{"v1", "eu"}})
	s.SetCheck("service:user-sick", "user-sick", "critical")
	s.Register(consultest.Registration{ID: "other", Name: "order-service", Address: "10.0.0.5", Port: 3001, Tags: []string{"v1", "eu"}})

	tests := []struct {
		target    string
		wantAddrs []string
		wantQuery map[string][]string
	}{
		{
			target:    "consul:///user-service?tag=v1&tag=eu&dc=dc2",
			wantAddrs: []string{"10.0.0.1:3001"},
			wantQuery: map[string][]string{"passing": {"true"}, "tag": {"v1", "eu"}, "dc": {"dc2"}},
		},
		{
			target:    "consul:///user-service?tag=v1",
			wantAddrs: []string{"10.0.0.1:3001", "10.0.0.2:3001"},
			wantQuery: map[string][]string{"passing": {"true"}, "tag": {"v1"}},
		},
		{
			target:    "consul:///user-service?passing=false&tag=eu",
			wantAddrs: []string{"10.0.0.1:3001", "10.0.0.9:3001"},
			wantQuery: map[string][]string{"tag": {"eu"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			before := len(s.Requests("/v1/health/"))
			r := newTestConsul(t, s, tt.target, ConsulConfig{}, ConsulOptions{})
			snap, err := r.Resolve(t.Context(), Snapshot{})
			if err != nil {
				t.Fatal(err)
			}
			if got := addrs(snap.Instances); !slices.Equal(got, tt.wantAddrs) {
				t.Errorf("instances %v, want %v", got, tt.wantAddrs)
			}
			reqs := s.Requests("/v1/health/")[before:]
			if len(reqs) != 1 || !reflect.DeepEqual(map[string][]string(reqs[0].Query), tt.wantQuery) {
				t.Errorf("query %+v, want %v", reqs, tt.wantQuery)
			}
			for _, in := range snap.Instances {
				want := "passing"
				if in.Addr == "10.0.0.9:3001" {
					want = "critical"
				}
				if in.Meta[MetaConsulHealth] != want {
					t.Errorf("%s health %q, want %q", in.Addr, in.Meta[MetaConsulHealth], want)
				}
			}
		})
	}
}

// TestConsulErrorKeepsLastGoodSet drives the resolver through a Watcher:
// a failing agent leaves the last good set in use, reported stale, and the
// set recovers when the agent does.
func TestConsulErrorKeepsLastGoodSet(t *testing.T) {
	s := consulSetup(t)
	r := newTestConsul(t, s, "consul:///user-service", ConsulConfig{MinInterval: time.Millisecond, RetryMin: 5 * time.Millisecond, RetryMax: 10 * time.Millisecond}, ConsulOptions{})
	w := NewWatcher(r, WatcherOptions{RetryMin: 5 * time.Millisecond, RetryMax: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-w.Ready()
	waitBlocked(t, s, 1)

	s.Fail(http.StatusInternalServerError)
	eventually(t, func() bool { return w.Status().ConsecutiveFailures >= 2 })
	if got := addrs(w.Instances()); len(got) != 2 {
		t.Fatalf("instances during the failure %v, want the last good two", got)
	}
	if err := w.Status().LastError; err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("last error %v, want the agent's 500", err)
	}
	eventually(t, func() bool { return w.Staleness() > 0 })

	s.Fail(0)
	s.Register(consultest.Registration{ID: "user-3", Name: "user-service", Address: "10.0.0.3", Port: 3001})
	eventually(t, func() bool { return len(w.Instances()) == 3 && w.Status().LastError == nil && w.Staleness() == 0 })
}

func TestConsulIndexBackwardsResets(t *testing.T) {
	s := consulSetup(t)
	r := newTestConsul(t, s, "consul:///user-service", ConsulConfig{MinInterval: time.Millisecond}, ConsulOptions{})
	ctx := t.Context()
	first, err := r.Resolve(ctx, Snapshot{})
	if err != nil || first.Version != "5" {
		t.Fatalf("first %+v, %v", first, err)
	}
	done := make(chan Snapshot, 1)
	go func() {
		snap, err := r.Resolve(ctx, first)
		if err != nil {
			t.Error(err)
		}
		done <- snap
	}()
	waitBlocked(t, s, 1)
	s.SetIndex(2) // a restored snapshot
	reset := <-done
	if reset.Version != "0" || len(reset.Instances) != 2 {
		t.Fatalf("after the index went backwards: %+v, want version 0 and the answer's instances", reset)
	}
	again, err := r.Resolve(ctx, reset)
	if err != nil || again.Version != "2" {
		t.Fatalf("after the reset: %+v, %v; want index 2", again, err)
	}
	reqs := s.Requests("/v1/health/service/")
	if last := reqs[len(reqs)-1].Query; last.Has("index") {
		t.Fatalf("query after the reset %v: want it without index", last)
	}
}

// flakyAgent answers every health query with status and index.
func flakyAgent(t *testing.T, status int, index string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("X-Consul-Index", index)
		if status != http.StatusOK {
			http.Error(w, "rpc error: No cluster leader", status)
			return
		}
		_, _ = w.Write([]byte(`[{"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"a","Service":"user-service","Port":3001}}]`))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// waitClock waits until a goroutine is blocked on the fake clock.
func waitClock(t *testing.T, clk *fakeclock.Clock) {
	t.Helper()
	eventually(t, func() bool { return clk.Waiters() > 0 })
}

func TestConsulBacksOffOnErrors(t *testing.T) {
	srv, queries := flakyAgent(t, http.StatusInternalServerError, "")
	clk := fakeclock.New(time.Unix(1000, 0))
	r, err := NewConsul(ConsulConfig{Service: "user-service", Agent: srv.URL, RetryMin: time.Second, RetryMax: 4 * time.Second}, ConsulOptions{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := r.Resolve(ctx, Snapshot{}); err == nil || !strings.Contains(err.Error(), "No cluster leader") {
		t.Fatalf("err = %v, want the agent's error", err)
	}
	// Pause ceilings double from RetryMin to RetryMax; a pause is at least
	// half its ceiling and at most the ceiling.
	for i, ceil := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		done := make(chan error, 1)
		go func() {
			_, err := r.Resolve(ctx, Snapshot{})
			done <- err
		}()
		waitClock(t, clk)
		clk.Advance(ceil/2 - time.Millisecond)
		if n := queries.Load(); n != int64(i+1) {
			t.Fatalf("failure %d: %d queries before half the pause ceiling %v, want %d", i+1, n, ceil, i+1)
		}
		clk.Advance(ceil/2 + time.Millisecond)
		if err := <-done; err == nil {
			t.Fatal("want an error")
		}
		if n := queries.Load(); n != int64(i+2) {
			t.Fatalf("failure %d: %d queries after the pause ceiling %v, want %d", i+1, n, ceil, i+2)
		}
	}
}

func TestConsulRateLimitsQueries(t *testing.T) {
	// An agent that does not block and always answers the same index must
	// not be queried in a busy loop.
	srv, queries := flakyAgent(t, http.StatusOK, "7")
	clk := fakeclock.New(time.Unix(1000, 0))
	r, err := NewConsul(ConsulConfig{Service: "user-service", Agent: srv.URL, MinInterval: time.Second}, ConsulOptions{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := r.Resolve(ctx, Snapshot{Version: "7"})
		done <- err
	}()
	for want := int64(1); want <= 3; want++ {
		waitClock(t, clk)
		if n := queries.Load(); n != want {
			t.Fatalf("%d queries, want %d", n, want)
		}
		clk.Advance(time.Second)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestConsulIndexZeroTakenAsOne(t *testing.T) {
	srv, _ := flakyAgent(t, http.StatusOK, "0")
	r, err := NewConsul(ConsulConfig{Service: "user-service", Agent: srv.URL}, ConsulOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := r.Resolve(t.Context(), Snapshot{})
	if err != nil || snap.Version != "1" || len(snap.Instances) != 1 {
		t.Fatalf("%+v, %v; want version 1", snap, err)
	}
}

func TestConsulMissingIndexIsAnError(t *testing.T) {
	srv, _ := flakyAgent(t, http.StatusOK, "")
	r, err := NewConsul(ConsulConfig{Service: "user-service", Agent: srv.URL}, ConsulOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(t.Context(), Snapshot{}); err == nil || !strings.Contains(err.Error(), "X-Consul-Index") {
		t.Fatalf("err = %v, want one about X-Consul-Index", err)
	}
}

func TestConsulConfigFromTarget(t *testing.T) {
	tests := []struct {
		target  string
		want    ConsulConfig
		wantErr bool
	}{
		{target: "consul:///user-service", want: ConsulConfig{Service: "user-service", Agent: "base:8500"}},
		{target: "consul:///user-service?passing", want: ConsulConfig{Service: "user-service", Agent: "base:8500"}},
		{target: "consul://10.0.0.5:8500/user-service?passing=false&tag=a&tag=b&dc=dc2&wait=1m", want: ConsulConfig{Service: "user-service", Agent: "10.0.0.5:8500", IncludeUnhealthy: true, Tags: []string{"a", "b"}, Datacenter: "dc2", Wait: time.Minute}},
		{target: "consul:///user-service?near=_agent", wantErr: true},
		{target: "consul:///user-service?passing=maybe", wantErr: true},
		{target: "consul:///user-service?wait=1h", wantErr: true},
		{target: "consul:///user-service?wait=x", wantErr: true},
		{target: "consul://nonsense/user-service", wantErr: true},
		{target: "consul:///a/b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			tgt, err := ParseTarget(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ConsulConfigFromTarget(tgt, ConsulConfig{Agent: "base:8500"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if err := (ConsulConfig{Service: "x", Agent: "ftp://h:1"}).Validate(); err == nil {
		t.Error("ftp agent accepted")
	}
	if err := (ConsulConfig{Service: "x", Agent: "https://consul.internal:8501/prefix/"}).Validate(); err != nil {
		t.Errorf("https agent: %v", err)
	}
	tgt, _ := ParseTarget("consul:///user-service")
	if r, err := Build(tgt, nil); err != nil {
		t.Errorf("built-in consul scheme: %v", err)
	} else if c := r.(*Consul); c.base.Host != DefaultConsulAgent {
		t.Errorf("default agent %q", c.base.Host)
	}
}

func TestDecodeConsulHealth(t *testing.T) {
	body := `[
	 {"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"b","Service":"s","Port":80,"Tags":["v1","eu"],"Meta":{"metrics_path":"/m"},"Weights":{"Passing":5,"Warning":1}},
	  "Checks":[{"CheckID":"serfHealth","Status":"passing"},{"CheckID":"service:b","Status":"passing","ServiceID":"b"}]},
	 {"Node":{"Node":"n2","Address":"10.0.0.2"},"Service":{"ID":"c","Service":"s","Address":"fd00::2","Port":80}},
	 {"Node":{"Node":"n3","Address":"10.0.0.3"},"Service":{"ID":"d","Service":"s","Port":80},"Checks":[{"Status":"warning"}]},
	 {"Node":{"Node":"n4","Address":"10.0.0.4"},"Service":{"ID":"e","Service":"s","Port":0}},
	 {"Node":{"Node":"n5","Address":""},"Service":{"ID":"f","Service":"s","Port":80}},
	 {"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"a","Service":"s","Port":80,"Weights":{"Passing":2}}}
	]`
	got, err := DecodeConsulHealth([]byte(body), false)
	if err != nil {
		t.Fatal(err)
	}
	want := []Instance{
		// "a" and "b" share an address: the smaller service ID wins.
		{Addr: "10.0.0.1:80", Weight: 2, Meta: map[string]string{MetaConsulServiceID: "a", MetaConsulNode: "n1", MetaConsulHealth: "passing"}},
		{Addr: "[fd00::2]:80", Weight: 1, Meta: map[string]string{MetaConsulServiceID: "c", MetaConsulNode: "n2", MetaConsulHealth: "passing"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	all, err := DecodeConsulHealth([]byte(body), true)
	if err != nil || len(all) != 3 || all[1].Meta[MetaConsulHealth] != "warning" {
		t.Fatalf("with unhealthy: %+v, %v", all, err)
	}
	one, _ := DecodeConsulHealth([]byte(`[{"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"b","Port":80,"Tags":["v1","eu"],"Meta":{"metrics_path":"/m"},"Weights":{"Passing":5}}}]`), false)
	if len(one) != 1 || one[0].Weight != 5 || one[0].Meta[MetaConsulTags] != "v1,eu" || one[0].Meta["metrics_path"] != "/m" {
		t.Fatalf("weights, tags and meta: %+v", one)
	}
	for _, bad := range []string{``, `{}`, `[{"Service":{"Port":"80"}}]`} {
		if _, err := DecodeConsulHealth([]byte(bad), false); err == nil {
			t.Errorf("decoded %q", bad)
		}
	}
	if in, err := DecodeConsulHealth([]byte(`[]`), false); err != nil || in != nil {
		t.Errorf("empty answer: %v, %v", in, err)
	}
}

// eventually polls cond for up to five seconds.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConsulEmptyAnswerThenBlocks: a Watcher keeps its prev after an empty
// answer, so the resolver itself blocks on the empty answer's index and
// sees the first instance at once.
func TestConsulEmptyAnswerThenBlocks(t *testing.T) {
	s := consultest.New(t)
	r := newTestConsul(t, s, "consul:///user-service", ConsulConfig{MinInterval: time.Millisecond}, ConsulOptions{})
	empty, err := r.Resolve(t.Context(), Snapshot{})
	if err != nil || len(empty.Instances) != 0 || empty.Version != "1" {
		t.Fatalf("empty answer %+v, %v", empty, err)
	}
	done := make(chan Snapshot, 1)
	go func() {
		snap, err := r.Resolve(t.Context(), Snapshot{}) // the Watcher's prev
		if err != nil {
			t.Error(err)
		}
		done <- snap
	}()
	waitBlocked(t, s, 1)
	s.Register(consultest.Registration{ID: "user-1", Name: "user-service", Address: "10.0.0.1", Port: 3001})
	if snap := <-done; len(snap.Instances) != 1 || snap.Version != "2" {
		t.Fatalf("after registration %+v", snap)
	}
	reqs := s.Requests("/v1/health/service/")
	if q := reqs[len(reqs)-1].Query; q.Get("index") != "1" {
		t.Fatalf("second query %v, want it blocking on index 1", q)
	}
}
