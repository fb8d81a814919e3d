package rules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func writeRules(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ruleNames returns the names of the rules of every group.
func ruleNames(m *Manager) []string {
	var out []string
	groups, _ := m.RuleGroups(context.Background())
	for _, g := range groups {
		for _, r := range g.Rules {
			out = append(out, r.Name)
		}
	}
	return out
}

// clock is a manual clock.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func TestReloadKeepsPreviousRulesOnError(t *testing.T) {
	st := newStore(t)
	st.load(t, defaultRulesSeries())
	dir := t.TempDir()
	file := writeRules(t, dir, "a.yml", recordingRules)
	reg := prometheus.NewRegistry()
	clk := &clock{now: minute(0)}
	m := newManager(t, st, testConfig(filepath.Join(dir, "*.yml")), Options{Registerer: reg, Now: clk.Now})
	r := start(t, m)
	r.evalAt(t, minute(5))
	fp := m.cfg.fingerprint()

	// An invalid expression: the reload fails and says where.
	clk.now = minute(1)
	writeRules(t, dir, "a.yml", strings.Replace(recordingRules, "sum by (job) (rate(http_requests_total[5m]))", "sum by (job) (rate(http_requests_total[5m])", 1))
	err := m.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("reload of an invalid file: %v, want an error naming %s", err, file)
	}
	s := m.Status()
	if s.Success || s.Error != err.Error() || !s.LastReload.Equal(minute(1)) {
		t.Errorf("status after a failed reload: %+v", s)
	}
	if at, lerr := m.LastReload(); lerr == nil || !at.Equal(minute(1)) {
		t.Errorf("LastReload = %s, %v", at, lerr)
	}
	if got := testutil.ToFloat64(m.metrics.reloadFailures); got != 1 {
		t.Errorf("vigil_rules_reload_failures_total = %g", got)
	}
	if got := testutil.ToFloat64(m.metrics.reloadSuccess); got != 0 {
		t.Errorf("vigil_rules_last_reload_successful = %g", got)
	}
	if got := ruleNames(m); strings.Join(got, ",") != "job:http_requests:rate5m,CheckoutBusy" {
		t.Fatalf("rules after a failed reload: %v", got)
	}
	// The previous rules still evaluate.
	r.evalAt(t, minute(6))
	if v := st.query(t, "job:http_requests:rate5m", minute(6)); len(v) != 1 {
		t.Fatalf("previous rules stopped: %v", v)
	}

	// The watcher's check finds the fixed file and a new one.
	clk.now = minute(2)
	writeRules(t, dir, "a.yml", recordingRules)
	writeRules(t, dir, "b.yml", slowDownRule)
	fp = m.poll(context.Background(), fp)
	if got := ruleNames(m); strings.Join(got, ",") != "job:http_requests:rate5m,CheckoutBusy,DownLong" {
		t.Fatalf("rules after the files changed: %v", got)
	}
	s = m.Status()
	if !s.Success || s.Error != "" || !s.LastReload.Equal(minute(2)) || len(s.Files) != 2 {
		t.Errorf("status after a good reload: %+v", s)
	}
	if got := testutil.ToFloat64(m.metrics.reloadSuccess); got != 1 {
		t.Errorf("vigil_rules_last_reload_successful = %g", got)
	}

	// Unchanged files: no reload.
	clk.now = minute(3)
	if fp2 := m.poll(context.Background(), fp); fp2 != fp || !m.Status().LastReload.Equal(minute(2)) {
		t.Errorf("an unchanged rule set was reloaded")
	}

	// A removed file is a change too.
	if err := os.Remove(filepath.Join(dir, "b.yml")); err != nil {
		t.Fatal(err)
	}
	m.poll(context.Background(), fp)
	if got := ruleNames(m); strings.Join(got, ",") != "job:http_requests:rate5m,CheckoutBusy" {
		t.Fatalf("rules after a file was removed: %v", got)
	}
	r.evalAt(t, minute(7))
	if v := st.query(t, "job:http_requests:rate5m", minute(7)); len(v) != 1 {
		t.Fatalf("rules stopped after the reload: %v", v)
	}
}

func TestNewRejectsInvalidRules(t *testing.T) {
	st := newStore(t)
	file := writeRules(t, t.TempDir(), "bad.yml", "groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: up ==\n")
	_, err := New(testConfig(file), Options{Engine: st.engine, Appendable: st.metrics})
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("New with an invalid file: %v", err)
	}
	if _, err := New(testConfig(), Options{Appendable: st.metrics}); err == nil {
		t.Error("New without an engine succeeded")
	}
	if _, err := New(testConfig(), Options{Engine: st.engine}); err == nil {
		t.Error("New without an appendable succeeded")
	}
}
