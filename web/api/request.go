package api

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// RequestError is a client error of an API that answers in the Jaeger
// envelope: the request itself is wrong. ErrorStatus maps it to 400 and
// its text goes to the client unchanged, so it must name the parameter
// and say what is wrong with it.
type RequestError struct {
	Msg string
	Err error // optional detail, shown after Msg
}

func (e *RequestError) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

func (e *RequestError) Unwrap() error { return e.Err }

// ParamError reports a bad value of one query or path parameter as a
// [RequestError] reading "parameter 'param' what[: err]".
func ParamError(param, what string, err error) error {
	return &RequestError{Msg: "parameter '" + param + "' " + what, Err: err}
}

// ParseQuery parses a raw query string strictly: a malformed escape is an
// error instead of a silently dropped parameter, and every name and
// value, known to the route or not, must pass CheckParams with
// MaxParamBytes (no NUL byte, valid UTF-8). Its errors are
// [RequestError]s.
func ParseQuery(raw string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, &RequestError{Msg: "malformed query string", Err: err}
	}
	if b := CheckParams(q, AnyParam); b != nil {
		return nil, b.RequestError()
	}
	return q, nil
}

// PathValue returns the path wildcard name of r once it passes CheckValue
// with MaxParamBytes; its error is a [RequestError] naming the wildcard.
func PathValue(r *http.Request, name string) (string, error) {
	v := r.PathValue(name)
	if err := CheckValue(v, MaxParamBytes); err != nil {
		return "", ParamError(name, err.Error(), nil)
	}
	return v, nil
}

// ParamTraceID is the name of the trace ID parameter (query or path) of
// the Jaeger and log APIs, spelled as Jaeger spells it.
const ParamTraceID = "traceID"

// ParseTraceID parses a trace ID of 1 to 32 hex digits, left-padded with
// zeros to 128 bits, as Jaeger's model.TraceIDFromString accepts it. The
// all-zero ID is invalid in OTLP and W3C trace context, so it is
// rejected. Its errors are [RequestError]s naming ParamTraceID.
func ParseTraceID(s string) (pcommon.TraceID, error) {
	if s == "" {
		return pcommon.TraceID{}, ParamError(ParamTraceID, "must not be empty", nil)
	}
	if len(s) > 32 {
		return pcommon.TraceID{}, ParamError(ParamTraceID, fmt.Sprintf("must be at most 32 hex digits, got %d characters", len(s)), nil)
	}
	var buf [32]byte
	for i := range 32 - len(s) {
		buf[i] = '0'
	}
	copy(buf[32-len(s):], s)
	var id pcommon.TraceID
	if _, err := hex.Decode(id[:], buf[:]); err != nil {
		return pcommon.TraceID{}, ParamError(ParamTraceID, "must be hexadecimal", err)
	}
	if id.IsEmpty() {
		return pcommon.TraceID{}, ParamError(ParamTraceID, "must not be zero", nil)
	}
	return id, nil
}
