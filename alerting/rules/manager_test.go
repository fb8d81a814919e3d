package rules

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
)

// scenario is one shipped rule made to fire by a fault between bad and
// good (minutes after t0).
type scenario struct {
	alert    string
	instance string
	service  string // service_name, for the rules over span-derived series
	hold     int    // the rule's `for`, minutes
	bad      int    // first minute of the fault
	good     int    // first minute after it
	// pendingBy and resolvedBy bound when the rule notices the fault and
	// its end: rates over 5m lag behind their series (the 9 % error share
	// needs 3 minutes of the 5m window to pass 5 %).
	pendingBy, resolvedBy int
}

var scenarios = []scenario{
	{alert: "HighErrorRate", instance: "10.0.0.1:8080", hold: 5, bad: 10, good: 25, pendingBy: 13, resolvedBy: 31},
	{alert: "HighLatency", instance: "10.0.0.3:8080", hold: 5, bad: 10, good: 25, pendingBy: 12, resolvedBy: 31},
	{alert: "HighMemoryUsage", instance: "10.0.0.4:9100", hold: 10, bad: 10, good: 30, pendingBy: 10, resolvedBy: 30},
	{alert: "ServiceDown", instance: "10.0.0.5:8080", hold: 1, bad: 10, good: 20, pendingBy: 10, resolvedBy: 20},
	{alert: "HighSpanErrorRate", service: "orders", hold: 5, bad: 10, good: 25, pendingBy: 13, resolvedBy: 31},
	{alert: "HighSpanLatency", service: "search", hold: 5, bad: 10, good: 25, pendingBy: 12, resolvedBy: 31},
	// Silent from minute 10: 75 s later the rule is pending, 15 s after
	// that firing (evaluated every 15 s); this harness evaluates minutes.
	{alert: "ServiceSilent", service: "mobile-api", hold: 1, bad: 10, good: 20, pendingBy: 12, resolvedBy: 20},
}

// defaultRulesSeries is 45 minutes of series, one sample every 15s, in
// which each scenario's fault happens, plus a healthy service with 1 %
// errors, whose bare 5xx rate (0.067/s) is above 0.05.
func defaultRulesSeries() []sample {
	var out []sample
	inBad := func(ts time.Time, sc scenario) bool {
		return !ts.Before(minute(sc.bad)) && ts.Before(minute(sc.good))
	}
	var ok, failed, okHealthy, failedHealthy, lastSeen float64
	buckets := []string{"0.1", "0.5", "1", "2", "5", "+Inf"}
	counts := make([]float64, len(buckets))
	for i := 0; i <= 45*4; i++ {
		ts := t0.Add(time.Duration(i) * 15 * time.Second)
		if i > 0 {
			ok += 100
			if inBad(ts, scenarios[0]) {
				failed += 10
			}
			okHealthy += 99
			failedHealthy++
			for b := range buckets {
				// 20 requests every 15s: fast ones in every bucket, slow
				// ones (1–2s) from le="2" up.
				if !inBad(ts, scenarios[1]) || b >= 3 {
					counts[b] += 20
				}
			}
		}
		out = append(out,
			sample{series("__name__", "http_requests_total", "job", "checkout", "instance", "10.0.0.1:8080", "method", "POST", "route", "/pay", "status_code", "200"), ts, ok},
			sample{series("__name__", "http_requests_total", "job", "checkout", "instance", "10.0.0.1:8080", "method", "POST", "route", "/pay", "status_code", "500"), ts, failed},
			sample{series("__name__", "http_requests_total", "job", "checkout", "instance", "10.0.0.2:8080", "method", "POST", "route", "/pay", "status_code", "200"), ts, okHealthy},
			sample{series("__name__", "http_requests_total", "job", "checkout", "instance", "10.0.0.2:8080", "method", "POST", "route", "/pay", "status_code", "503"), ts, failedHealthy},
		)
		for b, le := range buckets {
			out = append(out, sample{series("__name__", "http_request_duration_seconds_bucket", "job", "search", "instance", "10.0.0.3:8080", "route", "/q", "le", le), ts, counts[b]})
		}
		mem := float64(1 << 30)
		if inBad(ts, scenarios[2]) {
			mem = 3 << 30
		}
		out = append(out, sample{series("__name__", "process_resident_memory_bytes", "job", "api", "instance", "10.0.0.4:9100"), ts, mem})
		up := 1.0
		if inBad(ts, scenarios[3]) {
			up = 0
		}
		out = append(out, sample{series("__name__", "up", "job", "user-service", "instance", "10.0.0.5:8080"), ts, up})

		// The same faults seen only through span-derived series: server
		// spans of orders fail like checkout's requests (and catalog's 1 %
		// like the healthy instance's), search's get slow (milliseconds).
		span := func(name, service, status string, more ...string) labels.Labels {
			return series(append([]string{"__name__", name, "service_name", service, "span_name", "GET /x",
				"span_kind", "SPAN_KIND_SERVER", "status_code", status, "vigil_replica", "r1"}, more...)...)
		}
		out = append(out,
			sample{span("traces_span_metrics_calls", "orders", "STATUS_CODE_UNSET"), ts, ok},
			sample{span("traces_span_metrics_calls", "orders", "STATUS_CODE_ERROR"), ts, failed},
			sample{span("traces_span_metrics_calls", "catalog", "STATUS_CODE_UNSET"), ts, okHealthy},
			sample{span("traces_span_metrics_calls", "catalog", "STATUS_CODE_ERROR"), ts, failedHealthy},
		)
		for b, le := range []string{"100", "500", "1000", "2000", "5000", "+Inf"} {
			out = append(out, sample{span("traces_span_metrics_duration_bucket", "search", "STATUS_CODE_UNSET", "le", le), ts, counts[b]})
		}
		// A service that only pushes: last seen now, except while silent.
		if !inBad(ts, scenarios[6]) {
			lastSeen = float64(ts.Unix())
		}
		out = append(out, sample{series("__name__", "vigil_service_last_seen_timestamp_seconds", "service_name", "mobile-api",
			"service_instance_id", "pod-7", "vigil_replica", "r1"), ts, lastSeen})
	}
	return out
}

