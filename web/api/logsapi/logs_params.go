package logsapi

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	querylogs "github.com/vigil-obs/vigil/query/logs"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/web/api"
)

// Parameters of the log API (GET /api/logs, /api/logs/tail).
const (
	logParamService  = "service"
	logParamSeverity = "severity"
	logParamQ        = "q"
	logParamTraceID  = "trace_id"
	logParamSpanID   = "span_id"
	logParamStart    = "start"
	logParamEnd      = "end"
	logParamLimit    = "limit"
	logParamCursor   = "cursor"
	logParamAttr     = "attr."
	logParamPretty   = api.ParamPrettyPrint

	// maxLogTerms bounds the words and phrases of 'q', and maxLogAttrs the
	// attr.<key> filters, so one request cannot build a huge query.
	// Every name and value is bounded by api.MaxParamBytes.
	maxLogTerms = 32
	maxLogAttrs = 32
)

// severityNames maps severity names to the lowest OTLP severity_number of
// their range (TRACE 1-4, DEBUG 5-8, INFO 9-12, WARN 13-16, ERROR 17-20,
// FATAL 21-24).
var severityNames = map[string]int32{
	"trace": 1, "debug": 5, "info": 9, "warn": 13, "warning": 13, "error": 17, "fatal": 21,
}

// parseLogQuery parses the filter of the log API strictly: unknown
// parameters, repeated scalar parameters, names and values that fail
// api.CheckParams (over api.MaxParamBytes, a NUL byte, invalid UTF-8) and
// malformed values are errors naming the parameter. 'q' may be repeated;
// each value holds words and "quoted phrases". 'start' and 'end' are RFC
// 3339 or Unix seconds (with an optional fraction), as in the Prometheus
// API. What the request leaves open (start, end, limit) stays zero for
// the query layer (query/logs) to settle.
func parseLogQuery(q url.Values) (storage.LogQuery, error) {
	var lq storage.LogQuery
	if b := api.CheckParams(q, api.AnyParam); b != nil {
		return lq, b.RequestError()
	}
	for name, vals := range q {
		if name == logParamQ {
			continue
		}
		if len(vals) > 1 {
			return lq, api.ParamError(api.DisplayParam(name), "must be given once", nil)
		}
		if !strings.HasPrefix(name, logParamAttr) {
			switch name {
			case logParamService, logParamSeverity, logParamTraceID, logParamSpanID, logParamStart,
				logParamEnd, logParamLimit, logParamCursor, logParamPretty:
			default:
				return lq, api.ParamError(api.DisplayParam(name), "is unknown", nil)
			}
		}
	}
	lq.Service = q.Get(logParamService)
	if s := q.Get(logParamSeverity); s != "" {
		sev, err := parseSeverity(s)
		if err != nil {
			return lq, err
		}
		lq.MinSeverity = sev
	}
	for _, v := range q[logParamQ] {
		terms, err := parseTerms(v)
		if err != nil {
			return lq, api.ParamError(logParamQ, err.Error(), nil)
		}
		lq.Text = append(lq.Text, terms...)
	}
	if len(lq.Text) > maxLogTerms {
		return lq, api.ParamError(logParamQ, fmt.Sprintf("has %d words and phrases, over the limit of %d", len(lq.Text), maxLogTerms), nil)
	}
	if s := q.Get(logParamTraceID); s != "" {
		if len(s) != 32 {
			return lq, api.ParamError(logParamTraceID, fmt.Sprintf("must be 32 hex digits, got %d characters", len(s)), nil)
		}
		if _, err := hex.Decode(lq.TraceID[:], []byte(s)); err != nil {
			return lq, api.ParamError(logParamTraceID, "must be hexadecimal", err)
		}
	}
	if s := q.Get(logParamSpanID); s != "" {
		if len(s) != 16 {
			return lq, api.ParamError(logParamSpanID, fmt.Sprintf("must be 16 hex digits, got %d characters", len(s)), nil)
		}
		if _, err := hex.Decode(lq.SpanID[:], []byte(s)); err != nil {
			return lq, api.ParamError(logParamSpanID, "must be hexadecimal", err)
		}
	}
	for name, vals := range q {
		if !strings.HasPrefix(name, logParamAttr) {
			continue
		}
		key := name[len(logParamAttr):]
		if key == "" {
			return lq, api.ParamError(name, "needs a key after 'attr.'", nil)
		}
		if lq.Attributes == nil {
			lq.Attributes = map[string]string{}
		}
		lq.Attributes[key] = vals[0]
	}
	if len(lq.Attributes) > maxLogAttrs {
		return lq, &api.RequestError{Msg: fmt.Sprintf("%d attr.<key> parameters, over the limit of %d", len(lq.Attributes), maxLogAttrs)}
	}
	var err error
	if lq.Start, err = parseLogTime(logParamStart, q.Get(logParamStart)); err != nil {
		return lq, err
	}
	if lq.End, err = parseLogTime(logParamEnd, q.Get(logParamEnd)); err != nil {
		return lq, err
	}
	if !lq.Start.IsZero() && !lq.End.IsZero() && lq.Start.After(lq.End) {
		return lq, api.ParamError(logParamStart, "is after 'end'", nil)
	}
	if s := q.Get(logParamLimit); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > querylogs.MaxLimit {
			return lq, api.ParamError(logParamLimit, fmt.Sprintf("must be an integer from 1 to %d", querylogs.MaxLimit), nil)
		}
		lq.Limit = n
	}
	if s := q.Get(logParamCursor); s != "" {
		c, err := decodeCursor(s)
		if err != nil {
			return lq, api.ParamError(logParamCursor, "is not a cursor returned by this API", nil)
		}
		lq.After = &c
	}
	return lq, nil
}

