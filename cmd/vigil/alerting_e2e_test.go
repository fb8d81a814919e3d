package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

// alertingDeadline bounds every wait of the alerting tests: conditions
// are polled until they hold, and only fail after this long.
const alertingDeadline = 60 * time.Second

// hookAlert is one alert of an Alertmanager webhook notification.
type hookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// hookMessage is the body of an Alertmanager webhook notification
// (version 4).
type hookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []hookAlert       `json:"alerts"`
}

// alertHook is a webhook receiver on loopback recording every
// notification it is sent.
type alertHook struct {
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []hookMessage
	bad  []string
}

func newAlertHook(t testing.TB) *alertHook {
	t.Helper()
	h := &alertHook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var m hookMessage
		if err == nil {
			err = json.Unmarshal(body, &m)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if err != nil || r.Method != http.MethodPost {
			h.bad = append(h.bad, fmt.Sprintf("%s %s: %v: %s", r.Method, r.URL, err, body))
			http.Error(w, "bad notification", http.StatusBadRequest)
			return
		}
		h.msgs = append(h.msgs, m)
	}))
	t.Cleanup(func() {
		h.srv.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, b := range h.bad {
			t.Errorf("webhook received a malformed request: %s", b)
		}
	})
	return h
}

func (h *alertHook) URL() string { return h.srv.URL + "/hook" }

// messages returns a copy of the notifications received so far.
func (h *alertHook) messages() []hookMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

// firing returns the notifications so far whose firing alerts include
// one named alertname (with the given extra labels, if any).
func (h *alertHook) firing(alertname string, match map[string]string) []hookMessage {
	var out []hookMessage
	for _, m := range h.messages() {
		for _, a := range m.Alerts {
			if a.Status == "firing" && a.Labels["alertname"] == alertname && labelsMatch(a.Labels, match) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

func labelsMatch(ls, match map[string]string) bool {
	for k, v := range match {
		if ls[k] != v {
			return false
		}
	}
	return true
}

// alertOf returns the alert named alertname of m.
func alertOf(m hookMessage, alertname string) hookAlert {
	for _, a := range m.Alerts {
		if a.Labels["alertname"] == alertname {
			return a
		}
	}
	return hookAlert{}
}

// waitUntil polls cond until it reports true, failing the test with
// cond's last description after alertingDeadline.
func waitUntil(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(alertingDeadline)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s; last: %s", what, alertingDeadline, last)
		}
		time.Sleep(100 * time.Millisecond) // polling period
	}
}

// writeSamples sends one sample at now per series through remote_write.
func writeSamples(t testing.TB, base string, value float64, series ...map[string]string) {
	t.Helper()
	now := time.Now().UnixMilli()
	var req prompb.WriteRequest
	for _, s := range series {
		var ls []prompb.Label
		for k, v := range s {
			ls = append(ls, prompb.Label{Name: k, Value: v})
		}
		slices.SortFunc(ls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Timestamp: now, Value: value}}})
	}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest(http.MethodPost, base+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	r.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("remote write: %d %s", resp.StatusCode, body)
	}
}