func TestDefaultRulesFireAndResolve(t *testing.T) {
	st := newStore(t)
	st.load(t, defaultRulesSeries())
	cfg := testConfig()
	on := true
	cfg.DefaultRules = &on
	r := start(t, newManager(t, st, cfg, Options{}))

	// states[alert][minute] is the state of the scenario's alert.
	states := map[string][]string{}
	var sent []*notifier.Alert
	for n := 1; n <= 45; n++ {
		r.evalAt(t, minute(n))
		sent = append(sent, r.sent.take()...)
		all, err := r.m.ActiveAlerts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, sc := range scenarios {
			state := "inactive"
			for _, a := range all {
				if a.Labels.Get(labels.AlertName) == sc.alert && a.Labels.Get("instance") == sc.instance && a.Labels.Get("service_name") == sc.service {
					state = a.State
				}
			}
			states[sc.alert] = append(states[sc.alert], state)
		}
		for _, a := range all {
			if a.Labels.Get("instance") == "10.0.0.2:8080" || a.Labels.Get("service_name") == "catalog" {
				t.Errorf("minute %d: the healthy service alerts: %s", n, a.Labels)
			}
		}
		if n == 15 {
			checkAlertsSeries(t, st, n)
		}
	}

	for _, sc := range scenarios {
		t.Run(sc.alert, func(t *testing.T) {
			s := states[sc.alert]
			at := func(n int) string { return s[n-1] }
			pending := 0
			for n := 1; n <= 45; n++ {
				if at(n) != "inactive" {
					pending = n
					break
				}
			}
			if pending < sc.bad || pending > sc.pendingBy {
				t.Fatalf("first active at minute %d, want %d–%d; states %v", pending, sc.bad, sc.pendingBy, s)
			}
			for n := pending; n < pending+sc.hold; n++ {
				if at(n) != "pending" {
					t.Errorf("minute %d: %s, want pending (for %dm)", n, at(n), sc.hold)
				}
			}
			firing := pending + sc.hold
			if at(firing) != "firing" {
				t.Errorf("minute %d: %s, want firing", firing, at(firing))
			}
			resolved := 0
			for n := firing; n <= 45; n++ {
				if at(n) == "inactive" {
					resolved = n
					break
				}
				if at(n) != "firing" {
					t.Errorf("minute %d: %s, want firing until resolved", n, at(n))
				}
			}
			if resolved < sc.good || resolved > sc.resolvedBy {
				t.Fatalf("resolved at minute %d, want %d–%d; states %v", resolved, sc.good, sc.resolvedBy, s)
			}
			for n := resolved; n <= 45; n++ {
				if at(n) != "inactive" {
					t.Errorf("minute %d: %s after resolution", n, at(n))
				}
			}

			var firedSent, resolvedSent bool
			for _, a := range sent {
				if a.Labels.Get(labels.AlertName) != sc.alert {
					continue
				}
				if a.Labels.Get("severity") == "" || a.Annotations.Get("summary") == "" || strings.Contains(a.Annotations.Get("description"), "<error") {
					t.Errorf("alert without severity or with a broken template: %s %s", a.Labels, a.Annotations)
				}
				checkGeneratorURL(t, a.GeneratorURL)
				if !a.StartsAt.Equal(minute(firing)) {
					t.Errorf("sent alert starts at %s, want %s", a.StartsAt, minute(firing))
				}
				if a.EndsAt.Equal(minute(resolved)) {
					resolvedSent = true
				} else if a.EndsAt.After(minute(resolved - 1)) {
					firedSent = true
				}
			}
			if !firedSent || !resolvedSent {
				t.Errorf("notifications: firing sent %v, resolved sent %v", firedSent, resolvedSent)
			}
		})
	}
}

