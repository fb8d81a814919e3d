package scrape

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestDNSDiscovery: dns_sd_configs with SRV and A records, answered by a
// DNS server in the test.
//
// Prometheus's DNS discovery asks the servers of /etc/resolv.conf, on
// port 53, and cannot be pointed elsewhere. The test therefore runs
// itself again in a user, network and mount namespace of its own
// (unshare), where it binds 127.0.0.1:53 and sees a resolv.conf naming
// it. Where unprivileged namespaces are not allowed it is skipped. No
// database is reachable from that namespace: the test looks at the
// targets and at the requests they get, not at stored series.
func TestDNSDiscovery(t *testing.T) {
	if os.Getenv(dnsChildEnv) != "" {
		dnsDiscovery(t)
		return
	}
	// In CI (CI set) the machine has both, and the test must run.
	skip := t.Skipf
	if os.Getenv("CI") != "" {
		skip = t.Fatalf
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		skip("no unshare: cannot give the DNS discovery its own resolv.conf")
	}
	if err := exec.Command(unshare, "--user", "--map-root-user", "--net", "--mount", "true").Run(); err != nil {
		skip("no unprivileged namespaces (%v): cannot give the DNS discovery its own resolv.conf", err)
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(unshare, "--user", "--map-root-user", "--net", "--mount", "--",
		"sh", "-c", `ip link set lo up && mount --bind "$1" /etc/resolv.conf && exec "$2" -test.run '^TestDNSDiscovery$' -test.v -test.count=1`,
		"sh", resolv, os.Args[0])
	cmd.Env = append(os.Environ(), dnsChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in its own namespaces:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
}

// dnsDiscovery runs in the child process: a DNS server on 127.0.0.1:53
// answers an SRV name with app.vigil.test and the target's port, and the
// A name app.vigil.test with 127.0.0.1.
func dnsDiscovery(t *testing.T) {
	c, _, _ := appMetrics()
	tg := newTarget(t, c)
	_, portStr, _ := net.SplitHostPort(tg.addr())
	port, _ := strconv.Atoi(portStr)
	var srvPort atomic.Int64
	srvPort.Store(int64(port))

	mux := dns.NewServeMux()
	mux.HandleFunc("vigil.test.", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		for _, q := range r.Question {
			switch {
			case q.Qtype == dns.TypeSRV && q.Name == "_metrics._tcp.vigil.test.":
				m.Answer = append(m.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 1},
					Priority: 1, Weight: 1, Port: uint16(srvPort.Load()), Target: "app.vigil.test."})
			case q.Qtype == dns.TypeA && q.Name == "app.vigil.test.":
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
					A: net.IPv4(127, 0, 0, 1)})
			}
		}
		_ = w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:53")
	if err != nil {
		t.Fatalf("listen on port 53: %v", err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })

	cfg := parseConfig(t, fmt.Sprintf(`
scrape_configs:
  - job_name: srv
    scrape_interval: %[1]s
    scrape_timeout: %[1]s
    dns_sd_configs:
      - names: [_metrics._tcp.vigil.test]
        refresh_interval: 200ms
    relabel_configs:
      - source_labels: [__meta_dns_srv_record_target]
        target_label: srv_target
  - job_name: a
    scrape_interval: %[1]s
    scrape_timeout: %[1]s
    dns_sd_configs:
      - names: [app.vigil.test]
        type: A
        port: %[2]d
        refresh_interval: 200ms
`, testInterval, port))
	m := newManager(t, discard{}, cfg, Options{})
	start(t, m)

	want := map[string]string{
		"srv": fmt.Sprintf("http://app.vigil.test:%d/metrics", port),
		"a":   fmt.Sprintf("http://127.0.0.1:%d/metrics", port),
	}
	eventually(t, 10*time.Second, "both jobs' targets up", func() bool {
		act := m.TargetsActive()
		for job, u := range want {
			if len(act[job]) != 1 || act[job][0].URL().String() != u || act[job][0].Health() != "up" {
				return false
			}
		}
		return true
	})
	if got := m.TargetsActive()["srv"][0].GetValue("srv_target"); got != "app.vigil.test." {
		t.Errorf("srv_target %q", got)
	}
	// The SRV record moves to another port: the target follows.
	srvPort.Store(1)
	eventually(t, 10*time.Second, "the SRV target moved", func() bool {
		act := m.TargetsActive()["srv"]
		return len(act) == 1 && act[0].URL().Port() == "1"
	})
}
