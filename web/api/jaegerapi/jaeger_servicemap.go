package jaegerapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/vigil-obs/vigil/query/servicemap"
	"github.com/vigil-obs/vigil/web/api"
)

// ServiceMapReader is what the dependency and Monitor routes need from
// the service-map query layer (query/servicemap.Service). Implementations
// must be safe for concurrent use; returned values are owned by the
// caller. A question the layer cannot answer as asked is a
// *servicemap.QueryError (answered 400); other errors should wrap the
// storage sentinels where they apply (see api.ErrorStatus).
type ServiceMapReader interface {
	// Dependencies returns the links with calls in [end−lookback, end],
	// the window widened to whole minutes.
	Dependencies(ctx context.Context, end time.Time, lookback time.Duration) ([]servicemap.Dependency, error)
	// CallRates, ErrorRates and Latencies answer the Monitor tab.
	CallRates(ctx context.Context, q servicemap.MonitorQuery) (servicemap.MetricFamily, error)
	ErrorRates(ctx context.Context, q servicemap.MonitorQuery) (servicemap.MetricFamily, error)
	Latencies(ctx context.Context, q servicemap.MonitorQuery) (servicemap.MetricFamily, error)
}

// Parameters of the dependency and Monitor routes, spelled as
// jaeger-query spells them.
const (
	paramEndTs            = "endTs"
	paramStep             = "step"
	paramRatePer          = "ratePer"
	paramQuantile         = "quantile"
	paramGroupByOperation = "groupByOperation"
)

// maxUnixMillis is the largest endTs accepted: the end of the year 9999.
const maxUnixMillis = 253402300799999

// jaegerToOTelSpanKind maps the Monitor's span kinds to the span_kind
// label values of the span metrics, as jaeger-query does.
var jaegerToOTelSpanKind = map[string]string{
	"unspecified": "SPAN_KIND_UNSPECIFIED",
	"internal":    "SPAN_KIND_INTERNAL",
	"server":      "SPAN_KIND_SERVER",
	"client":      "SPAN_KIND_CLIENT",
	"producer":    "SPAN_KIND_PRODUCER",
	"consumer":    "SPAN_KIND_CONSUMER",
}

// registerServiceMap adds jaeger-query's dependency and Monitor routes:
//
//	GET /api/dependencies?endTs=&lookback=&service=
//	GET /api/metrics/calls?service=&groupByOperation=&endTs=&lookback=&step=&ratePer=&spanKind=
//	GET /api/metrics/errors?(as calls)
//	GET /api/metrics/latencies?quantile=&(as calls)
//	GET /api/metrics/minstep
//
// Times and durations are integer milliseconds, as in jaeger-query, whose
// defaults apply (servicemap.DefaultDependenciesLookback,
// DefaultMonitorLookback, DefaultMonitorStep, DefaultMonitorRatePer, span
// kind server). Parse errors read as jaeger-query's ("unable to parse
// param 'step': ...").
func (j *API) registerServiceMap(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/dependencies", j.dependencies)
	mux.HandleFunc("GET /api/metrics/calls", j.monitor(ServiceMapReader.CallRates, false))
	mux.HandleFunc("GET /api/metrics/errors", j.monitor(ServiceMapReader.ErrorRates, false))
	mux.HandleFunc("GET /api/metrics/latencies", j.monitor(ServiceMapReader.Latencies, true))
	mux.HandleFunc("GET /api/metrics/minstep", j.minStep)
}

// failMap answers err, a QueryError as a 400 with its text.
func (j *API) failMap(w http.ResponseWriter, r *http.Request, err error) {
	var qe *servicemap.QueryError
	if errors.As(err, &qe) {
		err = &api.RequestError{Msg: qe.Error()}
	}
	j.resp.Fail(w, r, "service", err)
}

// uiDependencyLink is one link of GET /api/dependencies.
type uiDependencyLink struct {
	Parent    string `json:"parent"`
	Child     string `json:"child"`
	CallCount uint64 `json:"callCount"`
}

func (j *API) dependencies(w http.ResponseWriter, r *http.Request) {
	q, err := api.ParseQuery(r.URL.RawQuery)
	if err != nil {
		j.failMap(w, r, err)
		return
	}
	end, err := parseEndTs(q)
	if err != nil {
		j.failMap(w, r, err)
		return
	}
	lookback, err := parseMillis(q, paramLookback, servicemap.DefaultDependenciesLookback)
	if err != nil {
		j.failMap(w, r, err)
		return
	}
	deps, err := j.smap.Dependencies(r.Context(), end, lookback)
	if err != nil {
		j.failMap(w, r, err)
		return
	}
	service := q.Get(paramService)
	data := make([]uiDependencyLink, 0, len(deps))
	for _, d := range deps {
		if service == "" || d.Parent == service || d.Child == service {
			data = append(data, uiDependencyLink{Parent: d.Parent, Child: d.Child, CallCount: d.CallCount})
		}
	}
	j.resp.Write(w, r, api.Envelope{Data: data})
}

