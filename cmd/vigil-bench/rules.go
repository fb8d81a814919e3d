package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// The rule-evaluation benchmark (-signal rules): 1,000 alerting rules in
// ten groups of a hundred, every 15 s, over 10,000 active series fed by
// remote_write (100 jobs × 10 instances × 10 status codes of
// http_requests_total, one sample per series per 15 s, with five minutes
// of history first). It reports the duration of every group evaluation
// (Prometheus's prometheus_rule_group_last_duration_seconds, read as each
// evaluation ends), their sum per round (the groups run concurrently, at
// offsets spread over the interval; the sum is the time a round would
// take with its groups one after another), and Vigil's and PostgreSQL's CPU
// per round (ingest of the 10,000 samples of a round included), with the
// head off and on, in that order, on a database each.

const (
	ruleJobs      = 100
	ruleInstances = 10
	ruleGroups    = 10
	ruleInterval  = 15 * time.Second
)

var ruleCodes = []string{"200", "201", "204", "301", "302", "400", "404", "429", "500", "503"}

// ruleTemplates are the ten rules written for every job (%[1]s is the job).
var ruleTemplates = []string{
	`sum by (instance) (rate(http_requests_total{job="%[1]s",status_code=~"5.."}[5m])) / sum by (instance) (rate(http_requests_total{job="%[1]s"}[5m])) > 0.05`,
	`sum(rate(http_requests_total{job="%[1]s",status_code=~"5.."}[1m])) / sum(rate(http_requests_total{job="%[1]s"}[1m])) > 0.05`,
	`sum by (instance) (rate(http_requests_total{job="%[1]s",status_code="429"}[5m])) > 10`,
	`sum(rate(http_requests_total{job="%[1]s"}[5m])) < 1`,
	`sum by (instance) (rate(http_requests_total{job="%[1]s",status_code=~"4.."}[5m])) / sum by (instance) (rate(http_requests_total{job="%[1]s"}[5m])) > 0.5`,
	`increase(http_requests_total{job="%[1]s",status_code="500"}[10m]) > 100000`,
	`absent(http_requests_total{job="%[1]s"})`,
	`rate(http_requests_total{job="%[1]s",instance="i-0",status_code="200"}[5m]) == 0`,
	`max_over_time(http_requests_total{job="%[1]s",status_code="503"}[5m]) < 0`,
	`count(http_requests_total{job="%[1]s"}) < 50`,
}

func ruleJob(j int) string { return fmt.Sprintf("svc-%02d", j) }

// ruleFile writes the 1,000 rules.
func ruleFile() string {
	var b strings.Builder
	b.WriteString("groups:\n")
	per := ruleJobs / ruleGroups
	for g := range ruleGroups {
		fmt.Fprintf(&b, "  - name: bench-%d\n    interval: %s\n    rules:\n", g, ruleInterval)
		for j := g * per; j < (g+1)*per; j++ {
			for i, t := range ruleTemplates {
				fmt.Fprintf(&b, "      - alert: Bench%d\n        expr: '%s'\n        for: 1m\n        labels: {severity: warning}\n", i, fmt.Sprintf(t, ruleJob(j)))
			}
		}
	}
	return b.String()
}

// ruleRound is the remote_write body of one scrape round at t: every
// series, with a tenth of the jobs at a 10 % share of 500s.
func ruleRound(round int, t time.Time) ([]byte, error) {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, ruleJobs*ruleInstances*len(ruleCodes))}
	samples := make([]prompb.Sample, cap(req.Timeseries))
	n := 0
	for j := range ruleJobs {
		for i := range ruleInstances {
			for c, code := range ruleCodes {
				per := 10.0 // requests per second of this code
				if code == "500" && j%10 == 0 {
					per = 100
				}
				samples[n] = prompb.Sample{Timestamp: t.UnixMilli(), Value: per * 15 * float64(round+1) * float64(1+c%3)}
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
					Labels: []prompb.Label{
						{Name: "__name__", Value: "http_requests_total"},
						{Name: "instance", Value: fmt.Sprintf("i-%d", i)},
						{Name: "job", Value: ruleJob(j)},
						{Name: "status_code", Value: code},
					},
					Samples: samples[n : n+1],
				})
				n++
			}
		}
	}
	raw, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	return snappy.Encode(nil, raw), nil
}

