package servicemap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/storage"
)

// Defaults of the Monitor's questions: those of jaeger-query.
const (
	// DefaultMonitorLookback is how far before its end a Monitor query
	// looks.
	DefaultMonitorLookback = time.Hour
	// DefaultMonitorStep is the resolution of a Monitor query.
	DefaultMonitorStep = 5 * time.Second
	// DefaultMonitorRatePer is the range of the rate() a Monitor query
	// computes.
	DefaultMonitorRatePer = 10 * time.Minute
	// DefaultDependenciesLookback is how far before its end a dependency
	// query looks.
	DefaultDependenciesLookback = 24 * time.Hour
	// MinStep is the smallest step a Monitor query takes: a Prometheus
	// metrics store's, 1 ms.
	MinStep = time.Millisecond
	// DefaultMonitorSpanKind is the span kind a Monitor query covers
	// when it names none.
	DefaultMonitorSpanKind = spanKindServer
)

// MonitorQuery is one question of Jaeger's Monitor tab, with
// jaeger-query's parameters: the services (at least one; joined into a
// regular expression, as jaeger-query does), whether to group by
// operation, the OpenTelemetry span kinds ("SPAN_KIND_SERVER"; none means
// DefaultMonitorSpanKind), the end (zero: now), the lookback, step and
// rate range (zero: the defaults) and, for latencies, the quantile.
type MonitorQuery struct {
	Services         []string
	GroupByOperation bool
	SpanKinds        []string
	End              time.Time
	Lookback         time.Duration
	Step             time.Duration
	RatePer          time.Duration
	Quantile         float64
}

// MetricFamily is a Monitor answer, in the shape of Jaeger's
// api_v2/metrics MetricFamily of type GAUGE.
type MetricFamily struct {
	Name    string
	Help    string
	Metrics []Metric
}

// Metric is one series of a MetricFamily: its labels (span_name renamed
// "operation", as jaeger-query does), sorted by name, and its points.
type Metric struct {
	Labels []Label
	Points []Point
}

// Label is one label of a Metric.
type Label struct {
	Name  string
	Value string
}

// Point is one value of a Metric; V may be NaN (a quantile or a ratio of
// no calls).
type Point struct {
	T time.Time
	V float64
}

// monitorParams is a MonitorQuery with its defaults settled.
type monitorParams struct {
	MonitorQuery
	name, help string
}

// CallRates answers the call rate per second of q's services (and
// operations), as jaeger-query's GetCallRates.
func (s *Service) CallRates(ctx context.Context, q MonitorQuery) (MetricFamily, error) {
	p := monitorParams{MonitorQuery: q, name: "service_call_rate", help: "calls/sec, grouped by service"}
	return s.monitor(ctx, p, false, func(f promFilter) string {
		return fmt.Sprintf(`sum(rate(%s{service_name =~ %q, %s}[%s])) by (%s)`,
			metricSpanCalls, f.service, f.spanKind, f.rate, f.groupBy)
	})
}

// ErrorRates answers the ratio of errors to calls of q's services (and
// operations), as jaeger-query's GetErrorRates: when no call failed but
// there were calls, the ratio is 0 at every point of the calls.
func (s *Service) ErrorRates(ctx context.Context, q MonitorQuery) (MetricFamily, error) {
	p := monitorParams{MonitorQuery: q, name: "service_error_rate", help: "error rate, computed as a fraction of errors/sec over calls/sec, grouped by service"}
	fam, err := s.monitor(ctx, p, false, func(f promFilter) string {
		return fmt.Sprintf(`sum(rate(%s{service_name =~ %q, status_code = "STATUS_CODE_ERROR", %s}[%s])) by (%s) / sum(rate(%s{service_name =~ %q, %s}[%s])) by (%s)`,
			metricSpanCalls, f.service, f.spanKind, f.rate, f.groupBy,
			metricSpanCalls, f.service, f.spanKind, f.rate, f.groupBy)
	})
	if err != nil || len(fam.Metrics) > 0 {
		return fam, err
	}
	calls, err := s.CallRates(ctx, q)
	if err != nil {
		return MetricFamily{}, err
	}
	for i := range calls.Metrics {
		for j := range calls.Metrics[i].Points {
			calls.Metrics[i].Points[j].V = 0
		}
	}
	fam.Metrics = calls.Metrics
	return fam, nil
}

// Latencies answers the q.Quantile latency, in milliseconds, of q's
// services (and operations), as jaeger-query's GetLatencies.
func (s *Service) Latencies(ctx context.Context, q MonitorQuery) (MetricFamily, error) {
	p := monitorParams{MonitorQuery: q, name: "service_latencies", help: fmt.Sprintf("%.2fth quantile latency, grouped by service", q.Quantile)}
	return s.monitor(ctx, p, true, func(f promFilter) string {
		return fmt.Sprintf(`histogram_quantile(%.2f, sum(rate(%s_bucket{service_name =~ %q, %s}[%s])) by (%s))`,
			q.Quantile, metricSpanDuration, f.service, f.spanKind, f.rate, f.groupBy)
	})
}

