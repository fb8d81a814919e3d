package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/internal/tail"
	"github.com/vigil-obs/vigil/query/traces"
	"github.com/vigil-obs/vigil/storage"
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
	// trace; the window and limit q leaves open take the query layer's
	// defaults.
	FindTraces(ctx context.Context, q traces.Query) ([]ptrace.Traces, error)
}

// Jaeger serves the Jaeger query HTTP API over a TraceReader. It is safe for
// concurrent use; it keeps no state between requests.
type Jaeger struct {
	reader TraceReader
	logger *slog.Logger
}

// NewJaeger returns the Jaeger API over r, which must not be nil. A nil
// logger discards logs.
func NewJaeger(r TraceReader, logger *slog.Logger) *Jaeger {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Jaeger{reader: r, logger: logger.With("component", "jaeger_api")}
}

// Register adds the Jaeger API routes to mux:
//
//	GET /api/services
//	GET /api/services/{service}/operations
//	GET /api/operations?service=&spanKind=
//	GET /api/traces?service=&operation=&tag=&tags=&start=&end=&lookback=&minDuration=&maxDuration=&limit=
//	GET /api/traces?traceID=...&traceID=...
//	GET /api/traces/{traceID}
//
// Every route first checks all its parameters with checkParams and its
// path parameter with checkParamValue (400 naming the parameter). Like
// http.ServeMux.HandleFunc it panics if a route is already registered.
func (j *Jaeger) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/services", j.services)
	mux.HandleFunc("GET /api/services/{service}/operations", j.serviceOperations)
	mux.HandleFunc("GET /api/operations", j.operations)
	mux.HandleFunc("GET /api/traces", j.findTraces)
	mux.HandleFunc("GET /api/traces/{traceID}", j.trace)
}

func (j *Jaeger) services(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQueryString(r.URL.RawQuery); err != nil {
		j.fail(w, r, "services", err)
		return
	}
	services, err := j.reader.Services(r.Context())
	if err != nil {
		j.fail(w, r, "services", err)
		return
	}
	if services == nil {
		services = []string{}
	}
	j.write(w, r, envelope{Data: services, Total: len(services)})
}

