package jaegerapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/query/traces"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/web/api"
)

// TraceReader is what the Jaeger API needs from the trace query layer
// (query/traces.Service).
//
// Implementations must be safe for concurrent use. Returned values are owned
// by the caller; the Jaeger API only reads them. Errors should wrap the
// storage sentinels where they apply: storage.ErrNotFound (answered 404),
// storage.ErrUnavailable (503); a context error is answered 504 (deadline)
// or 499 (client gone).
type TraceReader interface {
	// Services returns the names of the services that reported spans.
	Services(ctx context.Context) ([]string, error)
	// Operations returns the span names of one service, optionally of one
	// span kind.
	Operations(ctx context.Context, q storage.OperationQuery) ([]storage.Operation, error)
	// Trace returns every span of one trace, or storage.ErrNotFound when
	// there is none.
	Trace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error)
	// FindTraces returns the traces matching q, one ptrace.Traces per
	// trace, and whether the search stopped before it examined the whole
	// window; the window and limit q leaves open take the query layer's
	// defaults.
	FindTraces(ctx context.Context, q traces.Query) (storage.FoundTraces, error)
}

// API serves the Jaeger query HTTP API over a TraceReader. It is safe for
// concurrent use; it keeps no state between requests.
type API struct {
	reader TraceReader
	smap   ServiceMapReader // nil: no dependency or Monitor routes
	resp   *api.Responder
}

// New returns the Jaeger API over r, which must not be nil. A nil logger
// discards logs.
func New(r TraceReader, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{reader: r, resp: api.NewResponder(logger.With("component", "jaeger_api"), "jaeger api")}
}

// SetServiceMap gives the API the service-map query layer, which adds the
// dependency and Monitor routes (see registerServiceMap) to Register. Call
// it before Register; without it those routes are not served.
func (j *API) SetServiceMap(m ServiceMapReader) { j.smap = m }

// Register adds the Jaeger API routes to mux:
//
//	GET /api/services
//	GET /api/services/{service}/operations
//	GET /api/operations?service=&spanKind=
//	GET /api/traces?service=&operation=&tag=&tags=&start=&end=&lookback=&minDuration=&maxDuration=&limit=
//	GET /api/traces?traceID=...&traceID=...
//	GET /api/traces/{traceID}
//
// Every route first checks all its parameters with api.CheckParams and
// its path parameter with api.CheckValue (400 naming the parameter). Like
// http.ServeMux.HandleFunc it panics if a route is already registered.
func (j *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/services", j.services)
	mux.HandleFunc("GET /api/services/{service}/operations", j.serviceOperations)
	mux.HandleFunc("GET /api/operations", j.operations)
	mux.HandleFunc("GET /api/traces", j.findTraces)
	mux.HandleFunc("GET /api/traces/{traceID}", j.trace)
	if j.smap != nil {
		j.registerServiceMap(mux)
	}
}

func (j *API) services(w http.ResponseWriter, r *http.Request) {
	if _, err := api.ParseQuery(r.URL.RawQuery); err != nil {
		j.resp.Fail(w, r, "services", err)
		return
	}
	services, err := j.reader.Services(r.Context())
	if err != nil {
		j.resp.Fail(w, r, "services", err)
		return
	}
	if services == nil {
		services = []string{}
	}
	j.resp.Write(w, r, api.Envelope{Data: services, Total: len(services)})
}

