package promapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/stats"

	"github.com/vigil-obs/vigil/query/metrics"
	vpromql "github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/web/api"
)

// Engine is what the Prometheus API needs from the PromQL layer
// (query/promql.Engine). Queries it returns are closed by the API.
type Engine interface {
	InstantQuery(ctx context.Context, qs string, ts time.Time, opts vpromql.QueryOptions) (promql.Query, error)
	RangeQuery(ctx context.Context, qs string, start, end time.Time, step time.Duration, opts vpromql.QueryOptions) (promql.Query, error)
}

// MetadataQuerier is what the series, label and metadata routes need from
// the query layer (query/metrics.Service). Implementations must be safe
// for concurrent use; returned values are owned by the caller and never
// nil. Every error is taken for a storage failure: shown to the client
// only as a fixed message (see promErrorStatus).
type MetadataQuerier interface {
	Series(ctx context.Context, sel metrics.Selection) ([]labels.Labels, []string, error)
	LabelNames(ctx context.Context, sel metrics.Selection) ([]string, []string, error)
	LabelValues(ctx context.Context, name string, sel metrics.Selection) ([]string, []string, error)
	Metadata(ctx context.Context, q metrics.MetadataQuery) (map[string][]metadata.Metadata, error)
}

// Options configures the Prometheus API.
type Options struct {
	// Version is reported by /api/v1/status/buildinfo as the Prometheus
	// version Vigil is compatible with (default "3.0.0"); Grafana enables
	// features by it. Revision carries Vigil's own version.
	Version  string
	Revision string
	Logger   *slog.Logger // nil = discard
	Now      func() time.Time
}

// API serves the Prometheus HTTP API (/api/v1/...) over a PromQL
// engine (query/promql) and the metadata queries (query/metrics), with
// Prometheus's JSON envelope, error types and status codes. Every query
// route takes GET parameters and form-encoded POST bodies (as Grafana
// sends). Safe for concurrent use.
type API struct {
	engine Engine
	meta   MetadataQuerier
	parser parser.Parser
	opts   Options
	logger *slog.Logger
}

// New returns the Prometheus API over engine and meta, neither of which
// may be nil.
func New(engine Engine, meta MetadataQuerier, opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Version == "" {
		opts.Version = "3.0.0"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &API{engine: engine, meta: meta, parser: parser.NewParser(parser.Options{}), opts: opts,
		logger: opts.Logger.With("component", "prometheus_api")}
}

// Register adds the routes to mux:
//
//	GET|POST /api/v1/query?query=&time=&timeout=
//	GET|POST /api/v1/query_range?query=&start=&end=&step=&timeout=
//	GET|POST /api/v1/series?match[]=&start=&end=&limit=
//	GET|POST /api/v1/labels?match[]=&start=&end=&limit=
//	GET      /api/v1/label/{name}/values?match[]=&start=&end=&limit=
//	GET      /api/v1/metadata
//	GET      /api/v1/status/buildinfo
//
// Every route but buildinfo first checks all its parameters with
// api.CheckParams (PromQL expressions up to api.MaxExprBytes) and the label
// matchers of 'query' and 'match[]' with checkPromMatchers: bad_data (400)
// naming the parameter. Like http.ServeMux.HandleFunc it panics if a route
// is already registered.
func (p *API) Register(mux *http.ServeMux) {
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		mux.HandleFunc(m+" /api/v1/query", p.query)
		mux.HandleFunc(m+" /api/v1/query_range", p.queryRange)
		mux.HandleFunc(m+" /api/v1/series", p.series)
		mux.HandleFunc(m+" /api/v1/labels", p.labelNames)
	}
	mux.HandleFunc("GET /api/v1/label/{name}/values", p.labelValues)
	mux.HandleFunc("GET /api/v1/metadata", p.metadata)
	mux.HandleFunc("GET /api/v1/status/buildinfo", p.buildInfo)
}

// Prometheus API error types.
const (
	promErrBadData     = "bad_data"
	promErrExec        = "execution"
	promErrCanceled    = "canceled"
	promErrTimeout     = "timeout"
	promErrInternal    = "internal"
	promErrUnavailable = "unavailable"
)

// promStatusClientClosed is the status of a request whose client went away.
const promStatusClientClosed = 499