func (j *API) minStep(w http.ResponseWriter, r *http.Request) {
	if _, err := api.ParseQuery(r.URL.RawQuery); err != nil {
		j.failMap(w, r, err)
		return
	}
	j.resp.Write(w, r, api.Envelope{Data: servicemap.MinStep.Milliseconds()})
}

// monitor returns the handler of one Monitor route over ask.
func (j *API) monitor(ask func(ServiceMapReader, context.Context, servicemap.MonitorQuery) (servicemap.MetricFamily, error), quantile bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, err := api.ParseQuery(r.URL.RawQuery)
		if err != nil {
			j.failMap(w, r, err)
			return
		}
		var quant float64
		if quantile {
			// As jaeger-query: the quantile first, and required.
			if quant, err = strconv.ParseFloat(q.Get(paramQuantile), 64); err != nil {
				j.failMap(w, r, parseError(paramQuantile, err))
				return
			}
		}
		mq, err := parseMonitorQuery(q)
		if err != nil {
			j.failMap(w, r, err)
			return
		}
		mq.Quantile = quant
		fam, err := ask(j.smap, r.Context(), mq)
		if err != nil {
			j.failMap(w, r, err)
			return
		}
		j.resp.WriteJSON(w, r, http.StatusOK, toMetricFamily(fam))
	}
}

// parseMonitorQuery parses the Monitor's parameters as jaeger-query's
// parseMetricsQueryParams does, and refuses a lookback, step or ratePer
// that is not positive (jaeger-query passes them on to the metrics store,
// which fails).
func parseMonitorQuery(q url.Values) (servicemap.MonitorQuery, error) {
	var mq servicemap.MonitorQuery
	services, ok := q[paramService]
	if !ok {
		return mq, parseError(paramService, errors.New("please provide at least one service name"))
	}
	mq.Services = services
	if s := q.Get(paramGroupByOperation); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return mq, parseError(paramGroupByOperation, err)
		}
		mq.GroupByOperation = b
	}
	if kinds, ok := q[paramSpanKind]; ok {
		for _, k := range kinds {
			v, ok := jaegerToOTelSpanKind[k]
			if !ok {
				return mq, parseError(paramSpanKind, errors.New("unsupported span kind: '"+k+"'"))
			}
			mq.SpanKinds = append(mq.SpanKinds, v)
		}
	} else {
		mq.SpanKinds = []string{servicemap.DefaultMonitorSpanKind}
	}
	var err error
	if mq.End, err = parseEndTs(q); err != nil {
		return mq, err
	}
	if mq.Lookback, err = parseMillis(q, paramLookback, servicemap.DefaultMonitorLookback); err != nil {
		return mq, err
	}
	if mq.Step, err = parseMillis(q, paramStep, servicemap.DefaultMonitorStep); err != nil {
		return mq, err
	}
	if mq.RatePer, err = parseMillis(q, paramRatePer, servicemap.DefaultMonitorRatePer); err != nil {
		return mq, err
	}
	return mq, nil
}

// parseError is jaeger-query's parse error: "unable to parse param
// 'name': err".
func parseError(param string, err error) error {
	return &api.RequestError{Msg: "unable to parse param '" + param + "'", Err: err}
}

// parseEndTs parses endTs, Unix milliseconds; absent is zero (now, for
// the query layer).
func parseEndTs(q url.Values) (time.Time, error) {
	s := q.Get(paramEndTs)
	if s == "" {
		return time.Time{}, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, parseError(paramEndTs, err)
	}
	if v < 0 || v > maxUnixMillis {
		return time.Time{}, parseError(paramEndTs, errors.New("must be Unix milliseconds from 0 to "+strconv.FormatInt(maxUnixMillis, 10)))
	}
	return time.UnixMilli(v).UTC(), nil
}

// parseMillis parses a positive duration of integer milliseconds; absent
// is def.
func parseMillis(q url.Values, param string, def time.Duration) (time.Duration, error) {
	s := q.Get(param)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, parseError(param, err)
	}
	if v <= 0 || v > int64(maxUnixMillis) {
		return 0, parseError(param, errors.New("must be a positive number of milliseconds"))
	}
	return time.Duration(v) * time.Millisecond, nil
}