// promFilter holds the parts of a Monitor query, as jaeger-query builds
// them.
type promFilter struct {
	service, spanKind, rate, groupBy string
}

// monitor settles p's defaults, builds its PromQL with build and runs it
// as a range query over [End−Lookback, End] every Step.
func (s *Service) monitor(ctx context.Context, p monitorParams, byLe bool, build func(promFilter) string) (MetricFamily, error) {
	if s.opts.Engine == nil {
		return MetricFamily{}, fmt.Errorf("%s: no PromQL engine: %w", p.name, storage.ErrUnavailable)
	}
	if len(p.Services) == 0 {
		return MetricFamily{}, &QueryError{Param: "service", Msg: "is required"}
	}
	if p.End.IsZero() {
		p.End = s.cfg.Now()
	}
	if p.Lookback == 0 {
		p.Lookback = DefaultMonitorLookback
	}
	if p.Step == 0 {
		p.Step = DefaultMonitorStep
	}
	if p.RatePer == 0 {
		p.RatePer = DefaultMonitorRatePer
	}
	switch {
	case p.Lookback < 0:
		return MetricFamily{}, &QueryError{Param: "lookback", Msg: "must be positive"}
	case p.Step < MinStep:
		return MetricFamily{}, &QueryError{Param: "step", Msg: fmt.Sprintf("must be at least %d ms", MinStep.Milliseconds())}
	case p.RatePer < MinStep:
		return MetricFamily{}, &QueryError{Param: "ratePer", Msg: fmt.Sprintf("must be at least %d ms", MinStep.Milliseconds())}
	}
	if len(p.SpanKinds) == 0 {
		p.SpanKinds = []string{DefaultMonitorSpanKind}
	}
	if p.GroupByOperation {
		p.name = strings.Replace(p.name, "service", "service_operation", 1)
		p.help += " & operation"
	}
	groupBy := []string{labelServiceName}
	if p.GroupByOperation {
		groupBy = append(groupBy, labelSpanName)
	}
	if byLe {
		groupBy = append(groupBy, labelLe)
	}
	qs := build(promFilter{
		service:  strings.Join(p.Services, "|"),
		spanKind: fmt.Sprintf(`span_kind =~ %q`, strings.Join(p.SpanKinds, "|")),
		rate:     promqlDuration(p.RatePer),
		groupBy:  strings.Join(groupBy, ","),
	})
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	query, err := s.opts.Engine.RangeQuery(ctx, qs, p.End.Add(-p.Lookback), p.End, p.Step, promql.QueryOptions{})
	if err != nil {
		return MetricFamily{}, monitorError(p.name, err)
	}
	defer query.Close()
	res := query.Exec(ctx)
	if res.Err != nil {
		return MetricFamily{}, monitorError(p.name, res.Err)
	}
	mat, err := res.Matrix()
	if err != nil {
		return MetricFamily{}, fmt.Errorf("%s: %w", p.name, err)
	}
	fam := MetricFamily{Name: p.name, Help: p.help, Metrics: make([]Metric, 0, len(mat))}
	for _, series := range mat {
		m := Metric{Points: make([]Point, 0, len(series.Floats))}
		series.Metric.Range(func(l labels.Label) {
			name := l.Name
			if name == labelSpanName {
				name = "operation"
			}
			m.Labels = append(m.Labels, Label{Name: name, Value: l.Value})
		})
		slices.SortFunc(m.Labels, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
		for _, f := range series.Floats {
			m.Points = append(m.Points, Point{T: time.UnixMilli(f.T).UTC(), V: f.F})
		}
		fam.Metrics = append(fam.Metrics, m)
	}
	return fam, nil
}

// monitorError turns the engine's refusals of a query (over its limits,
// a service name that is not a valid regular expression) into
// QueryErrors, and wraps the rest.
func monitorError(name string, err error) error {
	var (
		limit *promql.LimitError
		perrs parser.ParseErrors
		perr  *parser.ParseErr
	)
	switch {
	case errors.As(err, &limit):
		return &QueryError{Msg: name + " query refused", Err: limit}
	case errors.As(err, &perrs), errors.As(err, &perr):
		return &QueryError{Param: "service", Msg: "does not make a valid query", Err: err}
	}
	return fmt.Errorf("%s: %w", name, err)
}

// promqlDuration formats d as jaeger-query does for its rate range: the
// text of d.String() up to and including its first letter ("10m0s" is
// "10m", "1h30m0s" is "1h").
func promqlDuration(d time.Duration) string {
	var b []byte
	for _, c := range d.String() {
		b = append(b, byte(c))
		if unicode.IsLetter(c) {
			break
		}
	}
	return string(b)
}
