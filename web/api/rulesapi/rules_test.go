package rulesapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-obs/vigil/alerting/rules"
	"github.com/vigil-obs/vigil/storage"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var _ Source = (*rules.Manager)(nil)

var t0 = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)

// fakeSource is a fixed rule state: a leader's view with one firing
// alert, one pending alert kept firing and a failing recording rule.
type fakeSource struct {
	alertsErr error
}

func (fakeSource) RuleGroups(context.Context) ([]rules.Group, error) {
	firing := rules.Alert{
		Labels:      labels.FromStrings("alertname", "ServiceDown", "instance", "10.0.0.5:8080", "job", "user-service", "severity", "critical"),
		Annotations: labels.FromStrings("summary", "user-service (10.0.0.5:8080) is down"),
		State:       "firing",
		ActiveAt:    t0.Add(-3 * time.Minute),
		Value:       0,
	}
	pending := rules.Alert{
		Labels:          labels.FromStrings("alertname", "HighErrorRate", "instance", "10.0.0.1:8080", "job", "checkout", "severity", "critical"),
		Annotations:     labels.FromStrings("description", "9.091% of the requests failed", "summary", "High 5xx error rate on checkout"),
		State:           "pending",
		ActiveAt:        t0.Add(-time.Minute),
		KeepFiringSince: t0,
		Value:           0.09090909090909091,
	}
	return []rules.Group{
		{
			Name: "api", File: "/etc/vigil/rules/api.yml", Interval: 30 * time.Second,
			EvaluationTime: 12 * time.Millisecond, LastEvaluation: t0,
			Rules: []rules.Rule{
				{
					Type: rules.TypeRecording, Name: "job:http_requests:rate5m", Query: "sum by (job) (rate(http_requests_total[5m]))",
					Labels: labels.EmptyLabels(), Health: "err", LastError: "query processing would load too many samples into memory",
					EvaluationTime: 2 * time.Millisecond, LastEvaluation: t0,
				},
			},
		},
		{
			Name: "vigil-defaults", File: rules.DefaultRulesFile, Interval: time.Minute, Limit: 100,
			EvaluationTime: 40 * time.Millisecond, LastEvaluation: t0,
			Rules: []rules.Rule{
				{
					Type: rules.TypeAlerting, Name: "HighErrorRate", Query: `sum by (job, instance) (rate(http_requests_total{status_code=~"5.."}[5m])) / sum by (job, instance) (rate(http_requests_total[5m])) > 0.05`,
					Labels: labels.FromStrings("severity", "critical"), Annotations: labels.FromStrings("summary", "High 5xx error rate on {{ $labels.job }}"),
					Health: "ok", State: "pending", Duration: 5 * time.Minute, KeepFiringFor: 10 * time.Minute,
					EvaluationTime: 10 * time.Millisecond, LastEvaluation: t0, Alerts: []rules.Alert{pending},
				},
				{
					Type: rules.TypeAlerting, Name: "ServiceDown", Query: "up == 0",
					Labels: labels.FromStrings("severity", "critical"), Annotations: labels.FromStrings("summary", "{{ $labels.job }} ({{ $labels.instance }}) is down"),
					Health: "ok", State: "firing", Duration: time.Minute,
					EvaluationTime: 3 * time.Millisecond, LastEvaluation: t0, Alerts: []rules.Alert{firing},
				},
			},
		},
	}, nil
}

func (f fakeSource) ActiveAlerts(ctx context.Context) ([]rules.Alert, error) {
	if f.alertsErr != nil {
		return nil, f.alertsErr
	}
	var out []rules.Alert
	groups, _ := f.RuleGroups(ctx)
	for _, g := range groups {
		for _, r := range g.Rules {
			out = append(out, r.Alerts...)
		}
	}
	// An alert read from the store by a replica that does not evaluate.
	out = append(out, rules.Alert{
		Labels: labels.FromStrings("alertname", "HighMemoryUsage", "instance", "10.0.0.4:9100", "job", "api"),
		State:  "firing", ActiveAt: t0.Add(-20 * time.Minute), Value: math.NaN(), Annotations: labels.EmptyLabels(),
	})
	return out, nil
}

