package promql

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

func TestCheckShape(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxQueryBytes = 1 << 10
	cfg.MaxQueryDepth = 8
	cfg.MaxQueryOperators = 16
	for _, tc := range []struct {
		name, q string
		setting string // "" = accepted
	}{
		{"simple", `sum by (job) (rate(http_requests_total{job="api"}[5m]))`, ""},
		{"depth at limit", strings.Repeat("(", 8) + "1" + strings.Repeat(")", 8), ""},
		{"depth over limit", strings.Repeat("(", 9) + "1" + strings.Repeat(")", 9), "max_query_depth"},
		{"brackets count too", "sum(sum(sum(sum(sum(sum(sum(sum(rate(x[5m])))))))))", "max_query_depth"},
		{"brackets in a string do not count", `x{a="((((((((((((("}`, ""},
		{"brackets in a comment do not count", "x # ((((((((((((((((((\n", ""},
		{"operators at limit", strings.Repeat("1+", 16) + "1", ""},
		{"operators over limit", strings.Repeat("1+", 17) + "1", "max_query_operators"},
		{"unary operators count", strings.Repeat("-", 17) + "1", "max_query_operators"},
		{"too long", `x{a="` + strings.Repeat("a", 1024) + `"}`, "max_query_bytes"},
		{"lexer error left to the parser", `x{a="unterminated`, ""},
		{"unbalanced closers", ")))))))))))1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkShape(tc.q, cfg)
			assertLimit(t, err, tc.setting)
		})
	}
}

func TestCheckCost(t *testing.T) {
	cfg := DefaultConfig()
	p := parser.NewParser(parser.Options{})
	day := 24 * time.Hour
	for _, tc := range []struct {
		name        string
		q           string
		span, step  time.Duration
		setting     string
		description string
	}{
		{name: "instant", q: `rate(x[5m])`},
		{name: "range at the resolution limit", q: `rate(x[5m])`, span: 11000 * time.Second, step: time.Second},
		{name: "range over the resolution limit", q: `rate(x[5m])`, span: 11001 * time.Second, step: time.Second, setting: "max_points_per_series"},
		{name: "subquery in an instant query", q: `max_over_time(rate(x[5m])[1d:1m])`},
		{name: "subquery in a day-long range query", q: `max_over_time(rate(x[5m])[1d:1m])`, span: day, step: time.Minute},
		{name: "subquery without a step", q: `max_over_time(rate(x[5m])[30d:])`, span: 30 * day, step: time.Hour},
		{name: "the crash", q: `sum_over_time(vector(1)[100000d:1ms])`, setting: "max_subquery_steps"},
		{name: "the crash with a selector", q: `sum_over_time({__name__=~".+"}[100000d:1ms])`, setting: "max_subquery_steps"},
		{name: "nested subqueries add their ranges", q: `max_over_time(sum_over_time(vector(1)[300d:1m])[300d:1m])`, setting: "max_subquery_steps"},
		{name: "nested subqueries within the limit", q: `max_over_time(sum_over_time(vector(1)[1d:1m])[1d:1m])`},
		{name: "subqueries count together", q: strings.Repeat(`sum_over_time(vector(1)[300d:1m]) + `, 3) + "1", setting: "max_subquery_steps"},
		{name: "an @ subquery is evaluated at one step", q: `sum_over_time(vector(1)[600d:1h] @ 100)`, span: 600 * day, step: 2 * time.Hour},
		{name: "range query widens a subquery", q: `sum_over_time(vector(1)[1d:1s])`, span: 11 * day, step: 100 * time.Minute, setting: "max_subquery_steps"},
		{name: "durations near the maximum do not overflow", q: `sum_over_time(sum_over_time(vector(1)[100y:1y])[100y:1y])`},
		{name: "overflowing sum of ranges is refused", q: `sum_over_time(sum_over_time(vector(1)[200y:100y])[200y:100y])`, span: 200 * 365 * day, step: 100 * 365 * day, setting: "max_subquery_steps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expr, err := p.ParseExpr(tc.q)
			if err != nil {
				t.Fatalf("parse %q: %v", tc.q, err)
			}
			assertLimit(t, checkCost(expr, tc.span, tc.step, cfg), tc.setting)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	err := Config{MaxSubquerySteps: -1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "query.max_subquery_steps") {
		t.Fatalf("negative max_subquery_steps: got %v, want an error naming the key", err)
	}
	if got := (Config{MaxSamples: 7}).withDefaults(); got.MaxSamples != 7 || got.MaxSubquerySteps != DefaultMaxSubquerySteps {
		t.Fatalf("withDefaults: %+v", got)
	}
}

// assertLimit checks that err is nil when setting is empty, else a
// *LimitError for that setting.
func assertLimit(t *testing.T, err error, setting string) {
	t.Helper()
	if setting == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("got %v, want a limit error for %s", err, setting)
	}
	if le.Setting != setting {
		t.Fatalf("limit %s (%v), want %s", le.Setting, err, setting)
	}
	if !strings.Contains(err.Error(), "query."+setting) {
		t.Fatalf("message %q does not name query.%s", err, setting)
	}
}
