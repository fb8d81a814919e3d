package mapapi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-obs/vigil/query/servicemap"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/web/api"
)

// Reader is what the map API needs from the service-map query layer
// (query/servicemap.Service). Implementations must be safe for concurrent
// use; returned values are owned by the caller. A request's zero fields
// (window, limit) take the query layer's defaults; a question it cannot
// answer as asked is a *servicemap.QueryError (400), and other errors
// should wrap the storage sentinels where they apply (see
// api.ErrorStatus).
type Reader interface {
	// Map returns the service map of q's window.
	Map(ctx context.Context, q servicemap.MapQuery) (servicemap.Map, error)
	// EdgeTraces returns example traces of one edge, newest first.
	EdgeTraces(ctx context.Context, q storage.EdgeTraceQuery) ([]storage.EdgeTrace, error)
}

// Parameters of the map API.
const (
	paramStart  = "start"
	paramEnd    = "end"
	paramClient = "client"
	paramServer = "server"
	paramLimit  = "limit"
	paramAttr   = "attr."
	paramPretty = api.ParamPrettyPrint

	// maxAttrs bounds the attr.<key> filters of one request.
	maxAttrs = 8
)

// API serves the service-map API. Safe for concurrent use; it keeps no
// state between requests.
type API struct {
	reader Reader
	resp   *api.Responder
}

// New returns the map API over r, which must not be nil. A nil logger
// discards logs.
func New(r Reader, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{reader: r, resp: api.NewResponder(logger.With("component", "map_api"), "map api")}
}

// Register adds the map API routes to mux:
//
//	GET /api/vigil/servicemap?start=&end=&attr.deployment.environment=&attr.k8s.namespace.name=
//	GET /api/vigil/servicemap/traces?client=&server=&start=&end=&limit=
//
// Like http.ServeMux.HandleFunc it panics if a route is already
// registered.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/vigil/servicemap", a.serviceMap)
	mux.HandleFunc("GET /api/vigil/servicemap/traces", a.edgeTraces)
}

// envelope is the answer of every route: data, or errors.
type envelope struct {
	Data   any                 `json:"data"`
	Errors []api.EnvelopeError `json:"errors"`
}

// fail answers err in the error envelope: a QueryError as a RequestError
// (400 with its text), the rest through api.ErrorStatus.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var qe *servicemap.QueryError
	if errors.As(err, &qe) {
		err = &api.RequestError{Msg: qe.Error()}
	}
	status, msg := api.ErrorStatus(err, "edge")
	a.resp.LogFailure(r, status, err)
	a.resp.WriteJSON(w, r, status, envelope{Errors: []api.EnvelopeError{{Code: status, Msg: msg}}})
}

func (a *API) serviceMap(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.RawQuery, true, paramStart, paramEnd, paramPretty)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	mq := servicemap.MapQuery{}
	if mq.Start, mq.End, err = parseWindow(q); err != nil {
		a.fail(w, r, err)
		return
	}
	for name, vals := range q {
		key, ok := strings.CutPrefix(name, paramAttr)
		if !ok {
			continue
		}
		if key == "" {
			a.fail(w, r, api.ParamError(api.DisplayParam(name), "needs a key after 'attr.'", nil))
			return
		}
		if mq.Filters == nil {
			mq.Filters = map[string]string{}
		}
		mq.Filters[key] = vals[0]
	}
	if len(mq.Filters) > maxAttrs {
		a.fail(w, r, &api.RequestError{Msg: fmt.Sprintf("%d attr.<key> parameters, over the limit of %d", len(mq.Filters), maxAttrs)})
		return
	}
	m, err := a.reader.Map(r.Context(), mq)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.resp.WriteJSON(w, r, http.StatusOK, envelope{Data: toJSONMap(m)})
}

func (a *API) edgeTraces(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.RawQuery, false, paramClient, paramServer, paramStart, paramEnd, paramLimit, paramPretty)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	tq := storage.EdgeTraceQuery{Client: q.Get(paramClient), Server: q.Get(paramServer)}
	if tq.Start, tq.End, err = parseWindow(q); err != nil {
		a.fail(w, r, err)
		return
	}
	if s := q.Get(paramLimit); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > servicemap.MaxTraceLimit {
			a.fail(w, r, api.ParamError(paramLimit, fmt.Sprintf("must be an integer from 1 to %d", servicemap.MaxTraceLimit), nil))
			return
		}
		tq.Limit = n
	}
	found, err := a.reader.EdgeTraces(r.Context(), tq)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	data := make([]jsonTrace, len(found))
	for i, t := range found {
		data[i] = jsonTrace{
			TraceID:        hex.EncodeToString(t.TraceID[:]),
			Time:           t.Time.UTC().Format(time.RFC3339Nano),
			DurationMs:     float64(t.Duration) / float64(time.Millisecond),
			Failed:         t.Failed,
			ConnectionType: t.ConnectionType,
		}
	}
	a.resp.WriteJSON(w, r, http.StatusOK, envelope{Data: data})
}

// parseQuery parses a raw query string strictly (api.ParseQuery) and
// refuses parameters that are not in known (nor attr.<key> when attrs is
// set), and repeated ones, naming them.
func parseQuery(raw string, attrs bool, known ...string) (url.Values, error) {
	q, err := api.ParseQuery(raw)
	if err != nil {
		return nil, err
	}
	for name, vals := range q {
		if !attrs || !strings.HasPrefix(name, paramAttr) {
			ok := false
			for _, k := range known {
				ok = ok || name == k
			}
			if !ok {
				return nil, api.ParamError(api.DisplayParam(name), "is unknown", nil)
			}
		}
		if len(vals) > 1 {
			return nil, api.ParamError(api.DisplayParam(name), "must be given once", nil)
		}
	}
	return q, nil
}

// parseWindow parses 'start' and 'end'; absent ones stay zero for the
// query layer to settle.
func parseWindow(q url.Values) (start, end time.Time, err error) {
	if start, err = parseTime(paramStart, q.Get(paramStart)); err != nil {
		return
	}
	if end, err = parseTime(paramEnd, q.Get(paramEnd)); err != nil {
		return
	}
	if !start.IsZero() && !end.IsZero() && start.After(end) {
		err = api.ParamError(paramStart, "is after 'end'", nil)
	}
	return
}

// maxUnixSeconds separates Unix seconds from Unix milliseconds in a
// numeric time: seconds up to 1e11 (the year 5138), milliseconds above.
const maxUnixSeconds = 1e11

// parseTime parses RFC 3339, Unix seconds with an optional fraction, or
// Unix milliseconds (a number above 1e11); "" is the zero time.
func parseTime(param, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > maxUnixSeconds*1000 {
		return time.Time{}, api.ParamError(param, "must be an RFC 3339 time, Unix seconds or Unix milliseconds", nil)
	}
	if f > maxUnixSeconds {
		f /= 1000
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
}