// checkAlertsSeries reads back, through the engine, the ALERTS and
// ALERTS_FOR_STATE series the evaluation at minute n wrote.
func checkAlertsSeries(t *testing.T, st store, n int) {
	t.Helper()
	v := st.query(t, `ALERTS{alertname="ServiceDown"}`, minute(n))
	if len(v) != 1 || v[0].Metric.Get("alertstate") != "firing" || v[0].F != 1 || v[0].Metric.Get("severity") != "critical" {
		t.Errorf("ALERTS at minute %d: %v", n, v)
	}
	v = st.query(t, `ALERTS_FOR_STATE{alertname="ServiceDown", instance="10.0.0.5:8080"}`, minute(n))
	if len(v) != 1 || v[0].F != float64(minute(10).Unix()) {
		t.Errorf("ALERTS_FOR_STATE at minute %d: %v, want active since minute 10", n, v)
	}
	v = st.query(t, `ALERTS{alertname="HighMemoryUsage", alertstate="pending"}`, minute(n))
	if len(v) != 1 {
		t.Errorf("pending HighMemoryUsage in ALERTS at minute %d: %v", n, v)
	}
}

func checkGeneratorURL(t *testing.T, link string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("generator URL %q: %v", link, err)
	}
	if u.Scheme != "https" || u.Host != "vigil.example.com" || u.Path != "/explore" || u.Query().Get("q") == "" || u.Query().Get("tab") != "table" {
		t.Errorf("generator URL %q is not the metrics explorer", link)
	}
}

const recordingRules = `
groups:
  - name: recorded
    rules:
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
      - alert: CheckoutBusy
        expr: job:http_requests:rate5m{job="checkout"} > 10
        labels:
          severity: warning
`

func TestRecordingRuleOutputIsQueryable(t *testing.T) {
	st := newStore(t)
	st.load(t, defaultRulesSeries())
	r := start(t, newManager(t, st, testConfig(writeRules(t, t.TempDir(), "rec.yml", recordingRules)), Options{}))
	for n := 5; n <= 8; n++ {
		r.evalAt(t, minute(n))
	}
	// checkout: 100 + 99 + 1 requests every 15s on its two instances,
	// no failures before minute 10: 200/15 per second.
	v := st.query(t, `job:http_requests:rate5m`, minute(8))
	if len(v) != 1 || v[0].Metric.Get("job") != "checkout" || math.Abs(v[0].F-200.0/15) > 1e-9 {
		t.Fatalf("job:http_requests:rate5m = %v, want {job=checkout} %g", v, 200.0/15)
	}
	// The alert on the recorded series fires at once (no `for`) and is
	// written from the evaluation after the `for` state restore.
	v = st.query(t, `ALERTS{alertname="CheckoutBusy", alertstate="firing"}`, minute(8))
	if len(v) != 1 || v[0].Metric.Get("job") != "checkout" {
		t.Fatalf("ALERTS for CheckoutBusy = %v", v)
	}
	v = st.query(t, `ALERTS_FOR_STATE{alertname="CheckoutBusy"}`, minute(8))
	if len(v) != 1 || v[0].F != float64(minute(5).Unix()) {
		t.Fatalf("ALERTS_FOR_STATE for CheckoutBusy = %v, want active since minute 5", v)
	}
}

const slowDownRule = `
groups:
  - name: slow
    rules:
      - alert: DownLong
        expr: up == 0
        for: 30m
        labels:
          severity: critical
`

