package promapi

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/vigil-obs/vigil/query/metrics"
	"github.com/vigil-obs/vigil/web/api"
)

// The widest times the Prometheus API accepts (those of a selection
// without start or end), and their RFC 3339 forms that Prometheus clients
// send for "unbounded" (as web/api/v1.MinTime).
var (
	promMinTime          = metrics.MinTime
	promMaxTime          = metrics.MaxTime
	promMinTimeFormatted = promMinTime.Format(time.RFC3339Nano)
	promMaxTimeFormatted = promMaxTime.Format(time.RFC3339Nano)
)

// promParamError is a bad parameter: answered 400 "bad_data".
type promParamError struct {
	param string
	err   error
}

func (e *promParamError) Error() string {
	return fmt.Sprintf("invalid parameter %q: %v", e.param, e.err)
}

func (e *promParamError) Unwrap() error { return e.err }

// parsePromTime parses a Prometheus API time: Unix seconds with an
// optional fraction, or RFC 3339.
func parsePromTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || f < float64(promMinTime.Unix()) || f > float64(promMaxTime.Unix()) {
			return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
		}
		sec, frac := math.Modf(f)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case promMinTimeFormatted:
		return promMinTime, nil
	case promMaxTimeFormatted:
		return promMaxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parsePromDuration parses seconds (with a fraction) or a Prometheus
// duration such as 5m or 1h30m.
func parsePromDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		ns := f * float64(time.Second)
		if math.IsNaN(ns) || ns >= float64(math.MaxInt64) || ns < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ns), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// promTimeParam returns the time in form value name, or def when absent.
func promTimeParam(form map[string][]string, name string, def time.Time) (time.Time, error) {
	v := promFormValue(form, name)
	if v == "" {
		return def, nil
	}
	t, err := parsePromTime(v)
	if err != nil {
		return time.Time{}, &promParamError{name, err}
	}
	return t, nil
}

func promFormValue(form map[string][]string, name string) string {
	if vs := form[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// promRangeParams are the parsed parameters of /api/v1/query_range.
type promRangeParams struct {
	query      string
	start, end time.Time
	step       time.Duration
}

// parsePromRange checks the parameters of a range query as Prometheus
// does, with its messages.
func parsePromRange(form map[string][]string) (promRangeParams, error) {
	var p promRangeParams
	p.query = promFormValue(form, "query")
	if p.query == "" {
		return p, &promParamError{"query", errors.New("is required")}
	}
	var err error
	for _, x := range []struct {
		name string
		dst  *time.Time
	}{{"start", &p.start}, {"end", &p.end}} {
		v := promFormValue(form, x.name)
		if v == "" {
			return p, &promParamError{x.name, errors.New("is required")}
		}
		if *x.dst, err = parsePromTime(v); err != nil {
			return p, &promParamError{x.name, err}
		}
	}
	if p.end.Before(p.start) {
		return p, &promParamError{"end", errors.New("end timestamp must not be before start time")}
	}
	v := promFormValue(form, "step")
	if v == "" {
		return p, &promParamError{"step", errors.New("is required")}
	}
	if p.step, err = parsePromDuration(v); err != nil {
		return p, &promParamError{"step", err}
	}
	if p.step <= 0 {
		return p, &promParamError{"step", errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer")}
	}
	return p, nil
}

// parsePromMatchSets parses match[] selectors; each must hold a matcher that
// does not match the empty string, as in Prometheus, and pass
// checkPromMatchers.
func parsePromMatchSets(p parser.Parser, values []string) ([][]*labels.Matcher, error) {
	sets := make([][]*labels.Matcher, 0, len(values))
	for _, v := range values {
		ms, err := p.ParseMetricSelector(v)
		if err != nil {
			return nil, &promParamError{"match[]", err}
		}
		if err := checkPromMatchers(ms); err != nil {
			return nil, &promParamError{"match[]", err}
		}
		ok := false
		for _, m := range ms {
			if m != nil && !m.Matches("") {
				ok = true
			}
		}
		if !ok {
			return nil, &promParamError{"match[]", errors.New("match[] must contain at least one non-empty matcher")}
		}
		sets = append(sets, ms)
	}
	return sets, nil
}

// parsePromLimit parses the optional 'limit' parameter (0 = none).
func parsePromLimit(form map[string][]string) (int, error) {
	v := promFormValue(form, "limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, &promParamError{"limit", errors.New("must be a non-negative integer")}
	}
	return n, nil
}

// parsePromLabelName checks a label name of /api/v1/label/{name}/values,
// undoing the U__ escaping of UTF-8 names as Prometheus does. A valid name
// is not empty, valid UTF-8 (Prometheus's UTF-8 validation scheme), holds
// no NUL byte (Vigil refuses it at ingest) and fits api.MaxParamBytes.
func parsePromLabelName(name string) (string, error) {
	if err := api.CheckValue(name, api.MaxParamBytes); err != nil {
		return "", &promParamError{"name", fmt.Errorf("invalid label name: %w", err)}
	}
	if len(name) > 3 && name[:3] == "U__" {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) || strings.IndexByte(name, 0) >= 0 {
		return "", &promParamError{"name", fmt.Errorf("invalid label name: %q", name)}
	}
	return name, nil
}

// checkPromMatchers refuses label matchers that name or compare with
// what no stored label can hold: a NUL byte or invalid UTF-8, which
// PromQL string escapes ("\x00", "\xff") can spell although the raw
// parameter holds neither. For a regular expression, the values it is
// known to match exactly (Matcher.SetMatches, looked up by equality)
// are checked too. Such a matcher is the client's mistake (400), not a
// storage failure.
func checkPromMatchers(ms []*labels.Matcher) error {
	for _, m := range ms {
		if m == nil {
			continue
		}
		if err := api.CheckValue(m.Name, api.MaxParamBytes); err != nil {
			return fmt.Errorf("label matcher %s: label name %w", m, err)
		}
		if err := api.CheckValue(m.Value, api.MaxExprBytes); err != nil {
			return fmt.Errorf("label matcher %s: value %w", m, err)
		}
		if m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp {
			for _, v := range m.SetMatches() {
				if err := api.CheckValue(v, api.MaxExprBytes); err != nil {
					return fmt.Errorf("label matcher %s: regular expression matches a value that %w", m, err)
				}
			}
		}
	}
	return nil
}

// checkPromExpr applies checkPromMatchers to every selector of a parsed
// PromQL statement (a query the engine has parsed and not yet run).
func checkPromExpr(stmt parser.Node) error {
	var bad error
	parser.Inspect(stmt, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if err := checkPromMatchers(vs.LabelMatchers); err != nil {
				bad = err
				return err
			}
		}
		return nil
	})
	return bad
}