// getBody fetches u and returns its status and body; a transport error
// is status 0 with the error as body.
func getBody(u string) (int, []byte) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// promRulesResponse is /api/v1/rules.
type promRulesResponse struct {
	Status string `json:"status"`
	Data   struct {
		Groups []struct {
			Name           string    `json:"name"`
			File           string    `json:"file"`
			Interval       float64   `json:"interval"`
			LastEvaluation time.Time `json:"lastEvaluation"`
			Rules          []struct {
				Name   string `json:"name"`
				Query  string `json:"query"`
				State  string `json:"state"`
				Health string `json:"health"`
				Type   string `json:"type"`
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"data"`
}

// rulesStatus is /api/vigil/rules/status.
type rulesStatus struct {
	Status string `json:"status"`
	Data   struct {
		LastReload time.Time `json:"lastReload"`
		Success    bool      `json:"success"`
		Error      string    `json:"error"`
		Files      []string  `json:"files"`
		Leader     bool      `json:"leader"`
	} `json:"data"`
}

// v2Alert is an alert of Alertmanager's GET /api/v2/alerts.
type v2Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Fingerprint string            `json:"fingerprint"`
	Status      struct {
		State       string   `json:"state"`
		SilencedBy  []string `json:"silencedBy"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
	Receivers []struct {
		Name string `json:"name"`
	} `json:"receivers"`
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// hookRoute is an Alertmanager configuration sending every alert to
// hookURL, grouped by groupBy, with the given repeat interval.
func hookRoute(hookURL string, groupBy []string, repeat string) string {
	return fmt.Sprintf(`route:
  receiver: hook
  group_by: [%s]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: %s
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: true
`, strings.Join(groupBy, ", "), repeat, hookURL)
}

// instantQuery runs a PromQL instant query and returns the result's
// label sets.
func instantQuery(base, expr string) ([]map[string]string, string) {
	code, body := getBody(base + "/api/v1/query?" + url.Values{"query": {expr}}.Encode())
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal(body, &out) != nil {
		return nil, fmt.Sprintf("%d %s", code, body)
	}
	var ls []map[string]string
	for _, r := range out.Data.Result {
		ls = append(ls, r.Metric)
	}
	return ls, string(body)
}

const queueRules = `groups:
  - name: queues
    interval: 1s
    rules:
      - alert: QueueTooLong
        expr: queue_length > 10
        for: 2s
        labels:
          severity: page
        annotations:
          summary: 'Queue {{ $labels.queue }} holds {{ $value }} jobs'
          runbook: '{{ $externalURL }}/runbooks/queues'
`

// TestAlertingRulesToWebhook follows an alert from a remote-written
// sample to a webhook: the rule fires after its for duration, the
// notification carries the labels, the expanded annotations and a link
// to Vigil's explorer, and the rules API, the alerts API, the ALERTS
// series and the notification history all show it. An invalid rule file
// then fails the reload while the previous rules keep evaluating.
func TestAlertingRulesToWebhook(t *testing.T) {
	dir := t.TempDir()
	hook := newAlertHook(t)
	ruleFile := writeFile(t, dir, "queues.yml", queueRules)
	amFile := writeFile(t, dir, "alertmanager.yml", hookRoute(hook.URL(), []string{"alertname"}, "1h"))
	const externalURL = "http://vigil.example.test:9090"
	off := false
	ts := startServer(t, pgtest.NewDatabase(t), func(c *Config) {
		c.Alerting.Rules.RuleFiles = []string{ruleFile}
		c.Alerting.Rules.DefaultRules = &off
		c.Alerting.Rules.ExternalURL = externalURL
		c.Alerting.Notify.AlertmanagerConfig = amFile
	})
	base := ts.httpURL

	writeSamples(t, base, 42, map[string]string{"__name__": "queue_length", "queue": "emails", "instance": "worker-1"})

	waitUntil(t, "webhook notified of QueueTooLong", func() (bool, string) {
		return len(hook.firing("QueueTooLong", nil)) > 0, fmt.Sprintf("%+v", hook.messages())
	})
	m := hook.firing("QueueTooLong", nil)[0]
	if m.Version != "4" || m.Status != "firing" || m.Receiver != "hook" || m.GroupKey == "" || m.ExternalURL != externalURL {
		t.Errorf("notification envelope: %+v", m)
	}
	if m.GroupLabels["alertname"] != "QueueTooLong" {
		t.Errorf("group labels: %v", m.GroupLabels)
	}
	a := alertOf(m, "QueueTooLong")
	wantLabels := map[string]string{"alertname": "QueueTooLong", "severity": "page", "queue": "emails", "instance": "worker-1"}
	for k, v := range wantLabels {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], v, a.Labels)
		}
	}
	if _, ok := a.Labels["__name__"]; ok {
		t.Errorf("alert keeps the metric name: %v", a.Labels)
	}
	if got := a.Annotations["summary"]; got != "Queue emails holds 42 jobs" {
		t.Errorf("summary annotation = %q", got)
	}
	if got := a.Annotations["runbook"]; got != externalURL+"/runbooks/queues" {
		t.Errorf("runbook annotation = %q", got)
	}
	gen, err := url.Parse(a.GeneratorURL)
	if err != nil || gen.Scheme+"://"+gen.Host != externalURL || gen.Path != "/explore" || gen.Query().Get("q") != "queue_length > 10" {
		t.Errorf("generatorURL = %q, want %s/explore?q=queue_length+%%3E+10…", a.GeneratorURL, externalURL)
	}
	if a.StartsAt.IsZero() || a.StartsAt.After(time.Now()) || a.Fingerprint == "" {
		t.Errorf("alert times/fingerprint: %+v", a)
	}

	// The rules API shows the rule firing with its alert.
	waitUntil(t, "rule firing in /api/v1/rules", func() (bool, string) {
		code, body := getBody(base + "/api/v1/rules")
		var r promRulesResponse
		if code != 200 || json.Unmarshal(body, &r) != nil {
			return false, fmt.Sprintf("%d %s", code, body)
		}
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				if rule.Name == "QueueTooLong" && rule.State == "firing" && rule.Health == "ok" && rule.Type == "alerting" &&
					len(rule.Alerts) == 1 && rule.Alerts[0].Labels["queue"] == "emails" && g.Name == "queues" && g.Interval == 1 {
					return true, ""
				}
			}
		}
		return false, string(body)
	})
	// So does the alerts API.
	code, body := getBody(base + "/api/v1/alerts")
	var alerts struct {
		Status string `json:"status"`
		Data   struct {
			Alerts []struct {
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
				State       string            `json:"state"`
				Value       string            `json:"value"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal(body, &alerts) != nil || len(alerts.Data.Alerts) != 1 ||
		alerts.Data.Alerts[0].Labels["alertname"] != "QueueTooLong" || alerts.Data.Alerts[0].State != "firing" ||
		alerts.Data.Alerts[0].Annotations["summary"] != "Queue emails holds 42 jobs" {
		t.Errorf("/api/v1/alerts: %d %s", code, body)
	}
	// The ALERTS series is queryable with PromQL.
	waitUntil(t, "ALERTS series", func() (bool, string) {
		ls, last := instantQuery(base, `ALERTS{alertname="QueueTooLong"}`)
		for _, l := range ls {
			if l["alertstate"] == "firing" && l["queue"] == "emails" && l["severity"] == "page" {
				return true, ""
			}
		}
		return false, last
	})
	// The notification is in the history.
	waitUntil(t, "notification history", func() (bool, string) {
		code, body := getBody(base + "/api/vigil/notifications")
		var h struct {
			Data []struct {
				Receiver    string `json:"receiver"`
				Integration string `json:"integration"`
				GroupKey    string `json:"groupKey"`
				Firing      int    `json:"firing"`
				OK          bool   `json:"ok"`
				Test        bool   `json:"test"`
			} `json:"data"`
		}
		if code != 200 || json.Unmarshal(body, &h) != nil {
			return false, fmt.Sprintf("%d %s", code, body)
		}
		for _, e := range h.Data {
			if e.Receiver == "hook" && e.Integration == "webhook" && e.GroupKey == m.GroupKey && e.Firing == 1 && e.OK && !e.Test {
				return true, ""
			}
		}
		return false, string(body)
	})

	// A broken rule file: the reload fails, the status says why, and the
	// previous rules go on being evaluated.
	code, body = getBody(base + "/api/vigil/rules/status")
	var st rulesStatus
	if code != 200 || json.Unmarshal(body, &st) != nil || !st.Data.Success || !st.Data.Leader || !slices.Contains(st.Data.Files, ruleFile) {
		t.Fatalf("rules status before the bad reload: %d %s", code, body)
	}
	writeFile(t, dir, "queues.yml", strings.Replace(queueRules, "queue_length > 10", "queue_length >", 1))
	resp, err := http.Post(base+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(rb), "queues.yml") {
		t.Errorf("reload with an invalid rule file: %d %s, want 500 naming the file", resp.StatusCode, rb)
	}
	code, body = getBody(base + "/api/vigil/rules/status")
	st = rulesStatus{}
	if code != 200 || json.Unmarshal(body, &st) != nil || st.Data.Success || !strings.Contains(st.Data.Error, "queues.yml") {
		t.Errorf("rules status after the bad reload: %d %s", code, body)
	}
	reloadedAt := time.Now()
	waitUntil(t, "old rule still evaluated after the failed reload", func() (bool, string) {
		code, body := getBody(base + "/api/v1/rules")
		var r promRulesResponse
		if code != 200 || json.Unmarshal(body, &r) != nil {
			return false, fmt.Sprintf("%d %s", code, body)
		}
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				if rule.Name == "QueueTooLong" && rule.Query == "queue_length > 10" && rule.State == "firing" && g.LastEvaluation.After(reloadedAt) {
					return true, ""
				}
			}
		}
		return false, string(body)
	})

	// The queue drains: the alert resolves, and the webhook (send_resolved)
	// is told so.
	writeSamples(t, base, 3, map[string]string{"__name__": "queue_length", "queue": "emails", "instance": "worker-1"})
	waitUntil(t, "resolved notification", func() (bool, string) {
		for _, m := range hook.messages() {
			if r := alertOf(m, "QueueTooLong"); m.Status == "resolved" && r.Status == "resolved" && r.Fingerprint == a.Fingerprint &&
				r.StartsAt.Equal(a.StartsAt) && r.EndsAt.After(r.StartsAt) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", hook.messages())
	})
	code, body = getBody(base + "/api/v1/alerts")
	alerts.Data.Alerts = nil
	if code != 200 || json.Unmarshal(body, &alerts) != nil || len(alerts.Data.Alerts) != 0 {
		t.Errorf("/api/v1/alerts after the alert resolved: %d %s", code, body)
	}
}

// TestAlertingAmtool drives Vigil's Alertmanager API with Alertmanager's
// own command-line client: posting and querying alerts, adding, listing
// and expiring silences, and reading the status.
func TestAlertingAmtool(t *testing.T) {
	amtool := toolPath(t, "amtool")
	hook := newAlertHook(t)
	amFile := writeFile(t, t.TempDir(), "alertmanager.yml", hookRoute(hook.URL(), []string{"alertname"}, "1h"))
	off := false
	ts := startServer(t, pgtest.NewDatabase(t), func(c *Config) {
		c.Alerting.Rules.DefaultRules = &off
		c.Alerting.Notify.AlertmanagerConfig = amFile
	})
	am := func(args ...string) string {
		t.Helper()
		u, _ := url.Parse(ts.httpURL)
		cmd := exec.Command(amtool, append([]string{"--alertmanager.url=http://" + u.Host}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no user configuration
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("amtool %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
		}
		return string(out)
	}

	am("alert", "add", "alertname=DiskFull", "severity=warning", "instance=db-1",
		"--annotation=summary=disk of db-1 is full", "--generator-url=http://example.test/graph")
	waitUntil(t, "amtool alert query lists the alert", func() (bool, string) {
		out := am("alert", "query", "alertname=DiskFull")
		return strings.Contains(out, "DiskFull") && strings.Contains(out, "disk of db-1 is full"), out
	})
	out := am("alert", "query", "-o", "json")
	var listed []v2Alert
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 1 || listed[0].Labels["instance"] != "db-1" ||
		listed[0].Status.State != "active" || len(listed[0].Receivers) != 1 || listed[0].Receivers[0].Name != "hook" {
		t.Errorf("amtool alert query -o json: %v\n%s", err, out)
	}
	waitUntil(t, "webhook notified of the amtool alert", func() (bool, string) {
		return len(hook.firing("DiskFull", map[string]string{"instance": "db-1"})) > 0, fmt.Sprintf("%+v", hook.messages())
	})
	if a := alertOf(hook.firing("DiskFull", nil)[0], "DiskFull"); a.Annotations["summary"] != "disk of db-1 is full" ||
		a.GeneratorURL != "http://example.test/graph" {
		t.Errorf("notified alert: %+v", a)
	}

	id := strings.TrimSpace(am("silence", "add", "alertname=DiskFull", "--comment=disk replaced tonight", "--author=oncall", "--duration=2h"))
	if !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(id) {
		t.Fatalf("amtool silence add printed %q, want a silence ID", id)
	}
	if ids := strings.Fields(am("silence", "query", "-q")); !slices.Equal(ids, []string{id}) {
		t.Errorf("amtool silence query -q: %v, want [%s]", ids, id)
	}
	out = am("silence", "query")
	if !strings.Contains(out, "oncall") || !strings.Contains(out, "disk replaced tonight") || !strings.Contains(out, `alertname="DiskFull"`) {
		t.Errorf("amtool silence query:\n%s", out)
	}
	// The silenced alert leaves the default listing (active alerts only)
	// and shows among the silenced ones.
	waitUntil(t, "alert silenced", func() (bool, string) {
		out := am("alert", "query", "--silenced", "-o", "json")
		var as []v2Alert
		if json.Unmarshal([]byte(out), &as) != nil {
			return false, out
		}
		for _, a := range as {
			if a.Labels["alertname"] == "DiskFull" && a.Status.State == "suppressed" && slices.Equal(a.Status.SilencedBy, []string{id}) {
				return true, ""
			}
		}
		return false, out
	})
	if out := am("alert", "query", "alertname=DiskFull"); strings.Contains(out, "db-1") {
		t.Errorf("amtool alert query still lists the silenced alert as active:\n%s", out)
	}

	am("silence", "expire", id)
	if ids := strings.Fields(am("silence", "query", "-q")); len(ids) != 0 {
		t.Errorf("amtool silence query -q after expiry: %v", ids)
	}
	if ids := strings.Fields(am("silence", "query", "-q", "--expired")); !slices.Equal(ids, []string{id}) {
		t.Errorf("amtool silence query -q --expired: %v, want [%s]", ids, id)
	}
	waitUntil(t, "alert active again after the silence expired", func() (bool, string) {
		out := am("alert", "query", "alertname=DiskFull")
		return strings.Contains(out, "db-1"), out
	})

	// amtool config show reads the configuration from /api/v2/status.
	if out := am("config", "show"); !strings.Contains(out, "receiver: hook") || !strings.Contains(out, "group_wait: 100ms") {
		t.Errorf("amtool config show:\n%s", out)
	}
}

// toolPath returns the path of an installed command. Without it the
// test skips, unless CI is set: there it must run.
func toolPath(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (install Debian's prometheus and prometheus-alertmanager packages; .ci/run does)", name)
	}
	t.Skipf("%s not found: test skipped", name)
	return ""
}

// freePort returns a loopback address free at the time of the call, for
// a program that cannot report the port it bound.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestAlertingPrometheusSendsToVigil points a real Prometheus's
// alerting section at Vigil: the alerts it sends over the Alertmanager
// v2 API are routed to Vigil's receivers.
func TestAlertingPrometheusSendsToVigil(t *testing.T) {
	promBin := toolPath(t, "prometheus")
	hook := newAlertHook(t)
	dir := t.TempDir()
	amFile := writeFile(t, dir, "alertmanager.yml", hookRoute(hook.URL(), []string{"alertname"}, "1h"))
	off := false
	ts := startServer(t, pgtest.NewDatabase(t), func(c *Config) {
		c.Alerting.Rules.DefaultRules = &off
		c.Alerting.Notify.AlertmanagerConfig = amFile
	})
	vigilAddr := strings.TrimPrefix(ts.httpURL, "http://")

	writeFile(t, dir, "rules.yml", `groups:
  - name: always
    rules:
      - alert: PrometheusAlwaysFiring
        expr: vector(1)
        for: 0s
        labels:
          severity: info
          team: platform
        annotations:
          summary: 'sent by Prometheus, value {{ $value }}'
`)
	promAddr := freePort(t)
	promCfg := writeFile(t, dir, "prometheus.yml", fmt.Sprintf(`global:
  evaluation_interval: 1s
  scrape_interval: 1m
  external_labels:
    cluster: e2e
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - api_version: v2
      static_configs:
        - targets: [%q]
`, vigilAddr))
	var logs bytes.Buffer
	cmd := exec.Command(promBin, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=info",
		// Prometheus drops the alerts of its first evaluations when no
		// Alertmanager is discovered yet; it sends them again after the
		// resend delay.
		"--rules.alert.resend-delay=1s")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})

	waitUntil(t, "webhook notified of Prometheus's alert", func() (bool, string) {
		return len(hook.firing("PrometheusAlwaysFiring", nil)) > 0, fmt.Sprintf("%+v", hook.messages())
	})
	a := alertOf(hook.firing("PrometheusAlwaysFiring", nil)[0], "PrometheusAlwaysFiring")
	want := map[string]string{"alertname": "PrometheusAlwaysFiring", "severity": "info", "team": "platform", "cluster": "e2e"}
	for k, v := range want {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], v, a.Labels)
		}
	}
	if a.Annotations["summary"] != "sent by Prometheus, value 1" {
		t.Errorf("summary = %q", a.Annotations["summary"])
	}
	if gen, err := url.Parse(a.GeneratorURL); err != nil || gen.Path != "/graph" || gen.Query().Get("g0.expr") != "vector(1)" {
		t.Errorf("generatorURL = %q, want Prometheus's /graph link", a.GeneratorURL)
	}
	// Vigil lists the alert in its v2 API, routed to the webhook.
	code, body := getBody(ts.httpURL + "/api/v2/alerts?filter=" + url.QueryEscape(`alertname="PrometheusAlwaysFiring"`))
	var as []v2Alert
	if code != 200 || json.Unmarshal(body, &as) != nil || len(as) != 1 || as[0].Status.State != "active" ||
		len(as[0].Receivers) != 1 || as[0].Receivers[0].Name != "hook" {
		t.Errorf("/api/v2/alerts: %d %s", code, body)
	}
}

// TestAlertingReceiversAndReload sends a test notification through a
// receiver, then reloads a changed Alertmanager configuration (the new
// route takes over) and an invalid one (rejected, the previous one stays
// in force).
func TestAlertingReceiversAndReload(t *testing.T) {
	first, second := newAlertHook(t), newAlertHook(t)
	dir := t.TempDir()
	amFile := writeFile(t, dir, "alertmanager.yml", hookRoute(first.URL(), []string{"alertname"}, "1h"))
	off := false
	ts := startServer(t, pgtest.NewDatabase(t), func(c *Config) {
		c.Alerting.Rules.DefaultRules = &off
		c.Alerting.Notify.AlertmanagerConfig = amFile
	})
	base := ts.httpURL

	code, body := getBody(base + "/api/vigil/receivers")
	if code != 200 || !strings.Contains(string(body), `"hook"`) || !strings.Contains(string(body), "webhook") {
		t.Errorf("/api/vigil/receivers: %d %s", code, body)
	}
	if strings.Contains(string(body), first.srv.URL) {
		t.Errorf("/api/vigil/receivers shows the webhook URL: %s", body)
	}
	res := postJSONAny(t, base+"/api/vigil/receivers/hook/test")
	if !strings.Contains(res, `"ok":true`) {
		t.Errorf("receiver test: %s", res)
	}
	if n := len(first.firing("VigilTestAlert", nil)); n != 1 {
		t.Errorf("the webhook received %d test notifications, want 1: %+v", n, first.messages())
	}
	waitUntil(t, "test send in the history", func() (bool, string) {
		code, body := getBody(base + "/api/vigil/notifications?receiver=hook")
		return code == 200 && strings.Contains(string(body), `"test":true`) && strings.Contains(string(body), `"ok":true`), string(body)
	})
	if code, body := getBody(base + "/api/vigil/receivers/nosuch/test"); code == 200 {
		t.Errorf("GET of the test endpoint answered 200: %s", body)
	}
	resp, err := http.Post(base+"/api/vigil/receivers/nosuch/test", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusBadRequest {
		t.Errorf("test of an unknown receiver: %d, want 404 or 400", resp.StatusCode)
	}

	post := func(name string) {
		postJSONAny(t, base+"/api/v2/alerts", fmt.Sprintf(`[{"labels":{"alertname":%q}}]`, name))
	}
	post("BeforeReload")
	waitUntil(t, "first webhook notified", func() (bool, string) {
		return len(first.firing("BeforeReload", nil)) == 1, fmt.Sprintf("%+v", first.messages())
	})

	// A new configuration routes to the second webhook.
	writeFile(t, dir, "alertmanager.yml", hookRoute(second.URL(), []string{"alertname"}, "1h"))
	if resp, err := http.Post(base+"/-/reload", "", nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("reload: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	post("AfterReload")
	waitUntil(t, "second webhook notified", func() (bool, string) {
		return len(second.firing("AfterReload", nil)) == 1, fmt.Sprintf("%+v", second.messages())
	})

	// An invalid configuration is refused and the second webhook stays.
	writeFile(t, dir, "alertmanager.yml", "route:\n  receiver: missing\nreceivers: []\n")
	resp, err = http.Post(base+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("reload of an invalid configuration: %d, want 500", resp.StatusCode)
	}
	code, body = getBody(base + "/api/vigil/alertmanager/status")
	if code != 200 || !strings.Contains(string(body), `"error":`) {
		t.Errorf("alertmanager status after the invalid reload: %d %s", code, body)
	}
	post("AfterBadReload")
	waitUntil(t, "second webhook still notified", func() (bool, string) {
		return len(second.firing("AfterBadReload", nil)) == 1, fmt.Sprintf("%+v", second.messages())
	})
	if n := len(first.firing("AfterReload", nil)) + len(first.firing("AfterBadReload", nil)); n != 0 {
		t.Errorf("the first webhook received %d notifications after the reload", n)
	}
	// The alert groups of the v2 API show the route's receiver.
	code, body = getBody(base + "/api/v2/alerts/groups")
	if code != 200 || !strings.Contains(string(body), `"AfterBadReload"`) || !strings.Contains(string(body), `"name":"hook"`) {
		t.Errorf("/api/v2/alerts/groups: %d %s", code, body)
	}
}

// postJSONAny posts body (none when omitted) to u, expecting a 2xx
// answer, and returns the answer.
func postJSONAny(t testing.TB, u string, body ...string) string {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(strings.Join(body, "")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %s", u, resp.StatusCode, raw)
	}
	return string(raw)
}

// TestAlertingWebhookFlagDefaultRules runs the configuration of the
// flags alone: the shipped rule pack evaluates cleanly on the store, and
// --alert-webhook receives every alert grouped by alertname and service.
func TestAlertingWebhookFlagDefaultRules(t *testing.T) {
	hook := newAlertHook(t)
	ts := startServer(t, pgtest.NewDatabase(t), func(c *Config) {
		c.Alerting.Rules.EvaluationInterval = model.Duration(time.Second)
		c.Alerting.Notify.Webhooks = []string{hook.URL()}
		c.Alerting.Notify.GroupWait = 100 * time.Millisecond
		c.Alerting.Notify.GroupInterval = time.Second
	})
	base := ts.httpURL
	writeSamples(t, base, 1, map[string]string{"__name__": "up", "job": "api", "instance": "api-1"},
		map[string]string{"__name__": "process_resident_memory_bytes", "job": "api", "instance": "api-1"})

	// Every default rule is evaluated, without error.
	started := time.Now()
	waitUntil(t, "default rules evaluated", func() (bool, string) {
		code, body := getBody(base + "/api/v1/rules")
		var r promRulesResponse
		if code != 200 || json.Unmarshal(body, &r) != nil || len(r.Data.Groups) == 0 {
			return false, fmt.Sprintf("%d %s", code, body)
		}
		n := 0
		for _, g := range r.Data.Groups {
			if !g.LastEvaluation.After(started) {
				return false, string(body)
			}
			for _, rule := range g.Rules {
				if rule.Health != "ok" {
					return false, string(body)
				}
				n++
			}
		}
		return n >= 4, string(body)
	})
	code, body := getBody(base + "/api/vigil/rules/status")
	var st rulesStatus
	if code != 200 || json.Unmarshal(body, &st) != nil || !st.Data.Success || !st.Data.Leader {
		t.Errorf("rules status: %d %s", code, body)
	}

	postJSONAny(t, base+"/api/v2/alerts", `[
		{"labels":{"alertname":"Grouped","service":"checkout","instance":"a"}},
		{"labels":{"alertname":"Grouped","service":"checkout","instance":"b"}},
		{"labels":{"alertname":"Grouped","service":"payments","instance":"a"}},
		{"labels":{"alertname":"Grouped","instance":"c"}}]`)
	waitUntil(t, "three groups notified", func() (bool, string) {
		return len(hook.firing("Grouped", nil)) >= 3, fmt.Sprintf("%+v", hook.messages())
	})
	got := map[string]int{}
	for _, m := range hook.firing("Grouped", nil) {
		if m.Receiver == "" || m.Version != "4" {
			t.Errorf("notification envelope: %+v", m)
		}
		got[m.GroupLabels["service"]] += len(m.Alerts)
	}
	if want := map[string]int{"checkout": 2, "payments": 1, "": 1}; !maps.Equal(got, want) {
		t.Errorf("alerts per service group: %v, want %v", got, want)
	}
}