// TestRestartRestoresForState: a new manager over the same database
// takes over a pending alert's `for` state from ALERTS_FOR_STATE, shifted
// by the outage, as Prometheus does after a restart.
func TestRestartRestoresForState(t *testing.T) {
	st := newStore(t)
	var samples []sample
	for n := 0; n <= 60; n++ {
		samples = append(samples, sample{series("__name__", "up", "job", "db", "instance", "10.0.0.9:5432"), minute(n), 0})
	}
	st.load(t, samples)
	file := writeRules(t, t.TempDir(), "slow.yml", slowDownRule)

	first := start(t, newManager(t, st, testConfig(file), Options{}))
	for n := 1; n <= 10; n++ {
		first.evalAt(t, minute(n))
	}
	a := alertsByName(t, first.m, "DownLong")
	if len(a) != 1 || a[0].State != "pending" || !a[0].ActiveAt.Equal(minute(1)) {
		t.Fatalf("before the restart: %+v", a)
	}
	first.stop(t)

	// A replica that does not evaluate reads the alert from the store.
	follower := newManager(t, st, testConfig(file), Options{Now: func() time.Time { return minute(10) }})
	a = alertsByName(t, follower, "DownLong")
	if len(a) != 1 || a[0].State != "pending" || !a[0].ActiveAt.Equal(minute(1)) || !math.IsNaN(a[0].Value) {
		t.Fatalf("follower's view: %+v", a)
	}
	groups, err := follower.RuleGroups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		for _, rule := range g.Rules {
			if rule.Health != "unknown" || rule.State != "unknown" {
				t.Errorf("follower's rule %s: health %s state %s", rule.Name, rule.Health, rule.State)
			}
		}
	}

	// The last ALERTS_FOR_STATE sample is from minute 10; the new
	// manager restores after its second evaluation, at minute 12: pending
	// 9m before the outage, 21m to go (more than the 10m grace period), so
	// the 2m outage moves activeAt from minute 1 to minute 3.
	second := start(t, newManager(t, st, testConfig(file), Options{}))
	second.evalAt(t, minute(11))
	second.evalAt(t, minute(12))
	a = alertsByName(t, second.m, "DownLong")
	if len(a) != 1 || !a[0].ActiveAt.Equal(minute(3)) {
		t.Fatalf("after the restart: %+v, want active since minute 3", a)
	}
	for n := 13; n <= 33; n++ {
		second.evalAt(t, minute(n))
		want := "pending"
		if n == 33 {
			want = "firing"
		}
		if a := alertsByName(t, second.m, "DownLong"); len(a) != 1 || a[0].State != want {
			t.Fatalf("minute %d: %+v, want %s", n, a, want)
		}
	}
}

func TestRunFollowsLeadership(t *testing.T) {
	st := newStore(t)
	m := newManager(t, st, testConfig(writeRules(t, t.TempDir(), "slow.yml", slowDownRule)), Options{})
	el := &termElector{terms: make(chan context.CancelFunc)}
	m.opts.Elector = el
	leading := make(chan bool)
	m.onLeader = func(l bool) { leading <- l }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	for term := 0; term < 2; term++ {
		end := <-el.terms
		if !<-leading || !m.Status().Leader {
			t.Fatalf("term %d: not leading", term)
		}
		if gs, _ := m.RuleGroups(context.Background()); len(gs) != 1 || gs[0].Rules[0].Name != "DownLong" {
			t.Fatalf("term %d: groups %+v", term, gs)
		}
		end()
		if <-leading || m.Status().Leader {
			t.Fatalf("term %d: still leading", term)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// termElector grants leadership for terms the test ends.
type termElector struct{ terms chan context.CancelFunc }

func (e *termElector) Run(ctx context.Context, lead func(context.Context) error) error {
	for ctx.Err() == nil {
		term, end := context.WithCancel(ctx)
		select {
		case e.terms <- end:
		case <-ctx.Done():
			end()
			return nil
		}
		if err := lead(term); err != nil {
			end()
			return fmt.Errorf("lead: %w", err)
		}
		end()
	}
	return nil
}

// TestServiceSilentWithinTwoMinutes evaluates the shipped liveness rule
// every 15 s, as its group interval says: a service that pushed until
// minute 5 and then went silent fires ServiceSilent within two minutes.
func TestServiceSilentWithinTwoMinutes(t *testing.T) {
	st := newStore(t)
	silentAt := minute(5)
	var in []sample
	for ts := t0; !ts.After(minute(10)); ts = ts.Add(15 * time.Second) {
		last := ts
		if ts.After(silentAt) {
			last = silentAt
		}
		in = append(in, sample{series("__name__", "vigil_service_last_seen_timestamp_seconds", "service_name", "mobile-api",
			"vigil_replica", "r1"), ts, float64(last.Unix())})
	}
	st.load(t, in)
	cfg := testConfig()
	on := true
	cfg.DefaultRules = &on
	r := start(t, newManager(t, st, cfg, Options{}))
	var firedAt time.Time
	for ts := t0.Add(15 * time.Second); !ts.After(minute(10)); ts = ts.Add(15 * time.Second) {
		r.evalAt(t, ts)
		all, err := r.m.ActiveAlerts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range all {
			if a.Labels.Get(labels.AlertName) != "ServiceSilent" {
				continue
			}
			if ts.Before(silentAt.Add(75 * time.Second)) {
				t.Fatalf("%s: ServiceSilent %s while the service was sending", ts.Sub(t0), a.State)
			}
			if a.State == "firing" && firedAt.IsZero() {
				firedAt = ts
			}
		}
	}
	if firedAt.IsZero() || firedAt.Sub(silentAt) > 2*time.Minute {
		t.Fatalf("ServiceSilent fired %s after the service went silent, want within 2m", firedAt.Sub(silentAt))
	}
	t.Logf("fired %s after the last data", firedAt.Sub(silentAt))
}