func (fakeSource) Status() rules.Status {
	return rules.Status{LastReload: t0, Success: false, Error: `load rules: /etc/vigil/rules/api.yml: 5:15: group "api", rule 1, "X": could not parse expression`, Files: []string{rules.DefaultRulesFile, "/etc/vigil/rules/api.yml"}, Leader: true}
}

func serve(t *testing.T, src Source, target string) (int, []byte) {
	t.Helper()
	mux := http.NewServeMux()
	New(src, nil).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: content type %q", target, ct)
	}
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, body
}

// golden compares body, indented, with testdata/name.golden.
func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	buf.WriteByte('\n')
	got := buf.Bytes()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("body differs from %s (run go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		status       int
		src          Source
	}{
		{"rules", "/api/v1/rules", 200, fakeSource{}},
		{"rules_alert", "/api/v1/rules?type=alert", 200, fakeSource{}},
		{"rules_record", "/api/v1/rules?type=RECORD", 200, fakeSource{}},
		{"rules_by_name", "/api/v1/rules?rule_name[]=ServiceDown&rule_name[]=job:http_requests:rate5m&exclude_alerts=true", 200, fakeSource{}},
		{"rules_by_group_and_file", "/api/v1/rules?rule_group[]=vigil-defaults&file[]=" + url.QueryEscape(rules.DefaultRulesFile) + "&match[]=" + url.QueryEscape(`{severity="critical"}`), 200, fakeSource{}},
		{"rules_nothing", "/api/v1/rules?rule_group[]=none", 200, fakeSource{}},
		{"rules_page1", "/api/v1/rules?group_limit=1", 200, fakeSource{}},
		{"rules_page2", "/api/v1/rules?group_limit=1&group_next_token=" + groupToken(rules.DefaultRulesFile, "vigil-defaults"), 200, fakeSource{}},
		{"alerts", "/api/v1/alerts", 200, fakeSource{}},
		{"status", "/api/vigil/rules/status", 200, fakeSource{}},
		{"error_type", "/api/v1/rules?type=alerting", 400, fakeSource{}},
		{"error_match", "/api/v1/rules?match[]=" + url.QueryEscape("{"), 400, fakeSource{}},
		{"error_utf8", "/api/v1/rules?rule_name[]=%ff", 400, fakeSource{}},
		{"error_token", "/api/v1/rules?group_next_token=abc", 400, fakeSource{}},
		{"error_token_unknown", "/api/v1/rules?group_limit=1&group_next_token=abc", 400, fakeSource{}},
		{"error_limit", "/api/v1/rules?group_limit=0", 400, fakeSource{}},
		{"error_unavailable", "/api/v1/alerts", 503, fakeSource{alertsErr: fmt.Errorf("read alerts: %w", storage.ErrUnavailable)}},
		{"error_internal", "/api/v1/alerts", 500, fakeSource{alertsErr: fmt.Errorf("read alerts: relation \"x\" does not exist")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := serve(t, tc.src, tc.target)
			if status != tc.status {
				t.Errorf("status %d, want %d: %s", status, tc.status, body)
			}
			golden(t, tc.name, body)
		})
	}
}

func TestMethods(t *testing.T) {
	mux := http.NewServeMux()
	New(fakeSource{}, nil).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, PathRules, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE %s: %d", PathRules, rec.Code)
	}
}

// FuzzRules: any query string is answered with 200 or 400 in
// Prometheus's envelope, never a panic.
func FuzzRules(f *testing.F) {
	for _, s := range []string{
		"type=alert", "rule_name[]=ServiceDown&exclude_alerts=1", "match[]=%7Bseverity%3D%22critical%22%7D",
		"group_limit=1&group_next_token=x", "file[]=%00", "type=%ff", "match[]=%7B",
	} {
		f.Add(s)
	}
	mux := http.NewServeMux()
	New(fakeSource{}, nil).Register(mux)
	f.Fuzz(func(t *testing.T, q string) {
		if len(q) > 8192 {
			return
		}
		req := httptest.NewRequest(http.MethodGet, PathRules, nil)
		req.URL.RawQuery = q
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("%q: status %d", q, rec.Code)
		}
		var body response
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Status == "" {
			t.Fatalf("%q: body %s: %v", q, rec.Body.Bytes(), err)
		}
	})
}
