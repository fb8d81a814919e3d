package promql

import (
	"fmt"
	"regexp/syntax"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// LimitError reports a query refused before evaluation because it would
// exceed one of the engine's limits. Setting names the configuration key
// that sets the limit. The Prometheus API answers it as bad_data (400), as
// Prometheus answers a range query over its 11,000-point resolution.
type LimitError struct {
	Setting string
	Msg     string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s (limit query.%s)", e.Msg, e.Setting)
}

// checkShape refuses an expression that is too large or too deeply
// nested to parse cheaply, before it reaches the parser: Prometheus's
// parser takes time in the square of the nesting depth (100,000 nested
// parentheses cost a minute) and of the length of an operator chain
// (60,000 additions cost 19 s). It runs Prometheus's own lexer, which is
// linear, so it agrees with the parser on what a bracket or an operator
// is (brackets inside strings and comments do not count).
func checkShape(qs string, cfg Config) error {
	if len(qs) > cfg.MaxQueryBytes {
		return &LimitError{"max_query_bytes", fmt.Sprintf("expression of %d bytes exceeds the maximum of %d", len(qs), cfg.MaxQueryBytes)}
	}
	var (
		depth, operators int
		item             parser.Item
	)
	lex := parser.Lex(qs)
	for {
		lex.NextItem(&item)
		switch typ := item.Typ; {
		case typ == parser.EOF, typ == parser.ERROR:
			// A lexing error is the parser's to report, with its position.
			return nil
		case typ == parser.LEFT_PAREN, typ == parser.LEFT_BRACKET, typ == parser.LEFT_BRACE:
			if depth++; depth > cfg.MaxQueryDepth {
				return &LimitError{"max_query_depth", fmt.Sprintf("expression nests brackets more than %d deep", cfg.MaxQueryDepth)}
			}
		case typ == parser.RIGHT_PAREN, typ == parser.RIGHT_BRACKET, typ == parser.RIGHT_BRACE:
			depth = max(depth-1, 0)
		case typ.IsOperator():
			if operators++; operators > cfg.MaxQueryOperators {
				return &LimitError{"max_query_operators", fmt.Sprintf("expression has more than %d operators", cfg.MaxQueryOperators)}
			}
		}
	}
}

// checkCost refuses a parsed expression whose evaluation would take more
// steps than the limits allow, before anything is allocated for it.
// span is the evaluation range of the query in milliseconds (0 for an
// instant query) and step its resolution.
//
// The engine evaluates each subquery once, over its parent's evaluation
// range widened by the subquery's own range, at the subquery's step, and
// allocates per-step bookkeeping for every one of those steps up front:
// sum_over_time(vector(1)[100000d:1ms]) asks for 8.6 trillion steps and
// ends the process with an out-of-memory fatal error, which no recover
// can catch. A nested subquery runs over its parent subquery's range, so
// ranges add up along the path; an @ modifier pins a subquery to one
// parent step.
func checkCost(expr parser.Expr, span time.Duration, step time.Duration, cfg Config) error {
	// As Prometheus's API: the steps between start and end, not counting
	// the first.
	if step > 0 && int64(span/step) > int64(cfg.MaxPointsPerSeries) {
		return &LimitError{"max_points_per_series", fmt.Sprintf(
			"exceeded maximum resolution of %s points per timeseries (%s over %s); try decreasing the query resolution (?step=XX)",
			thousands(int64(cfg.MaxPointsPerSeries)), span, step)}
	}
	var total int64
	var walk func(n parser.Node, span time.Duration) error
	walk = func(n parser.Node, span time.Duration) error {
		if sq, ok := n.(*parser.SubqueryExpr); ok {
			sqStep := sq.Step
			if sqStep <= 0 {
				sqStep = defaultSubqueryStep(sq.Range)
			}
			child := span + sq.Range
			if sq.Timestamp != nil || sq.StartOrEnd != 0 {
				child = sq.Range
			}
			// Each term is at most MaxInt64/1 ms, and total stays below
			// MaxSubquerySteps between terms, so an overflow shows as a
			// negative sum.
			total += int64(child/sqStep) + 1
			if child < 0 || total > cfg.MaxSubquerySteps || total < 0 {
				return &LimitError{"max_subquery_steps", fmt.Sprintf(
					"subqueries would be evaluated at more than %d steps (%s at %s step); narrow their ranges or widen their steps",
					cfg.MaxSubquerySteps, sq.Range, sqStep)}
			}
			return walk(sq.Expr, child)
		}
		if err := checkRegexps(n, cfg.MaxRegexCost); err != nil {
			return err
		}
		for c := range parser.ChildrenIter(n) {
			if err := walk(c, span); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(expr, span)
}

// checkRegexps refuses the regular expressions of a node (label matchers
// of a selector, label_replace's pattern) whose matching would take too
// much memory. Go's regexp runs a large expression on its NFA, which keeps
// a capture slot array of every capture group for each of up to one
// thread per instruction: {__name__=~"((a|b)*c+d?|)…"} of 110 KB asks
// for 6 GB. The cost is capture slots × instructions, as the regexp
// package compiles the pattern the way Prometheus anchors it.
func checkRegexps(n parser.Node, maxCost int64) error {
	check := func(what, pattern string) error {
		re, err := syntax.Parse("^(?s:"+pattern+")$", syntax.Perl)
		if err != nil {
			return nil // the matcher's own compilation reports it
		}
		prog, err := syntax.Compile(re.Simplify())
		if err != nil {
			return nil
		}
		if cost := int64(prog.NumCap) * int64(len(prog.Inst)); cost > maxCost {
			return &LimitError{"max_regex_cost", fmt.Sprintf(
				"regular expression of %s is too complex: %d capture slots × %d instructions = %d, over %d",
				what, prog.NumCap, len(prog.Inst), cost, maxCost)}
		}
		return nil
	}
	switch n := n.(type) {
	case *parser.VectorSelector:
		for _, m := range n.LabelMatchers {
			if m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp {
				if err := check("label "+m.Name, m.Value); err != nil {
					return err
				}
			}
		}
	case *parser.Call:
		if n.Func != nil && n.Func.Name == "label_replace" && len(n.Args) == 5 {
			if lit, ok := n.Args[4].(*parser.StringLiteral); ok {
				if err := check("label_replace", lit.Val); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// thousands formats n with commas between groups of three digits, as
// Prometheus writes its 11,000-point limit.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// defaultSubqueryStep is the step of a subquery written without one
// ([30m:]): one minute, the evaluation interval Prometheus would use by
// default.
func defaultSubqueryStep(time.Duration) time.Duration { return time.Minute }
