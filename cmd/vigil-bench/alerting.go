package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// The detection-latency benchmark (-signal alerting): a scripted fault, fed
// to Vigil and to Debian's Prometheus + Alertmanager pair at the same
// instants through remote_write, and the time from the fault to the
// webhook that reports it, for each.
//
// Every job of the run sends http_requests_total at 100 requests/s, all
// 200s, one sample per second. Round i turns job bench-i to a 20 % share of
// 500s at its t0 (rounds start 20–25 s apart, so t0 falls at a random
// phase of the 5 s evaluation). Both sides run the same rule (5 s
// interval, for: 10s) and the same route (group_by alertname and job,
// group_wait 1s) to a webhook served by this program, which notes when
// each job's first firing notification arrives.

const (
	alertRuleFile = `groups:
  - name: bench
    interval: 5s
    rules:
      - alert: BenchErrorRate
        expr: sum by (job) (rate(http_requests_total{status_code=~"5.."}[30s])) / sum by (job) (rate(http_requests_total[30s])) > 0.05
        for: 10s
        labels:
          severity: critical
`
	alertRouteFile = `route:
  receiver: hook
  group_by: [alertname, job]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: false
`
	promConfigFile = `global:
  evaluation_interval: 5s
  scrape_interval: 1m
rule_files: [%q]
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%q]
`
)

// arrivals records, per receiving side and job, when the first firing
// notification arrived.
type arrivals struct {
	mu   sync.Mutex
	seen map[string]map[string]time.Time // side → job → arrival
}

func (a *arrivals) handler(side string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		var msg struct {
			Alerts []struct {
				Status string            `json:"status"`
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&msg); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, al := range msg.Alerts {
			if al.Status != "firing" {
				continue
			}
			job := al.Labels["job"]
			if _, ok := a.seen[side][job]; !ok {
				a.seen[side][job] = at
			}
		}
		w.WriteHeader(http.StatusOK)
	}
}

func (a *arrivals) get(side, job string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.seen[side][job]
	return t, ok
}

// freePort returns a loopback address with a port free at the time of the call.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startTool runs one of Debian's binaries until ctx ends, and waits until
// its HTTP address answers path.
func startTool(ctx context.Context, addr, path string, name string, args ...string) (func(), error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	stop()
	return nil, fmt.Errorf("%s did not become ready on %s", name, addr)
}

