package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/vigil-obs/vigil/storage"
)

// Envelope is the structured response of the APIs that answer as Jaeger's
// query service does: the Jaeger API and the service catalogue. Its
// field names and which fields are always present follow Jaeger's UI
// model, so that the Jaeger UI and Grafana read our answers unchanged.
type Envelope struct {
	Data   any             `json:"data"`
	Total  int             `json:"total"`
	Limit  int             `json:"limit"`
	Offset int             `json:"offset"`
	Errors []EnvelopeError `json:"errors"`
}

// EnvelopeError is one entry of Envelope.Errors (and of the log API's
// errors). Code is omitted for the per-trace errors of a search by trace
// ID, as Jaeger does.
type EnvelopeError struct {
	Code    int    `json:"code,omitempty"`
	Msg     string `json:"msg"`
	TraceID string `json:"traceID,omitempty"`
}

// StatusClientClosedRequest is the status for a request its client
// abandoned (nginx's, also Prometheus's choice); nobody reads it, but
// logs do.
const StatusClientClosedRequest = 499

// ParamPrettyPrint is the query parameter that asks for indented JSON, as
// in Jaeger ("prettyPrint=true"; absent or "false" is compact).
const ParamPrettyPrint = "prettyPrint"

// ErrorStatus is the one mapping from an error to the HTTP status and the
// message the client sees, for every API answering in the Jaeger envelope
// (the Jaeger API, the log API, the service catalogue; the log API adds
// its live-tail refusals in front of it). what names the object a 404 is
// about ("trace", "service"). Only a [RequestError] shows its own text
// (400); storage.ErrNotFound is 404, an expired deadline 504, a client
// gone 499, storage.ErrUnavailable 503, and anything else 500 with a
// fixed message, so that no storage detail leaks.
func ErrorStatus(err error, what string) (int, string) {
	var re *RequestError
	switch {
	case errors.As(err, &re):
		return http.StatusBadRequest, re.Error()
	case errors.Is(err, storage.ErrNotFound):
		return http.StatusNotFound, what + " not found"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "query timed out"
	case errors.Is(err, context.Canceled):
		return StatusClientClosedRequest, "request canceled"
	case errors.Is(err, storage.ErrUnavailable):
		return http.StatusServiceUnavailable, "storage unavailable, retry later"
	}
	return http.StatusInternalServerError, "internal server error"
}

// internalErrorEnvelope is the answer when a response fails to encode.
var internalErrorEnvelope = []byte(`{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":500,"msg":"internal server error"}]}`)

// Responder writes answers in the Jaeger envelope and maps errors with
// ErrorStatus. Its zero value is not usable: build it with NewResponder.
// Safe for concurrent use.
type Responder struct {
	logger *slog.Logger
	name   string
}

// NewResponder returns a Responder that logs to logger (nil discards)
// under name ("jaeger api").
func NewResponder(logger *slog.Logger, name string) *Responder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Responder{logger: logger, name: name}
}

// Fail answers err in the error envelope (see ErrorStatus; what names the
// object of a 404) and logs what the client is not told.
func (p *Responder) Fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	status, msg := ErrorStatus(err, what)
	p.LogFailure(r, status, err)
	p.WriteStatus(w, r, status, Envelope{Errors: []EnvelopeError{{Code: status, Msg: msg}}})
}

// LogFailure logs a request answered with an error status at the level
// the status calls for: error for a 500 (the client was told nothing),
// warning for 503 and 504 (storage trouble), debug for the client's own
// mistakes.
func (p *Responder) LogFailure(r *http.Request, status int, err error) {
	ctx := r.Context()
	switch status {
	case http.StatusInternalServerError:
		p.logger.ErrorContext(ctx, p.name+" request failed", "path", r.URL.Path, "status", status, "err", err)
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		p.logger.WarnContext(ctx, p.name+" request failed", "path", r.URL.Path, "status", status, "err", err)
	default:
		p.logger.DebugContext(ctx, p.name+" request rejected", "path", r.URL.Path, "status", status, "err", err)
	}
}

// Write answers body with 200.
func (p *Responder) Write(w http.ResponseWriter, r *http.Request, body Envelope) {
	p.WriteStatus(w, r, http.StatusOK, body)
}

// WriteStatus answers body with status (see WriteJSON).
func (p *Responder) WriteStatus(w http.ResponseWriter, r *http.Request, status int, body Envelope) {
	p.WriteJSON(w, r, status, body)
}

// WriteJSON answers any JSON body with status. It encodes body before
// writing anything, so that an encoding failure can still be answered
// with a 500 in the error envelope; ParamPrettyPrint indents the JSON. A
// failed write means the client went away, and is not reported.
func (p *Responder) WriteJSON(w http.ResponseWriter, r *http.Request, status int, body any) {
	var (
		out []byte
		err error
	)
	if pp := r.URL.Query().Get(ParamPrettyPrint); pp != "" && pp != "false" {
		out, err = json.MarshalIndent(body, "", "    ")
	} else {
		out, err = json.Marshal(body)
	}
	if err != nil {
		p.logger.ErrorContext(r.Context(), p.name+" encode failed", "path", r.URL.Path, "err", err)
		status, out = http.StatusInternalServerError, internalErrorEnvelope
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}
