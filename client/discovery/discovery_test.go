package discovery

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/client/internal/fakeclock"
	"golang.org/x/net/dns/dnsmessage"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		wantErr bool
	}{
		{in: "dns:///user.svc:8080", want: Target{Scheme: "dns", Endpoint: "user.svc:8080"}},
		{in: "dns://10.0.0.53:53/user.internal:80?min_ttl=5s", want: Target{Scheme: "dns", Authority: "10.0.0.53:53", Endpoint: "user.internal:80"}},
		{in: "dns+srv:///_http._tcp.user", want: Target{Scheme: "dns+srv", Endpoint: "_http._tcp.user"}},
		{in: "static:///a:1,b:2=3", want: Target{Scheme: "static", Endpoint: "a:1,b:2=3"}},
		{in: "consul:///user-service?tag=v1", want: Target{Scheme: "consul", Endpoint: "user-service"}},
		{in: "user.svc:8080", want: Target{Scheme: "dns", Endpoint: "user.svc:8080"}},
		{in: "", wantErr: true},
		{in: "dns://", wantErr: true},
		{in: "dns:///", wantErr: true},
		{in: "DNS:///a:1", wantErr: true},
		{in: "://x/y", wantErr: true},
		{in: "a/b", wantErr: true},
		{in: "dns:///a:1?%zz", wantErr: true},
		{in: "dns:///" + strings.Repeat("a", maxTargetLen), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got.Query = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatic(t *testing.T) {
	tests := []struct {
		in      string
		want    []Instance
		wantErr bool
	}{
		{in: "b:2,a:1=3", want: []Instance{{Addr: "a:1", Weight: 3}, {Addr: "b:2", Weight: 1}}},
		{in: " [::1]:80 , ", want: []Instance{{Addr: "[::1]:80", Weight: 1}}},
		{in: "", wantErr: true},
		{in: "a", wantErr: true},
		{in: "a:0", wantErr: true},
		{in: "a:70000", wantErr: true},
		{in: ":80", wantErr: true},
		{in: "a:1=0", wantErr: true},
		{in: "a:1=x", wantErr: true},
		{in: "a:1,a:1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseStatic(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) && !tt.wantErr {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseResolvConf(t *testing.T) {
	in := `# comment
nameserver 10.0.0.10
nameserver fe80::1%eth0
nameserver not-an-ip
domain example.org
search ns.svc.cluster.local svc.cluster.local. cluster.local
options ndots:5 timeout:1 ; trailing comment
nameserver 10.0.0.11
nameserver 10.0.0.12
`
	got, err := ParseResolvConf([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := ResolvConf{
		Servers: []string{"10.0.0.10:53", "[fe80::1]:53", "10.0.0.11:53"},
		Search:  []string{"ns.svc.cluster.local", "svc.cluster.local", "cluster.local"},
		Ndots:   5,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	empty, _ := ParseResolvConf(nil)
	if len(empty.Servers) != 2 || empty.Ndots != 1 {
		t.Fatalf("defaults = %+v", empty)
	}
}

func TestCandidates(t *testing.T) {
	conf := ResolvConf{Search: []string{"ns.svc", "svc"}, Ndots: 2}
	tests := []struct {
		name string
		want []string
	}{
		{"user", []string{"user.ns.svc.", "user.svc.", "user."}},
		{"user.ns.svc", []string{"user.ns.svc.", "user.ns.svc.ns.svc.", "user.ns.svc.svc."}},
		{"user.", []string{"user."}},
	}
	for _, tt := range tests {
		if got := conf.candidates(tt.name); !slices.Equal(got, tt.want) {
			t.Errorf("candidates(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func addrs(in []Instance) []string {
	var out []string
	for _, i := range in {
		out = append(out, i.Addr)
	}
	return out
}

func a4(ip string) *dnsmessage.AResource {
	return &dnsmessage.AResource{A: netip.MustParseAddr(ip).As4()}
}

func TestDNSHost(t *testing.T) {
	f := newFakeDNS(t)
	f.add("user.svc.test", 30, a4("10.1.0.2"))
	f.add("user.svc.test", 12, a4("10.1.0.1"))
	f.add("user.svc.test", 60, &dnsmessage.AAAAResource{AAAA: netip.MustParseAddr("fd00::1").As16()})
	f.add("short.svc.test", 0, a4("10.1.0.9"))
	tests := []struct {
		name    string
		cfg     DNSConfig
		want    []string
		ttl     time.Duration
		wantErr error
	}{
		{name: "a and aaaa, min ttl", cfg: DNSConfig{Name: "user.svc.test", Port: 80},
			want: []string{"10.1.0.1:80", "10.1.0.2:80", "[fd00::1]:80"}, ttl: 12 * time.Second},
		{name: "ip4 only", cfg: DNSConfig{Name: "user.svc.test", Port: 80, Network: "ip4"},
			want: []string{"10.1.0.1:80", "10.1.0.2:80"}, ttl: 12 * time.Second},
		{name: "ttl clamped up", cfg: DNSConfig{Name: "short.svc.test", Port: 1, MinTTL: 3 * time.Second},
			want: []string{"10.1.0.9:1"}, ttl: 3 * time.Second},
		{name: "ttl clamped down", cfg: DNSConfig{Name: "user.svc.test", Port: 80, MaxTTL: 10 * time.Second, MinTTL: time.Second},
			want: []string{"10.1.0.1:80", "10.1.0.2:80", "[fd00::1]:80"}, ttl: 10 * time.Second},
		{name: "nxdomain", cfg: DNSConfig{Name: "missing.svc.test", Port: 80}, wantErr: ErrNoInstances},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Servers = []string{f.addr}
			tt.cfg.ResolvConf = filepath.Join(t.TempDir(), "none")
			d, err := NewDNS(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := d.Resolve(context.Background(), Snapshot{})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := addrs(snap.Instances); !slices.Equal(got, tt.want) {
				t.Fatalf("instances = %v, want %v", got, tt.want)
			}
			if snap.TTL != tt.ttl {
				t.Fatalf("ttl = %v, want %v", snap.TTL, tt.ttl)
			}
		})
	}
}

func TestDNSSRV(t *testing.T) {
	f := newFakeDNS(t)
	name := "_http._tcp.user.svc.test"
	srv := func(target string, port, prio, weight uint16) *dnsmessage.SRVResource {
		return &dnsmessage.SRVResource{Target: dnsmessage.MustNewName(target + "."), Port: port, Priority: prio, Weight: weight}
	}
	f.add(name, 20, srv("pod-a.user.svc.test", 3001, 10, 5))
	f.add(name, 20, srv("pod-b.user.svc.test", 3002, 10, 0))
	f.add(name, 20, srv("backup.user.svc.test", 3003, 20, 1))
	f.addGlue(name, "pod-a.user.svc.test", 8, "10.2.0.1")
	// pod-b has no glue: the resolver must look it up.
	f.add("pod-b.user.svc.test", 15, a4("10.2.0.2"))

	d, err := NewDNS(DNSConfig{Name: name, SRV: true, Servers: []string{f.addr}, MinTTL: time.Second, ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := d.Resolve(context.Background(), Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Instance{
		{Addr: "10.2.0.1:3001", Weight: 5, Meta: map[string]string{"srv_target": "pod-a.user.svc.test.", "srv_priority": "10"}},
		{Addr: "10.2.0.2:3002", Weight: 1, Meta: map[string]string{"srv_target": "pod-b.user.svc.test.", "srv_priority": "10"}},
	}
	if !reflect.DeepEqual(snap.Instances, want) {
		t.Fatalf("instances = %+v, want %+v", snap.Instances, want)
	}
	if snap.TTL != 8*time.Second {
		t.Fatalf("ttl = %v, want 8s", snap.TTL)
	}
}

func TestDNSTruncatedFallsBackToTCP(t *testing.T) {
	f := newFakeDNS(t)
	f.add("big.svc.test", 30, a4("10.3.0.1"))
	f.set(dnsmessage.RCodeSuccess, true)
	d, _ := NewDNS(DNSConfig{Name: "big.svc.test", Port: 80, Network: "ip4", Servers: []string{f.addr}, ResolvConf: filepath.Join(t.TempDir(), "none")})
	snap, err := d.Resolve(context.Background(), Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(snap.Instances); !slices.Equal(got, []string{"10.3.0.1:80"}) || f.tcpQueries() != 1 {
		t.Fatalf("instances = %v, tcp queries = %d", got, f.tcpQueries())
	}
}

func TestDNSServerFailureTriesNext(t *testing.T) {
	bad := newFakeDNS(t)
	bad.set(dnsmessage.RCodeServerFailure, false)
	good := newFakeDNS(t)
	good.add("user.svc.test", 30, a4("10.4.0.1"))
	d, _ := NewDNS(DNSConfig{Name: "user.svc.test", Port: 80, Network: "ip4", Servers: []string{bad.addr, good.addr}, ResolvConf: filepath.Join(t.TempDir(), "none")})
	snap, err := d.Resolve(context.Background(), Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Instances) != 1 {
		t.Fatalf("instances = %v", snap.Instances)
	}
	// Only failures: an error that is not ErrNoInstances.
	d, _ = NewDNS(DNSConfig{Name: "user.svc.test", Port: 80, Network: "ip4", Servers: []string{bad.addr}, ResolvConf: filepath.Join(t.TempDir(), "none")})
	if _, err := d.Resolve(context.Background(), Snapshot{}); err == nil || errors.Is(err, ErrNoInstances) {
		t.Fatalf("err = %v, want a server failure", err)
	}
}

func TestDNSSearchList(t *testing.T) {
	f := newFakeDNS(t)
	f.add("user.ns.svc.cluster.local", 30, a4("10.5.0.1"))
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver "+strings.Split(f.addr, ":")[0]+"\nsearch ns.svc.cluster.local svc.cluster.local\noptions ndots:5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := NewDNS(DNSConfig{Name: "user", Port: 3001, Network: "ip4", Servers: []string{f.addr}, ResolvConf: conf})
	snap, err := d.Resolve(context.Background(), Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(snap.Instances); !slices.Equal(got, []string{"10.5.0.1:3001"}) {
		t.Fatalf("instances = %v (queries %v)", got, f.queryLog())
	}
}

func TestDNSConfigFromTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    DNSConfig
		wantErr bool
	}{
		{in: "dns:///user.svc:8080", want: DNSConfig{Name: "user.svc", Port: 8080}},
		{in: "dns://127.0.0.1/user.svc:8080?min_ttl=2s&network=ip4", want: DNSConfig{Name: "user.svc", Port: 8080, Servers: []string{"127.0.0.1:53"}, MinTTL: 2 * time.Second, Network: "ip4"}},
		{in: "dns+srv:///_http._tcp.user", want: DNSConfig{Name: "_http._tcp.user", SRV: true}},
		{in: "dns:///user.svc", wantErr: true},
		{in: "dns:///user.svc:http", wantErr: true},
		{in: "dns:///user.svc:80?timeout=soon", wantErr: true},
		{in: "dns:///user.svc:80?network=ipx", wantErr: true},
		{in: "dns://not-an-ip/user.svc:80", wantErr: true},
		{in: "dns:///user..svc:80", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			target, err := ParseTarget(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DNSConfigFromTarget(target)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// scripted is a Resolver that replays answers and records when it is called.
type scripted struct {
	mu      sync.Mutex
	answers []func() (Snapshot, error)
	calls   int
	called  chan int
}

func (s *scripted) Resolve(ctx context.Context, _ Snapshot) (Snapshot, error) {
	s.mu.Lock()
	i := s.calls
	s.calls++
	s.mu.Unlock()
	s.called <- i
	if i >= len(s.answers) {
		<-ctx.Done()
		return Snapshot{}, ctx.Err()
	}
	return s.answers[i]()
}

func TestWatcherKeepsLastKnownGood(t *testing.T) {
	clk := fakeclock.New(time.Unix(0, 0))
	set1 := []Instance{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 1}}
	set2 := []Instance{{Addr: "c:1", Weight: 1}}
	r := &scripted{called: make(chan int, 10), answers: []func() (Snapshot, error){
		func() (Snapshot, error) { return Snapshot{Instances: set1, TTL: 10 * time.Second}, nil },
		func() (Snapshot, error) { return Snapshot{}, errors.New("servfail") },
		func() (Snapshot, error) { return Snapshot{TTL: time.Second}, nil }, // empty answer
		func() (Snapshot, error) { return Snapshot{Instances: set2, TTL: 10 * time.Second}, nil },
	}}
	var updates [][]Instance
	var umu sync.Mutex
	w := NewWatcher(r, WatcherOptions{Clock: clk, RetryMin: 2 * time.Second, RetryMax: 8 * time.Second, OnUpdate: func(in []Instance) {
		umu.Lock()
		updates = append(updates, in)
		umu.Unlock()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	// waitCall waits for resolver call i and for the watcher to block on the
	// clock after it.
	waitCall := func(i int) {
		t.Helper()
		if got := <-r.called; got != i {
			t.Fatalf("call %d, want %d", got, i)
		}
		for clk.Waiters() == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	waitCall(0)
	<-w.Ready()
	if got := addrs(w.Instances()); !slices.Equal(got, []string{"a:1", "b:1"}) {
		t.Fatalf("instances = %v", got)
	}
	clk.Advance(9 * time.Second)
	select {
	case i := <-r.called:
		t.Fatalf("refreshed (call %d) before the TTL", i)
	case <-time.After(10 * time.Millisecond):
	}
	clk.Advance(time.Second)
	waitCall(1) // fails
	if w.Staleness() != 0 {
		t.Fatalf("staleness = %v right after the first failure", w.Staleness())
	}
	clk.Advance(4 * time.Second) // retry wait is at most 2 s
	waitCall(2)                  // empty: still failing
	if got := addrs(w.Instances()); !slices.Equal(got, []string{"a:1", "b:1"}) {
		t.Fatalf("last known good set lost: %v", got)
	}
	if s := w.Staleness(); s != 4*time.Second {
		t.Fatalf("staleness = %v, want 4s", s)
	}
	if st := w.Status(); st.ConsecutiveFailures != 2 || !errors.Is(st.LastError, ErrNoInstances) {
		t.Fatalf("status = %+v", st)
	}
	clk.Advance(8 * time.Second)
	if got := <-r.called; got != 3 {
		t.Fatalf("call %d, want 3", got)
	}
	for w.Staleness() != 0 {
		time.Sleep(time.Millisecond)
	}
	if got := addrs(w.Instances()); !slices.Equal(got, []string{"c:1"}) {
		t.Fatalf("instances = %v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	umu.Lock()
	defer umu.Unlock()
	if len(updates) != 2 {
		t.Fatalf("%d updates, want 2", len(updates))
	}
}

func TestBuild(t *testing.T) {
	consul := BuilderFunc(func(t Target) (Resolver, error) {
		return NewStatic([]Instance{{Addr: "consul-found:1"}})
	})
	tests := []struct {
		target  string
		wantErr bool
	}{
		{target: "static:///a:1,b:2"},
		{target: "dns:///user.svc:80"},
		{target: "dns+srv:///_http._tcp.user.svc"},
		{target: "consul:///user-service"},
		{target: "etcd:///user-service", wantErr: true},
		{target: "static:///nonsense", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			target, err := ParseTarget(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Build(target, map[string]Builder{"consul": consul})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestStaticBlocksAfterFirstAnswer(t *testing.T) {
	s, err := NewStatic([]Instance{{Addr: "b:1"}, {Addr: "a:1", Weight: 3}})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s.Resolve(context.Background(), Snapshot{})
	if err != nil || !slices.Equal(addrs(snap.Instances), []string{"a:1", "b:1"}) || snap.Instances[1].Weight != 1 {
		t.Fatalf("snap = %+v, err = %v", snap, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.Resolve(ctx, snap); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Resolve = %v, want it to block until ctx ends", err)
	}
}