// serviceOperations answers the legacy route the Jaeger UI still uses: the
// unique operation names of a service, of every span kind. Jaeger returns
// them in map order; we sort them.
func (j *Jaeger) serviceOperations(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQueryString(r.URL.RawQuery); err != nil {
		j.fail(w, r, "service", err)
		return
	}
	service, err := pathParam(r, paramService)
	if err != nil {
		j.fail(w, r, "service", err)
		return
	}
	if service == "" {
		j.fail(w, r, "service", paramError(paramService, "is required", nil))
		return
	}
	ops, err := j.reader.Operations(r.Context(), storage.OperationQuery{Service: service})
	if err != nil {
		j.fail(w, r, "service", err)
		return
	}
	names := make([]string, 0, len(ops))
	for _, op := range ops {
		names = append(names, op.Name)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	j.write(w, r, envelope{Data: names, Total: len(names)})
}

func (j *Jaeger) operations(w http.ResponseWriter, r *http.Request) {
	q, err := parseQueryString(r.URL.RawQuery)
	if err != nil {
		j.fail(w, r, "service", err)
		return
	}
	oq, err := parseOperationQuery(q)
	if err != nil {
		j.fail(w, r, "service", err)
		return
	}
	ops, err := j.reader.Operations(r.Context(), oq)
	if err != nil {
		j.fail(w, r, "service", err)
		return
	}
	data := make([]uiOperation, len(ops))
	for i, op := range ops {
		data[i] = uiOperation{Name: op.Name, SpanKind: op.SpanKind}
	}
	j.write(w, r, envelope{Data: data, Total: len(data)})
}

// findTraces searches traces or, with traceID parameters, fetches those
// traces; as in Jaeger, a trace ID that is not found is reported in the
// envelope's errors and the others are still answered.
func (j *Jaeger) findTraces(w http.ResponseWriter, r *http.Request) {
	q, err := parseQueryString(r.URL.RawQuery)
	if err != nil {
		j.fail(w, r, "traces", err)
		return
	}
	ts, err := parseTraceSearch(q)
	if err != nil {
		j.fail(w, r, "traces", err)
		return
	}
	data := []uiTrace{}
	var missing []apiError
	if len(ts.TraceIDs) > 0 {
		for _, id := range ts.TraceIDs {
			td, err := j.reader.Trace(r.Context(), id)
			if errors.Is(err, storage.ErrNotFound) {
				missing = append(missing, apiError{Msg: "trace not found", TraceID: formatTraceID(id)})
				continue
			}
			if err != nil {
				j.fail(w, r, "trace", err)
				return
			}
			if t, ok := convertTrace(td); ok {
				data = append(data, t)
			} else {
				missing = append(missing, apiError{Msg: "trace not found", TraceID: formatTraceID(id)})
			}
		}
	} else {
		found, err := j.reader.FindTraces(r.Context(), ts.Query)
		if err != nil {
			j.fail(w, r, "service", err)
			return
		}
		for _, td := range found {
			if t, ok := convertTrace(td); ok {
				data = append(data, t)
			}
		}
	}
	j.write(w, r, envelope{Data: data, Total: len(data), Errors: missing})
}

func (j *Jaeger) trace(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQueryString(r.URL.RawQuery); err != nil {
		j.fail(w, r, "trace", err)
		return
	}
	raw, err := pathParam(r, paramTraceID)
	if err != nil {
		j.fail(w, r, "trace", err)
		return
	}
	id, err := parseTraceID(raw)
	if err != nil {
		j.fail(w, r, "trace", err)
		return
	}
	td, err := j.reader.Trace(r.Context(), id)
	if err != nil {
		j.fail(w, r, "trace", err)
		return
	}
	t, ok := convertTrace(td)
	if !ok {
		j.fail(w, r, "trace", fmt.Errorf("get trace %s: no spans: %w", id, storage.ErrNotFound))
		return
	}
	j.write(w, r, envelope{Data: []uiTrace{t}, Total: 1})
}

// statusClientClosedRequest is the status for a request its client abandoned
// (nginx's, also Prometheus's choice); nobody reads it, but logs do.
const statusClientClosedRequest = 499

// errorStatus is the one mapping from an error to the HTTP status and the
// message the client sees, for every API answering in the Jaeger envelope
// (the Jaeger API, the log API with its live tail, the service catalogue).
// what names the object a 404 is about ("trace", "service"). Only request
// errors and live-tail refusals show their own text; the others get a
// fixed message so that no storage detail leaks.
func errorStatus(err error, what string) (int, string) {
	var re *requestError
	var he *handshakeError
	var qe *tail.QuotaError
	switch {
	case errors.As(err, &re):
		return http.StatusBadRequest, re.Error()
	case errors.As(err, &he):
		return he.status, he.Error()
	case errors.As(err, &qe):
		return http.StatusTooManyRequests, tailQuotaMessage(qe)
	case errors.Is(err, tail.ErrTooManySubscribers):
		return http.StatusServiceUnavailable, tail.ErrTooManySubscribers.Error()
	case errors.Is(err, tail.ErrClosed):
		return http.StatusServiceUnavailable, tail.ErrClosed.Error()
	case errors.Is(err, storage.ErrNotFound):
		return http.StatusNotFound, what + " not found"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "query timed out"
	case errors.Is(err, context.Canceled):
		return statusClientClosedRequest, "request canceled"
	case errors.Is(err, storage.ErrUnavailable):
		return http.StatusServiceUnavailable, "storage unavailable, retry later"
	}
	return http.StatusInternalServerError, "internal server error"
}

// fail answers err in the Jaeger error envelope and logs what the client is
// not told.
func (j *Jaeger) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	status, msg := errorStatus(err, what)
	ctx := r.Context()
	switch status {
	case http.StatusInternalServerError:
		j.logger.ErrorContext(ctx, "jaeger api request failed", "path", r.URL.Path, "status", status, "err", err)
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		j.logger.WarnContext(ctx, "jaeger api request failed", "path", r.URL.Path, "status", status, "err", err)
	default:
		j.logger.DebugContext(ctx, "jaeger api request rejected", "path", r.URL.Path, "status", status, "err", err)
	}
	j.writeStatus(w, r, status, envelope{Errors: []apiError{{Code: status, Msg: msg}}})
}

func (j *Jaeger) write(w http.ResponseWriter, r *http.Request, body envelope) {
	j.writeStatus(w, r, http.StatusOK, body)
}

// writeStatus encodes body before writing anything, so that an encoding
// failure can still be answered with a 500. 'prettyPrint' indents the JSON
// as Jaeger does.
func (j *Jaeger) writeStatus(w http.ResponseWriter, r *http.Request, status int, body envelope) {
	var (
		out []byte
		err error
	)
	if pp := r.URL.Query().Get(paramPrettyPrint); pp != "" && pp != "false" {
		out, err = json.MarshalIndent(body, "", "    ")
	} else {
		out, err = json.Marshal(body)
	}
	if err != nil {
		// The error envelope holds only strings and ints: it always encodes.
		j.logger.ErrorContext(r.Context(), "jaeger api encode failed", "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
		out, _ = json.Marshal(envelope{Errors: []apiError{{Code: status, Msg: "internal server error"}}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// A failed write means the client went away; there is nobody to tell.
	_, _ = w.Write(out)
}