func runRules(ctx context.Context, o options, logger *slog.Logger, w io.Writer) error {
	dir, err := os.MkdirTemp("", "vigil-bench-rules-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rulesPath := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(rulesPath, []byte(ruleFile()), 0o600); err != nil {
		return err
	}
	// The same run without the head, then with it, each on a database of
	// its own: the ratio of the two holds on a noisy machine where the
	// absolute figures do not.
	noHead := filepath.Join(dir, "no-head.yml")
	if err := os.WriteFile(noHead, []byte("metrics:\n  head_range: 0s\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nRule evaluation: %d alerting rules in %d groups every %s over %d series (%s)\n",
		ruleJobs*len(ruleTemplates), ruleGroups, ruleInterval, ruleJobs*ruleInstances*len(ruleCodes), machine())
	fmt.Fprintf(w, "| head | group of 100 rules p50 / p99 | round p50 / p99 (target ≤ 3 s) | Vigil CPU / round | PostgreSQL CPU / round |\n| --- | --- | --- | --- | --- |\n")
	for _, v := range []struct {
		name string
		args []string
	}{{"off", []string{"--config", noHead}}, {"on", nil}} {
		if err := runRulesOnce(ctx, o, logger, w, rulesPath, v.name, v.args); err != nil {
			return fmt.Errorf("head %s: %w", v.name, err)
		}
	}
	return nil
}

// runRulesOnce runs the rule benchmark once, on a new database, with
// Vigil's extra arguments args, and prints one table row named name.
func runRulesOnce(ctx context.Context, o options, logger *slog.Logger, w io.Writer, rulesPath, name string, args []string) error {
	dbURL, drop, err := createDB(ctx, o.adminURL, "vigil_bench_rules_", o.keep)
	if err != nil {
		return err
	}
	defer drop()

	// History first, so that every window of the rules is full: start
	// Vigil without rules, backfill five minutes, then restart it with
	// them.
	history := 20
	start := time.Now().Add(-time.Duration(history) * ruleInterval)
	client := &http.Client{Timeout: time.Minute}
	send := func(base string, round int, at time.Time) error {
		body, err := ruleRound(round, at)
		if err != nil {
			return err
		}
		code, msg, err := postWrite(ctx, client, base+"/api/v1/write", body)
		if err != nil || (code != http.StatusNoContent && code != http.StatusOK) {
			return fmt.Errorf("remote_write: %d %s %v", code, msg, err)
		}
		return nil
	}
	vp, err := startVigilWith(ctx, o.vigilBin, dbURL, false, append([]string{"--default-rules=false"}, args...))
	if err != nil {
		return err
	}
	base := "http://" + vp.addrs["http"]
	for r := range history {
		if err := send(base, r, start.Add(time.Duration(r)*ruleInterval)); err != nil {
			_ = vp.stop()
			return err
		}
	}
	_ = vp.stop()

	vp, err = startVigilWith(ctx, o.vigilBin, dbURL, false, append([]string{"--default-rules=false", "--rules", rulesPath}, args...))
	if err != nil {
		return err
	}
	defer func() { _ = vp.stop() }()
	base = "http://" + vp.addrs["http"]
	logger.Info("rule benchmark running", "rules", ruleJobs*len(ruleTemplates), "series", ruleJobs*ruleInstances*len(ruleCodes), "rounds", o.ruleRounds)

	// Feed a round every 15 s and watch each group's evaluations.
	lastEval := map[string]float64{}
	var durations []float64
	// A round is complete once every group has evaluated again; its
	// figure is the sum of the groups' durations (the time one round
	// would take with its groups evaluated one after another).
	pending := map[string]float64{}
	var sums []float64
	cpu0, pg0 := procCPU(vp.pid), pgUsageOf(dbName(dbURL))
	began := time.Now()
	feed := time.NewTicker(ruleInterval)
	defer feed.Stop()
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	round := history
	if err := send(base, round, time.Now()); err != nil {
		return err
	}
	end := began.Add(time.Duration(o.ruleRounds) * ruleInterval)
	for time.Now().Before(end) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case at := <-feed.C:
			round++
			if err := send(base, round, at); err != nil {
				return err
			}
		case <-poll.C:
			m := scrapePrefix(base, "prometheus_rule_group_last_")
			for name, v := range m {
				if !strings.HasPrefix(name, "prometheus_rule_group_last_evaluation_timestamp_seconds{") || v == 0 {
					continue
				}
				labels := strings.TrimPrefix(name, "prometheus_rule_group_last_evaluation_timestamp_seconds")
				if lastEval[labels] == v {
					continue
				}
				first := lastEval[labels] == 0
				lastEval[labels] = v
				if first {
					continue // the evaluation before the watch began
				}
				d := m["prometheus_rule_group_last_duration_seconds"+labels]
				durations = append(durations, d)
				pending[labels] = d
				if len(pending) == ruleGroups {
					var sum float64
					for _, x := range pending {
						sum += x
					}
					sums = append(sums, sum)
					clear(pending)
				}
			}
		}
	}
	elapsed := time.Since(began)
	cpu, pg := procCPU(vp.pid)-cpu0, pgUsageOf(dbName(dbURL)).since(pg0)
	rounds := elapsed.Seconds() / ruleInterval.Seconds()
	if len(durations) == 0 {
		return fmt.Errorf("no rule group evaluation was seen")
	}
	slices.Sort(durations)
	q := func(p float64) float64 { return durations[min(len(durations)-1, int(p*float64(len(durations))))] }
	inOrder := make([]string, len(sums))
	for i, x := range sums {
		inOrder[i] = fmt.Sprintf("%.2f", x)
	}
	logger.Info("rule rounds in order, s", "head", name, "rounds", strings.Join(inOrder, " "))
	slices.Sort(sums)
	roundFig := "–"
	if len(sums) > 0 {
		roundFig = fmt.Sprintf("%.2f s / %.2f s (%d rounds)", sums[len(sums)/2], sums[min(len(sums)-1, int(0.99*float64(len(sums))))], len(sums))
	}
	fmt.Fprintf(w, "| %s | %.3f s / %.3f s | %s | %.2f s | %.2f s |\n", name, q(0.5), q(0.99), roundFig, cpu.Seconds()/rounds, pg.Seconds()/rounds)
	return nil
}