func parseSeverity(s string) (int32, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 24 {
			return 0, api.ParamError(logParamSeverity, "must be a severity number from 1 to 24 or a name (trace, debug, info, warn, error, fatal)", nil)
		}
		return int32(n), nil
	}
	if n, ok := severityNames[strings.ToLower(s)]; ok {
		return n, nil
	}
	return 0, api.ParamError(logParamSeverity, fmt.Sprintf("%q is not a severity number from 1 to 24 or a name (trace, debug, info, warn, error, fatal)", api.Truncate(s, 64)), nil)
}

// parseTerms splits s into words and "quoted phrases".
func parseTerms(s string) ([]string, error) {
	var out []string
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" {
			return out, nil
		}
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("has an unterminated quoted phrase")
			}
			if p := strings.TrimSpace(s[1 : 1+end]); p != "" {
				out = append(out, p)
			}
			s = s[end+2:]
			continue
		}
		end := strings.IndexAny(s, " \t\r\n\"")
		if end < 0 {
			end = len(s)
		}
		out = append(out, s[:end])
		s = s[end:]
	}
}

// parseLogTime parses RFC 3339 or Unix seconds with an optional fraction;
// "" is the zero time.
func parseLogTime(param, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, api.ParamError(param, "must be an RFC 3339 time or Unix seconds", nil)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
}

// Cursors are opaque to clients: "v1:" then the position's Unix
// microseconds and id, base64url-encoded.
func encodeCursor(c storage.LogCursor) string {
	raw := "v1:" + strconv.FormatInt(c.Time.UnixMicro(), 10) + ":" + strconv.FormatInt(c.ID, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(s string) (storage.LogCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return storage.LogCursor{}, err
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 3 || parts[0] != "v1" {
		return storage.LogCursor{}, fmt.Errorf("bad cursor")
	}
	us, err1 := strconv.ParseInt(parts[1], 10, 64)
	id, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return storage.LogCursor{}, fmt.Errorf("bad cursor")
	}
	return storage.LogCursor{Time: time.UnixMicro(us).UTC(), ID: id}, nil
}

// hexTraceID renders an id for JSON; "" when empty.
func hexTraceID(id pcommon.TraceID) string {
	if id.IsEmpty() {
		return ""
	}
	return hex.EncodeToString(id[:])
}

func hexSpanID(id pcommon.SpanID) string {
	if id.IsEmpty() {
		return ""
	}
	return hex.EncodeToString(id[:])
}