// serviceOperations answers the legacy route the Jaeger UI still uses: the
// unique operation names of a service, of every span kind. Jaeger returns
// them in map order; we sort them.
func (j *API) serviceOperations(w http.ResponseWriter, r *http.Request) {
	if _, err := api.ParseQuery(r.URL.RawQuery); err != nil {
		j.resp.Fail(w, r, "service", err)
		return
	}
	service, err := api.PathValue(r, paramService)
	if err != nil {
		j.resp.Fail(w, r, "service", err)
		return
	}
	if service == "" {
		j.resp.Fail(w, r, "service", api.ParamError(paramService, "is required", nil))
		return
	}
	ops, err := j.reader.Operations(r.Context(), storage.OperationQuery{Service: service})
	if err != nil {
		j.resp.Fail(w, r, "service", err)
		return
	}
	names := make([]string, 0, len(ops))
	for _, op := range ops {
		names = append(names, op.Name)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	j.resp.Write(w, r, api.Envelope{Data: names, Total: len(names)})
}

func (j *API) operations(w http.ResponseWriter, r *http.Request) {
	q, err := api.ParseQuery(r.URL.RawQuery)
	if err != nil {
		j.resp.Fail(w, r, "service", err)
		return
	}
	oq, err := parseOperationQuery(q)
	if err != nil {
		j.resp.Fail(w, r, "service", err)
		return
	}
	ops, err := j.reader.Operations(r.Context(), oq)
	if err != nil {
		j.resp.Fail(w, r, "service", err)
		return
	}
	data := make([]uiOperation, len(ops))
	for i, op := range ops {
		data[i] = uiOperation{Name: op.Name, SpanKind: op.SpanKind}
	}
	j.resp.Write(w, r, api.Envelope{Data: data, Total: len(data)})
}

// findTraces searches traces or, with traceID parameters, fetches those
// traces; as in Jaeger, a trace ID that is not found is reported in the
// envelope's errors and the others are still answered. A search that
// stopped at the store's bound before it examined the whole window
// answers the traces it found with one error saying so (code 206, see
// truncatedError), so that neither the Jaeger UI nor Vigil's shows an
// incomplete answer as a complete one.
func (j *API) findTraces(w http.ResponseWriter, r *http.Request) {
	q, err := api.ParseQuery(r.URL.RawQuery)
	if err != nil {
		j.resp.Fail(w, r, "traces", err)
		return
	}
	ts, err := parseTraceSearch(q)
	if err != nil {
		j.resp.Fail(w, r, "traces", err)
		return
	}
	data := []uiTrace{}
	var missing []api.EnvelopeError
	if len(ts.TraceIDs) > 0 {
		for _, id := range ts.TraceIDs {
			td, err := j.reader.Trace(r.Context(), id)
			if errors.Is(err, storage.ErrNotFound) {
				missing = append(missing, api.EnvelopeError{Msg: "trace not found", TraceID: formatTraceID(id)})
				continue
			}
			if err != nil {
				j.resp.Fail(w, r, "trace", err)
				return
			}
			if t, ok := convertTrace(td); ok {
				data = append(data, t)
			} else {
				missing = append(missing, api.EnvelopeError{Msg: "trace not found", TraceID: formatTraceID(id)})
			}
		}
	} else {
		found, err := j.reader.FindTraces(r.Context(), ts.Query)
		if err != nil {
			j.resp.Fail(w, r, "service", err)
			return
		}
		for _, td := range found.Traces {
			if t, ok := convertTrace(td); ok {
				data = append(data, t)
			}
		}
		if found.Truncated {
			missing = append(missing, truncatedError(found.SearchedFrom))
		}
	}
	j.resp.Write(w, r, api.Envelope{Data: data, Total: len(data), Errors: missing})
}

// TruncatedCode is the code of the envelope error of a search that stopped
// before it examined its whole window (HTTP's Partial Content): the data
// are the newest matches among the spans from the time in the message to
// the end of the window, and older ones may exist.
const TruncatedCode = http.StatusPartialContent

// truncatedError is the envelope error of a search that stopped at the
// store's bound, having examined the spans from `from` on.
func truncatedError(from time.Time) api.EnvelopeError {
	return api.EnvelopeError{Code: TruncatedCode, Msg: fmt.Sprintf("search incomplete: it stopped at the most spans one search may examine; "+
		"spans that started before %s were not searched, so older matching traces may be missing: narrow the time range, or add an operation or tags",
		from.UTC().Format(time.RFC3339Nano))}
}

func (j *API) trace(w http.ResponseWriter, r *http.Request) {
	if _, err := api.ParseQuery(r.URL.RawQuery); err != nil {
		j.resp.Fail(w, r, "trace", err)
		return
	}
	raw, err := api.PathValue(r, api.ParamTraceID)
	if err != nil {
		j.resp.Fail(w, r, "trace", err)
		return
	}
	id, err := api.ParseTraceID(raw)
	if err != nil {
		j.resp.Fail(w, r, "trace", err)
		return
	}
	td, err := j.reader.Trace(r.Context(), id)
	if err != nil {
		j.resp.Fail(w, r, "trace", err)
		return
	}
	t, ok := convertTrace(td)
	if !ok {
		j.resp.Fail(w, r, "trace", fmt.Errorf("get trace %s: no spans: %w", id, storage.ErrNotFound))
		return
	}
	j.resp.Write(w, r, api.Envelope{Data: []uiTrace{t}, Total: 1})
}