// maxPromFormBytes bounds a POST body of form parameters: one expression
// at its largest.
const maxPromFormBytes = api.MaxExprBytes

type promResponse struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

type promQueryData struct {
	ResultType string           `json:"resultType"`
	Result     any              `json:"result"`
	Stats      stats.QueryStats `json:"stats,omitempty"`
}

// form parses the URL query and a form-encoded body, and checks every
// parameter with api.CheckParams: PromQL expressions ('query', 'match[]')
// up to api.MaxExprBytes, the others up to api.MaxParamBytes.
func (p *API) form(w http.ResponseWriter, r *http.Request) (map[string][]string, bool) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxPromFormBytes)
	}
	if err := r.ParseForm(); err != nil {
		p.fail(w, r, &promParamError{"body", err})
		return nil, false
	}
	if b := api.CheckParams(r.Form, promParamLimit); b != nil {
		p.fail(w, r, &promParamError{param: b.Param(), err: b.Reason()})
		return nil, false
	}
	return r.Form, true
}

// promParamLimit is the byte limit of a Prometheus API parameter.
func promParamLimit(name string) int {
	if name == "query" || name == "match[]" {
		return api.MaxExprBytes
	}
	return api.MaxParamBytes
}

// withTimeout applies the optional 'timeout' parameter to ctx.
func withTimeout(ctx context.Context, form map[string][]string) (context.Context, context.CancelFunc, error) {
	v := promFormValue(form, "timeout")
	if v == "" {
		return ctx, func() {}, nil
	}
	d, err := parsePromDuration(v)
	if err != nil || d <= 0 {
		if err == nil {
			err = errors.New("must be positive")
		}
		return nil, nil, &promParamError{"timeout", err}
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	return ctx, cancel, nil
}

func (p *API) query(w http.ResponseWriter, r *http.Request) {
	form, ok := p.form(w, r)
	if !ok {
		return
	}
	qs := promFormValue(form, "query")
	if qs == "" {
		p.fail(w, r, &promParamError{"query", errors.New("is required")})
		return
	}
	ts, err := promTimeParam(form, "time", p.opts.Now())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	ctx, cancel, err := withTimeout(r.Context(), form)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	defer cancel()
	q, err := p.engine.InstantQuery(ctx, qs, ts, queryOptions(form))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	defer q.Close()
	if err := checkPromExpr(q.Statement()); err != nil {
		p.fail(w, r, &promParamError{"query", err})
		return
	}
	p.answer(ctx, w, r, qs, q, form)
}

func (p *API) queryRange(w http.ResponseWriter, r *http.Request) {
	form, ok := p.form(w, r)
	if !ok {
		return
	}
	rp, err := parsePromRange(form)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	ctx, cancel, err := withTimeout(r.Context(), form)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	defer cancel()
	q, err := p.engine.RangeQuery(ctx, rp.query, rp.start, rp.end, rp.step, queryOptions(form))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	defer q.Close()
	if err := checkPromExpr(q.Statement()); err != nil {
		p.fail(w, r, &promParamError{"query", err})
		return
	}
	p.answer(ctx, w, r, rp.query, q, form)
}

// queryOptions reads the per-query options: stats=all asks for per-step
// statistics, as in Prometheus.
func queryOptions(form map[string][]string) vpromql.QueryOptions {
	return vpromql.QueryOptions{PerStepStats: promFormValue(form, "stats") == "all"}
}

// answer runs q and writes its result, with the query's statistics when
// the stats parameter is set (as Prometheus does), or its error.
func (p *API) answer(ctx context.Context, w http.ResponseWriter, r *http.Request, qs string, q promql.Query, form map[string][]string) {
	res := q.Exec(ctx)
	if res.Err != nil {
		p.fail(w, r, res.Err)
		return
	}
	warnings, infos := res.Warnings.AsStrings(qs, 10, 10)
	data := promQueryData{ResultType: string(res.Value.Type()), Result: res.Value}
	if promFormValue(form, "stats") != "" {
		data.Stats = stats.NewQueryStats(q.Stats())
	}
	// Empty results are [] in Prometheus, never null.
	switch v := res.Value.(type) {
	case promql.Matrix:
		if v == nil {
			data.Result = promql.Matrix{}
		}
	case promql.Vector:
		if v == nil {
			data.Result = promql.Vector{}
		}
	}
	p.write(w, r, http.StatusOK, promResponse{Status: "success", Data: data, Warnings: warnings, Infos: infos})
}

// parseSelection parses the match[], start, end and limit parameters of
// the series and label routes; an absent start or end stays zero (the
// whole range, see metrics.Selection).
func (p *API) parseSelection(form map[string][]string) (metrics.Selection, error) {
	var sel metrics.Selection
	var err error
	if sel.Matchers, err = parsePromMatchSets(p.parser, form["match[]"]); err != nil {
		return sel, err
	}
	if sel.Start, err = promTimeParam(form, "start", time.Time{}); err != nil {
		return sel, err
	}
	if sel.End, err = promTimeParam(form, "end", time.Time{}); err != nil {
		return sel, err
	}
	if !sel.Start.IsZero() && !sel.End.IsZero() && sel.End.Before(sel.Start) {
		return sel, &promParamError{"end", errors.New("end timestamp must not be before start time")}
	}
	if sel.Limit, err = parsePromLimit(form); err != nil {
		return sel, err
	}
	return sel, nil
}

func (p *API) series(w http.ResponseWriter, r *http.Request) {
	form, ok := p.form(w, r)
	if !ok {
		return
	}
	if len(form["match[]"]) == 0 {
		p.fail(w, r, &promParamError{"match[]", errors.New("no match[] parameter provided")})
		return
	}
	sel, err := p.parseSelection(form)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	out, warnings, err := p.meta.Series(r.Context(), sel)
	if err != nil {
		p.fail(w, r, &promStorageError{err})
		return
	}
	p.write(w, r, http.StatusOK, promResponse{Status: "success", Data: out, Warnings: warnings})
}

func (p *API) labelNames(w http.ResponseWriter, r *http.Request) {
	form, ok := p.form(w, r)
	if !ok {
		return
	}
	sel, err := p.parseSelection(form)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	out, warnings, err := p.meta.LabelNames(r.Context(), sel)
	if err != nil {
		p.fail(w, r, &promStorageError{err})
		return
	}
	p.write(w, r, http.StatusOK, promResponse{Status: "success", Data: out, Warnings: warnings})
}

func (p *API) labelValues(w http.ResponseWriter, r *http.Request) {
	name, err := parsePromLabelName(r.PathValue("name"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	form, ok := p.form(w, r)
	if !ok {
		return
	}
	sel, err := p.parseSelection(form)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	out, warnings, err := p.meta.LabelValues(r.Context(), name, sel)
	if err != nil {
		p.fail(w, r, &promStorageError{err})
		return
	}
	p.write(w, r, http.StatusOK, promResponse{Status: "success", Data: out, Warnings: warnings})
}

// metadata answers /api/v1/metadata?metric=&limit=&limit_per_metric= as
// Prometheus does: {"<family>": [{"type","help","unit"}]}.
func (p *API) metadata(w http.ResponseWriter, r *http.Request) {
	form, ok := p.form(w, r)
	if !ok {
		return
	}
	q := metrics.MetadataQuery{Metric: promFormValue(form, "metric")}
	var err error
	if q.Limit, err = parsePromLimit(form); err != nil {
		p.fail(w, r, err)
		return
	}
	if v := promFormValue(form, "limit_per_metric"); v != "" {
		if q.LimitPerMetric, err = strconv.Atoi(v); err != nil || q.LimitPerMetric < 0 {
			p.fail(w, r, &promParamError{"limit_per_metric", errors.New("must be a non-negative integer")})
			return
		}
	}
	data, err := p.meta.Metadata(r.Context(), q)
	if err != nil {
		p.fail(w, r, &promStorageError{err})
		return
	}
	p.write(w, r, http.StatusOK, promResponse{Status: "success", Data: data})
}

func (p *API) buildInfo(w http.ResponseWriter, r *http.Request) {
	p.write(w, r, http.StatusOK, promResponse{Status: "success", Data: map[string]string{
		"version":   p.opts.Version,
		"revision":  p.opts.Revision,
		"branch":    "vigil",
		"buildUser": "vigil",
		"buildDate": "",
		"goVersion": runtime.Version(),
	}})
}

// promStorageError marks an error of the series, label and metadata
// queries (MetadataQuerier), which fail only in storage: never shown to
// the client, unless it is one of the errors promErrorStatus shows.
type promStorageError struct{ err error }

func (e *promStorageError) Error() string { return e.err.Error() }
func (e *promStorageError) Unwrap() error { return e.err }

// Messages of the errors whose own text the client never sees.
const (
	promMsgTimeout     = "query timed out"
	promMsgCanceled    = "query canceled"
	promMsgUnavailable = "storage unavailable, retry later"
	promMsgInternal    = "internal server error"
)

// promErrorStatus is the one mapping from an error to Prometheus's error
// type, status and the message the client sees, with Prometheus's types
// and statuses. Errors about the request or the query itself (bad
// parameters and parse errors, the engine's timeouts and limits, its
// evaluation errors) keep their text, as Prometheus shows them; storage
// errors get a fixed message so that no PostgreSQL text leaks: an
// unavailable store (503), a context that ended inside storage, and any
// other storage failure (500 internal). A storage failure is one the
// engine wrapped in promql.ErrStorage, one of the API's own reads
// (promStorageError), or any error carrying a PostgreSQL SQLSTATE.
func promErrorStatus(err error) (typ string, status int, msg string) {
	var pe *promParamError
	var parseErrs parser.ParseErrors
	var parseErr *parser.ParseErr
	var limitErr *vpromql.LimitError
	var canceled promql.ErrQueryCanceled
	var timeout promql.ErrQueryTimeout
	var storageErr promql.ErrStorage
	var own *promStorageError
	var sqlErr interface{ SQLState() string }
	switch {
	case errors.As(err, &pe), errors.As(err, &parseErrs), errors.As(err, &parseErr), errors.As(err, &limitErr):
		return promErrBadData, http.StatusBadRequest, err.Error()
	case errors.As(err, &timeout):
		return promErrTimeout, http.StatusServiceUnavailable, timeout.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return promErrTimeout, http.StatusServiceUnavailable, promMsgTimeout
	case errors.As(err, &canceled):
		return promErrCanceled, promStatusClientClosed, canceled.Error()
	case errors.Is(err, context.Canceled):
		return promErrCanceled, promStatusClientClosed, promMsgCanceled
	case errors.Is(err, storage.ErrUnavailable):
		return promErrUnavailable, http.StatusServiceUnavailable, promMsgUnavailable
	case errors.Is(err, storage.ErrLimitExceeded):
		// The query asked for more than the store may read: its own
		// fault, reported as Prometheus reports too many samples.
		return promErrExec, http.StatusUnprocessableEntity, err.Error()
	case errors.As(err, &storageErr), errors.As(err, &own), errors.As(err, &sqlErr):
		return promErrInternal, http.StatusInternalServerError, promMsgInternal
	}
	return promErrExec, http.StatusUnprocessableEntity, err.Error()
}

// fail answers err in Prometheus's error envelope (see promErrorStatus) and
// logs what the client is not told.
func (p *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	typ, status, msg := promErrorStatus(err)
	ctx := r.Context()
	switch {
	case status == http.StatusInternalServerError:
		p.logger.ErrorContext(ctx, "prometheus api request failed", "path", r.URL.Path, "status", status, "err", err)
	case status >= 500:
		p.logger.WarnContext(ctx, "prometheus api request failed", "path", r.URL.Path, "status", status, "err", err)
	default:
		p.logger.DebugContext(ctx, "prometheus api request rejected", "path", r.URL.Path, "status", status, "err", err)
	}
	p.write(w, r, status, promResponse{Status: "error", ErrorType: typ, Error: msg})
}

// write encodes body before writing anything, so that an encoding failure
// can still be answered with a 500.
func (p *API) write(w http.ResponseWriter, r *http.Request, status int, body promResponse) {
	out, err := json.Marshal(body)
	if err != nil {
		p.logger.ErrorContext(r.Context(), "prometheus api encode failed", "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
		out, _ = json.Marshal(promResponse{Status: "error", ErrorType: promErrInternal, Error: promMsgInternal})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// A failed write means the client went away; there is nobody to tell.
	_, _ = w.Write(out)
}