func runAlerting(ctx context.Context, o options, logger *slog.Logger, w io.Writer) error {
	rounds := o.alertRounds
	dir, err := os.MkdirTemp("", "vigil-bench-alerting-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The webhook both sides notify.
	arr := &arrivals{seen: map[string]map[string]time.Time{"vigil": {}, "prometheus": {}}}
	hookLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/vigil", arr.handler("vigil"))
	mux.Handle("/prometheus", arr.handler("prometheus"))
	hookSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hookSrv.Serve(hookLn) }()
	defer hookSrv.Close()
	hook := "http://" + hookLn.Addr().String()

	write := func(name, content string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, []byte(content), 0o600)
	}
	rulesPath, err := write("rules.yml", alertRuleFile)
	if err != nil {
		return err
	}
	vigilAM, err := write("vigil-am.yml", fmt.Sprintf(alertRouteFile, hook+"/vigil"))
	if err != nil {
		return err
	}
	promAM, err := write("prom-am.yml", fmt.Sprintf(alertRouteFile, hook+"/prometheus"))
	if err != nil {
		return err
	}

	// Debian's Alertmanager 0.25 and Prometheus 2.42.
	amAddr, err := freePort()
	if err != nil {
		return err
	}
	stopAM, err := startTool(ctx, amAddr, "/-/ready", "prometheus-alertmanager",
		"--config.file="+promAM, "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=")
	if err != nil {
		return err
	}
	defer stopAM()
	promCfg, err := write("prometheus.yml", fmt.Sprintf(promConfigFile, rulesPath, amAddr))
	if err != nil {
		return err
	}
	promAddr, err := freePort()
	if err != nil {
		return err
	}
	stopProm, err := startTool(ctx, promAddr, "/-/ready", "prometheus",
		"--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "prom"),
		"--web.listen-address="+promAddr, "--web.enable-remote-write-receiver")
	if err != nil {
		return err
	}
	defer stopProm()

	// Vigil, with the same rule and route, on a fresh database.
	dbURL, drop, err := createDB(ctx, o.adminURL, "vigil_bench_alert_", o.keep)
	if err != nil {
		return err
	}
	defer drop()
	vp, err := startVigilWith(ctx, o.vigilBin, dbURL, false,
		[]string{"--rules", rulesPath, "--alertmanager-config", vigilAM, "--default-rules=false"})
	if err != nil {
		return err
	}
	defer func() { _ = vp.stop() }()
	logger.Info("alerting benchmark running", "rounds", rounds, "vigil", vp.addrs["http"], "prometheus", promAddr, "alertmanager", amAddr)

	targets := map[string]string{
		"vigil":      "http://" + vp.addrs["http"] + "/api/v1/write",
		"prometheus": "http://" + promAddr + "/api/v1/write",
	}
	// The feed: one sample per job and status per second, to both sides.
	warmup := 40 * time.Second
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	begin := time.Now()
	t0 := make([]time.Time, rounds)
	at := begin.Add(warmup)
	for i := range rounds {
		at = at.Add(20*time.Second + time.Duration(rng.Int64N(int64(5*time.Second))))
		t0[i] = at
	}
	end := t0[rounds-1].Add(60 * time.Second)
	ok200 := make([]float64, rounds)
	err500 := make([]float64, rounds)
	client := &http.Client{Timeout: 10 * time.Second}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for now := range tick.C {
		if ctx.Err() != nil || now.After(end) {
			break
		}
		req := &prompb.WriteRequest{}
		ts := now.UnixMilli()
		for i := range rounds {
			if now.After(t0[i]) {
				ok200[i] += 80
				err500[i] += 20
			} else {
				ok200[i] += 100
			}
			job := fmt.Sprintf("bench-%d", i)
			for _, s := range []struct {
				code string
				v    float64
			}{{"200", ok200[i]}, {"500", err500[i]}} {
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
					Labels: []prompb.Label{
						{Name: "__name__", Value: "http_requests_total"},
						{Name: "instance", Value: "bench:80"},
						{Name: "job", Value: job},
						{Name: "status_code", Value: s.code},
					},
					Samples: []prompb.Sample{{Timestamp: ts, Value: s.v}},
				})
			}
		}
		raw, err := req.Marshal()
		if err != nil {
			return err
		}
		body := snappy.Encode(nil, raw)
		for side, u := range targets {
			code, msg, err := postWrite(ctx, client, u, body)
			if err != nil || (code != http.StatusNoContent && code != http.StatusOK) {
				return fmt.Errorf("remote_write to %s: %d %s %v", side, code, msg, err)
			}
		}
		done := true
		for i := range rounds {
			for side := range targets {
				if _, ok := arr.get(side, fmt.Sprintf("bench-%d", i)); !ok {
					done = false
				}
			}
		}
		if done {
			break
		}
	}

	lat := map[string][]time.Duration{}
	fmt.Fprintf(w, "\nDetection latency (fault at t0 → webhook), %d rounds, rule interval 5s, for 10s, group_wait 1s — %s\n", rounds, machine())
	fmt.Fprintf(w, "%-8s %14s %14s\n", "round", "Vigil", "Prom+AM")
	for i := range rounds {
		job := fmt.Sprintf("bench-%d", i)
		row := fmt.Sprintf("%-8d", i)
		for _, side := range []string{"vigil", "prometheus"} {
			a, ok := arr.get(side, job)
			if !ok {
				row += fmt.Sprintf(" %14s", "missed")
				continue
			}
			d := a.Sub(t0[i])
			lat[side] = append(lat[side], d)
			row += fmt.Sprintf(" %13.2fs", d.Seconds())
		}
		fmt.Fprintln(w, row)
	}
	med := func(d []time.Duration) time.Duration {
		if len(d) == 0 {
			return 0
		}
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	mv, mp := med(lat["vigil"]), med(lat["prometheus"])
	fmt.Fprintf(w, "median   %13.2fs %13.2fs   ratio Vigil/Prometheus+Alertmanager %.2f\n", mv.Seconds(), mp.Seconds(), float64(mv)/float64(max(mp, 1)))
	if len(lat["vigil"]) < rounds || len(lat["prometheus"]) < rounds {
		return fmt.Errorf("some rounds were not notified (vigil %d, prometheus %d of %d)", len(lat["vigil"]), len(lat["prometheus"]), rounds)
	}
	return nil
}
