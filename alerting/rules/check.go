package rules

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
)

// newParser returns the PromQL parser with the options of
// query/promql's engine, so that a file Check accepts is one the rule
// manager loads.
func newParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// Check validates rule files as `promtool check rules` does (rulefmt's
// parsing, expression and template checks, duplicate rules) and lints
// them for mistakes that load fine but alert wrongly. It writes a report
// to w in promtool's layout:
//
//	Checking FILE
//	  SUCCESS: N rules found
//	  WARNING: FILE: group "G", rule "R": what is wrong; fix: how
//
// or, for a file that does not load, "  FAILED:" followed by one error a
// line (with the line and column where YAML gives them). It returns the
// number of errors (files that Vigil would refuse to load) and of
// warnings (duplicates and lint findings); the caller exits non-zero
// when errors > 0, and may do so on warnings too (promtool's
// --lint-fatal).
func Check(paths []string, w io.Writer) (errors, warnings int) {
	p := newParser()
	logger := slog.New(slog.DiscardHandler)
	for _, path := range paths {
		fmt.Fprintf(w, "Checking %s\n", path)
		rgs, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, p, logger)
		if len(errs) > 0 {
			fmt.Fprintln(w, "  FAILED:")
			// rulefmt reports a YAML syntax error twice, from its two
			// decodings of the file: print each message once.
			seen := map[string]bool{}
			for _, err := range errs {
				if msg := err.Error(); !seen[msg] {
					seen[msg] = true
					fmt.Fprintln(w, msg)
					errors++
				}
			}
			fmt.Fprintln(w)
			continue
		}
		n := 0
		for _, g := range rgs.Groups {
			n += len(g.Rules)
		}
		fmt.Fprintf(w, "  SUCCESS: %d rules found\n", n)
		findings := duplicates(path, rgs.Groups)
		findings = append(findings, lint(path, rgs.Groups, p)...)
		for _, f := range findings {
			fmt.Fprintf(w, "  WARNING: %s\n", f)
		}
		warnings += len(findings)
		fmt.Fprintln(w)
	}
	return errors, warnings
}

// finding is one lint warning about one rule.
type finding struct {
	file, group, rule string
	problem, fix      string
}

func (f finding) String() string {
	return fmt.Sprintf("%s: group %q, rule %q: %s; fix: %s", f.file, f.group, f.rule, f.problem, f.fix)
}

// duplicates finds rules with the same name and labels, which write the
// same series (promtool's duplicate-rules lint).
func duplicates(file string, groups []rulefmt.RuleGroup) []finding {
	type key struct {
		name   string
		labels string
	}
	type where struct{ group string }
	seen := map[key]where{}
	var out []finding
	for _, g := range groups {
		for _, r := range g.Rules {
			name := cmp.Or(r.Alert, r.Record)
			k := key{name: name, labels: promrules.FromMaps(g.Labels, r.Labels).String()}
			if first, ok := seen[k]; ok {
				out = append(out, finding{
					file: file, group: g.Name, rule: name,
					problem: fmt.Sprintf("duplicates a rule of group %q with the same name and labels %s, so both write the same series", first.group, k.labels),
					fix:     "remove one, or give them different labels",
				})
				continue
			}
			seen[k] = where{group: g.Name}
		}
	}
	return out
}

// lint finds rules that load but do not mean what they say.
func lint(file string, groups []rulefmt.RuleGroup, p parser.Parser) []finding {
	var out []finding
	for _, g := range groups {
		for _, r := range g.Rules {
			name := cmp.Or(r.Alert, r.Record)
			add := func(problem, fix string) {
				out = append(out, finding{file: file, group: g.Name, rule: name, problem: problem, fix: fix})
			}
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				// rulefmt has parsed it already; nothing more to say.
				continue
			}
			for _, h := range lintHistograms(expr) {
				add(h.problem, h.fix)
			}
			if r.Alert == "" {
				continue
			}
			if describedAsRatio(r) {
				if sel, ok := bareFilteredRate(expr); ok {
					add(fmt.Sprintf("is described as a share (an error rate or percentage) but compares the per-second rate of %s, which counts failures per second and grows with traffic", sel),
						fmt.Sprintf("divide by the unfiltered rate: sum by (job, instance) (rate(%s[5m])) / sum by (job, instance) (rate(%s[5m])) > 0.05",
							sel, unfiltered(sel)))
				}
			}
			if r.For == 0 {
				add("has no `for`, so a single evaluation, one odd sample, fires it",
					"add for: with how long the condition must hold (e.g. for: 5m)")
			}
			if r.Labels["severity"] == "" && g.Labels["severity"] == "" {
				add("has no severity label, so receivers cannot route or rank it",
					"add labels: {severity: critical} or {severity: warning}")
			}
		}
	}
	return out
}

type histogramFinding struct{ problem, fix string }

