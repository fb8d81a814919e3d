package rules

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
)

func check(t *testing.T, paths ...string) (out string, errs, warns int) {
	t.Helper()
	var buf bytes.Buffer
	errs, warns = Check(paths, &buf)
	return buf.String(), errs, warns
}

func TestCheckDefaultRulesAreClean(t *testing.T) {
	p := writeRules(t, t.TempDir(), "defaults.yml", string(DefaultRules()))
	out, errs, warns := check(t, p)
	want := "Checking " + p + "\n  SUCCESS: 7 rules found\n\n"
	if errs != 0 || warns != 0 || out != want {
		t.Fatalf("errors %d, warnings %d, output:\n%s\nwant:\n%s", errs, warns, out, want)
	}
}

func TestCheckGoodFile(t *testing.T) {
	out, errs, warns := check(t, "testdata/good.rules.yml")
	want := "Checking testdata/good.rules.yml\n  SUCCESS: 2 rules found\n\n"
	if errs != 0 || warns != 0 || out != want {
		t.Fatalf("errors %d, warnings %d, output:\n%s", errs, warns, out)
	}
}

// TestCheckSeedPitfalls: the seed's rules load, but HighErrorRate
// compares a bare rate of 5xx responses with 5 % and HighLatency takes a
// quantile of raw bucket counters.
func TestCheckSeedPitfalls(t *testing.T) {
	out, errs, warns := check(t, "testdata/seed.rules.yml")
	if errs != 0 {
		t.Fatalf("errors %d:\n%s", errs, out)
	}
	if !strings.Contains(out, "  SUCCESS: 4 rules found\n") {
		t.Errorf("no success line:\n%s", out)
	}
	for _, want := range []string{
		`testdata/seed.rules.yml: group "service-alerts", rule "HighErrorRate": is described as a share`,
		`per-second rate of http_requests_total{status_code=~"5.."}`,
		`fix: divide by the unfiltered rate: sum by (job, instance) (rate(http_requests_total{status_code=~"5.."}[5m])) / sum by (job, instance) (rate(http_requests_total[5m])) > 0.05`,
		`testdata/seed.rules.yml: group "service-alerts", rule "HighLatency": histogram_quantile over the raw bucket counters of http_request_duration_seconds_bucket`,
		`fix: take the rate of the buckets and keep le: histogram_quantile(0.95, sum by (le, job, instance) (rate(http_request_duration_seconds_bucket[5m])))`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if warns != 2 {
		t.Errorf("warnings = %d, want the 2 pitfalls:\n%s", warns, out)
	}
}

func TestCheckLint(t *testing.T) {
	out, errs, warns := check(t, "testdata/lint.rules.yml")
	if errs != 0 {
		t.Fatalf("errors %d:\n%s", errs, out)
	}
	for _, want := range []string{
		`rule "NoForNoSeverity": has no ` + "`for`",
		`rule "NoForNoSeverity": has no severity label`,
		`rule "QuantilePerSeries": histogram_quantile over rate(http_request_duration_seconds_bucket) without sum by (le, …)`,
		`rule "QuantileWithoutLe": histogram_quantile over an aggregation of http_request_duration_seconds_bucket that drops le`,
		`rule "job:up:sum": duplicates a rule of group "lint"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if warns != 5 {
		t.Errorf("warnings = %d, want 5:\n%s", warns, out)
	}
}

func TestCheckErrors(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		// YAML reports the line.
		{"testdata/bad_syntax.rules.yml", []string{"testdata/bad_syntax.rules.yml: yaml: line 6"}},
		// rulefmt reports line and column of the rule.
		{"testdata/bad_expr.rules.yml", []string{"testdata/bad_expr.rules.yml: 5:15:", `"Unbalanced"`, "could not parse expression"}},
		{"testdata/bad_template.rules.yml", []string{"testdata/bad_template.rules.yml:", `"BadTemplate"`, "nosuchfunction"}},
		{"testdata/missing.rules.yml", []string{"testdata/missing.rules.yml: open testdata/missing.rules.yml: no such file"}},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			out, errs, _ := check(t, tc.file)
			if errs == 0 {
				t.Fatalf("no error:\n%s", out)
			}
			if !strings.HasPrefix(out, "Checking "+tc.file+"\n  FAILED:\n") || strings.Contains(out, "SUCCESS") {
				t.Errorf("not promtool's layout:\n%s", out)
			}
			if n := strings.Count(out, tc.want[0]); n != 1 {
				t.Errorf("%q reported %d times:\n%s", tc.want[0], n, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	// Several files: the errors add up and the good one still succeeds.
	out, errs, _ := check(t, "testdata/bad_expr.rules.yml", "testdata/good.rules.yml")
	if errs != 1 || !strings.Contains(out, "Checking testdata/good.rules.yml\n  SUCCESS: 2 rules found\n") {
		t.Errorf("errors %d:\n%s", errs, out)
	}
}

// TestCheckAgreesWithPromtool: Check accepts and rejects the same files
// as Prometheus's promtool.
func TestCheckAgreesWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("promtool is required in CI: %v", err)
		}
		t.Skipf("promtool not installed: %v", err)
	}
	defaults := writeRules(t, t.TempDir(), "defaults.yml", string(DefaultRules()))
	files, err := filepath.Glob("testdata/*.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, defaults)
	var accepted, rejected int
	for _, f := range files {
		cmd := exec.Command(promtool, "check", "rules", f)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		promtoolOK := err == nil
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("promtool: %v", err)
		}
		report, errs, _ := check(t, f)
		if promtoolOK != (errs == 0) {
			t.Errorf("%s: promtool accepts %v, Check errors %d\npromtool:\n%s\nCheck:\n%s", f, promtoolOK, errs, out, report)
		}
		if promtoolOK {
			accepted++
		} else {
			rejected++
		}
	}
	if accepted < 4 || rejected < 3 {
		t.Errorf("compared %d accepted and %d rejected files; the test data lost its cases", accepted, rejected)
	}
}

// FuzzCheck: Check reports on any file content without panicking, and a
// file it accepts loads in the rule manager's loader.
func FuzzCheck(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.rules.yml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(DefaultRules())
	f.Add([]byte("groups: []\n---\ngroups: []\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content []byte) {
		if len(content) > 16<<10 {
			return
		}
		p := filepath.Join(dir, "fuzz.yml")
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		errs, _ := Check([]string{p}, &out)
		if !strings.HasPrefix(out.String(), "Checking "+p+"\n") {
			t.Fatalf("report: %s", out.String())
		}
		if errs == 0 {
			l := newSnapshotLoader(newParser(), slog.New(slog.DiscardHandler), map[string][]byte{p: content})
			if _, lerrs := l.Load(p, false, model.UTF8Validation); len(lerrs) > 0 {
				t.Fatalf("Check accepts what the loader refuses: %v", lerrs)
			}
		}
	})
}