// lintHistograms finds histogram_quantile calls over classic (_bucket)
// histograms that are not over a rate of the buckets, or over a rate not
// aggregated by le.
func lintHistograms(expr parser.Expr) []histogramFinding {
	var out []histogramFinding
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		call, ok := node.(*parser.Call)
		if !ok || call.Func.Name != "histogram_quantile" || len(call.Args) != 2 {
			return nil
		}
		q := call.Args[0].String()
		inner := unwrap(call.Args[1])
		bucket := bucketSelector(inner)
		if bucket == "" {
			return nil
		}
		if !hasRate(inner) {
			out = append(out, histogramFinding{
				problem: fmt.Sprintf("histogram_quantile over the raw bucket counters of %s: they count every observation since the process started, so the quantile hardly moves when latency changes", bucket),
				fix:     fmt.Sprintf("take the rate of the buckets and keep le: histogram_quantile(%s, sum by (le, job, instance) (rate(%s[5m])))", q, bucket),
			})
			return nil
		}
		agg, ok := inner.(*parser.AggregateExpr)
		if !ok {
			out = append(out, histogramFinding{
				problem: fmt.Sprintf("histogram_quantile over rate(%s) without sum by (le, …): one quantile per series of every label (route, method, status_code…), not per service", bucket),
				fix:     fmt.Sprintf("aggregate the rates keeping le: histogram_quantile(%s, sum by (le, job, instance) (rate(%s[5m])))", q, bucket),
			})
			return nil
		}
		keepsLe := slices.Contains(agg.Grouping, model.BucketLabel)
		if agg.Without {
			keepsLe = !keepsLe
		}
		if !keepsLe {
			out = append(out, histogramFinding{
				problem: fmt.Sprintf("histogram_quantile over an aggregation of %s that drops le, so no buckets are left and the result is empty", bucket),
				fix:     fmt.Sprintf("keep le in the aggregation: histogram_quantile(%s, sum by (le, job, instance) (rate(%s[5m])))", q, bucket),
			})
		}
		return nil
	})
	return out
}

// unwrap strips parentheses and step-invariant wrappers.
func unwrap(e parser.Expr) parser.Expr {
	for {
		switch v := e.(type) {
		case *parser.ParenExpr:
			e = v.Expr
		case *parser.StepInvariantExpr:
			e = v.Expr
		default:
			return e
		}
	}
}

// bucketSelector returns the first selector of a classic histogram's
// buckets (a name ending in _bucket) under e, as written; "" if none.
func bucketSelector(e parser.Expr) string {
	var found string
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if ok && found == "" && strings.HasSuffix(selectorName(vs), "_bucket") {
			found = vs.String()
		}
		return nil
	})
	return found
}

func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// rateFuncs turn counters into per-second or per-window increases.
var rateFuncs = []string{"rate", "irate", "increase"}

func hasRate(e parser.Expr) bool {
	found := false
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if c, ok := node.(*parser.Call); ok && slices.Contains(rateFuncs, c.Func.Name) {
			found = true
		}
		return nil
	})
	return found
}

// describedAsRatio reports whether an alert's name or annotations speak of
// a share: an error rate, a ratio or a percentage.
func describedAsRatio(r rulefmt.Rule) bool {
	name := strings.ToLower(r.Alert)
	for _, w := range []string{"errorrate", "error_rate", "ratio", "percent"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	for _, v := range r.Annotations {
		lv := strings.ToLower(v)
		for _, w := range []string{"%", "humanizepercentage", "error rate", "ratio", "percent", "错误率", "比例", "百分比"} {
			if strings.Contains(lv, w) {
				return true
			}
		}
	}
	return false
}

// bareFilteredRate finds, in an expression without any division, a
// comparison of a rate of a filtered counter (a selector with matchers
// besides its name, such as status_code=~"5..") with a threshold, and
// returns that selector as written.
func bareFilteredRate(expr parser.Expr) (string, bool) {
	divides := false
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if b, ok := node.(*parser.BinaryExpr); ok && b.Op == parser.DIV {
			divides = true
		}
		return nil
	})
	if divides {
		return "", false
	}
	var sel string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		b, ok := node.(*parser.BinaryExpr)
		if !ok || !b.Op.IsComparisonOperator() || sel != "" {
			return nil
		}
		for _, side := range []parser.Expr{b.LHS, b.RHS} {
			if s, ok := filteredRate(side); ok {
				sel = s
				return nil
			}
		}
		return nil
	})
	return sel, sel != ""
}

// filteredRate reports whether e is, under parentheses and aggregations,
// a rate of a selector with matchers besides its name.
func filteredRate(e parser.Expr) (string, bool) {
	for {
		e = unwrap(e)
		agg, ok := e.(*parser.AggregateExpr)
		if !ok {
			break
		}
		e = agg.Expr
	}
	call, ok := e.(*parser.Call)
	if !ok || !slices.Contains(rateFuncs, call.Func.Name) || len(call.Args) != 1 {
		return "", false
	}
	ms, ok := unwrap(call.Args[0]).(*parser.MatrixSelector)
	if !ok {
		return "", false
	}
	vs, ok := ms.VectorSelector.(*parser.VectorSelector)
	if !ok {
		return "", false
	}
	for _, m := range vs.LabelMatchers {
		if m.Name != model.MetricNameLabel {
			return vs.String(), true
		}
	}
	return "", false
}

// unfiltered returns the metric name of a selector written as
// name{matchers}.
func unfiltered(sel string) string {
	if i := strings.IndexByte(sel, '{'); i > 0 {
		return sel[:i]
	}
	return sel
}
