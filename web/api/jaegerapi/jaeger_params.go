package jaegerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-obs/vigil/query/traces"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/web/api"
)

// Limits of a trace search request. They are part of the API contract: a
// request beyond them is answered 400 naming the parameter, never silently
// trimmed. The default and largest 'limit' and the default window are the
// query layer's (query/traces DefaultLimit, MaxLimit, DefaultLookback).
const (
	// MaxSearchTraceIDs is the largest number of 'traceID' parameters one
	// search may carry.
	MaxSearchTraceIDs = 100
	// MaxSearchTags is the largest number of distinct tag filters ('tag' and
	// 'tags' together) one search may carry.
	MaxSearchTags = 64
)

// Query parameter names, spelled as Jaeger spells them.
const (
	paramService     = "service"
	paramOperation   = "operation"
	paramSpanKind    = "spanKind"
	paramTag         = "tag"
	paramTags        = "tags"
	paramStart       = "start"
	paramEnd         = "end"
	paramLookback    = "lookback"
	paramLimit       = "limit"
	paramMinDuration = "minDuration"
	paramMaxDuration = "maxDuration"
	paramTraceID     = api.ParamTraceID
)

// traceSearch is a parsed GET /api/traces request: either a search
// (traces.Query) or, when TraceIDs is not empty, a lookup by IDs.
type traceSearch struct {
	traces.Query
	TraceIDs []pcommon.TraceID
}

// parseTraceSearch parses the parameters of GET /api/traces as Jaeger's query
// service does (cmd/query/app/query_parser.go), with these additions: a
// 'lookback' ("1h", "2d", "custom") sets the start when 'start' is absent
// (Jaeger ignores it, but it is validated whenever given); 'limit' is
// refused above traces.MaxLimit; negative durations, start after end and
// empty tag keys are rejected. What the request leaves open (start, end,
// limit) stays zero for the query layer to settle. Repeated scalar
// parameters use their first value, as Jaeger's FormValue does.
func parseTraceSearch(q url.Values) (traceSearch, error) {
	var ts traceSearch
	ts.Service = q.Get(paramService)
	ts.Operation = q.Get(paramOperation)

	var err error
	if s := q.Get(paramEnd); s != "" {
		if ts.StartMax, err = parseMicros(paramEnd, s); err != nil {
			return traceSearch{}, err
		}
	}
	if ts.Lookback, err = parseLookback(q.Get(paramLookback)); err != nil {
		return traceSearch{}, err
	}
	if s := q.Get(paramStart); s != "" {
		if ts.StartMin, err = parseMicros(paramStart, s); err != nil {
			return traceSearch{}, err
		}
		ts.Lookback = 0
	}
	if !ts.StartMin.IsZero() && !ts.StartMax.IsZero() && ts.StartMin.After(ts.StartMax) {
		return traceSearch{}, api.ParamError(paramStart, "must not be after 'end'", nil)
	}

	if ts.Tags, err = parseTags(q[paramTag], q[paramTags]); err != nil {
		return traceSearch{}, err
	}
	if ts.Limit, err = parseLimit(q.Get(paramLimit)); err != nil {
		return traceSearch{}, err
	}
	if ts.DurationMin, err = parseDuration(paramMinDuration, q.Get(paramMinDuration)); err != nil {
		return traceSearch{}, err
	}
	if ts.DurationMax, err = parseDuration(paramMaxDuration, q.Get(paramMaxDuration)); err != nil {
		return traceSearch{}, err
	}
	if ids := q[paramTraceID]; len(ids) > 0 {
		if len(ids) > MaxSearchTraceIDs {
			return traceSearch{}, api.ParamError(paramTraceID, fmt.Sprintf("is repeated %d times, at most %d are allowed", len(ids), MaxSearchTraceIDs), nil)
		}
		seen := make(map[pcommon.TraceID]struct{}, len(ids))
		for _, s := range ids {
			id, err := api.ParseTraceID(s)
			if err != nil {
				return traceSearch{}, err
			}
			if _, dup := seen[id]; dup {
				continue
			}
			seen[id] = struct{}{}
			ts.TraceIDs = append(ts.TraceIDs, id)
		}
	}

	if len(ts.TraceIDs) == 0 && ts.Service == "" {
		return traceSearch{}, api.ParamError(paramService, "is required", nil)
	}
	if ts.DurationMin != 0 && ts.DurationMax != 0 && ts.DurationMax < ts.DurationMin {
		return traceSearch{}, api.ParamError(paramMaxDuration, "must not be less than 'minDuration'", nil)
	}
	return ts, nil
}

// parseMicros parses a time given as an integer number of microseconds since
// the Unix epoch.
func parseMicros(param, s string) (time.Time, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, api.ParamError(param, "must be an integer number of microseconds since the Unix epoch", err)
	}
	if v < 0 {
		return time.Time{}, api.ParamError(param, "must not be negative", nil)
	}
	return time.UnixMicro(v).UTC(), nil
}

// parseDuration parses a Go duration ("1.2s", "100ms", "50us"); empty is 0.
func parseDuration(param, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, api.ParamError(param, "must be a duration such as 1.2s, 100ms or 50us", err)
	}
	if d < 0 {
		return 0, api.ParamError(param, "must not be negative", nil)
	}
	return d, nil
}

// parseLookback parses the Jaeger UI's lookback: an integer with a unit of
// s, m, h, d (days) or w (weeks), or any Go duration. "" and "custom" (the
// UI's marker for an explicit start/end) mean none and return 0.
func parseLookback(s string) (time.Duration, error) {
	if s == "" || s == "custom" {
		return 0, nil
	}
	const day = 24 * time.Hour
	var unit time.Duration
	switch s[len(s)-1] {
	case 'd':
		unit = day
	case 'w':
		unit = 7 * day
	}
	var d time.Duration
	if unit != 0 {
		n, err := strconv.ParseUint(s[:len(s)-1], 10, 63)
		if err != nil || n > uint64(math.MaxInt64/int64(unit)) {
			return 0, api.ParamError(paramLookback, "must be a duration such as 1h, 2d or custom", err)
		}
		d = time.Duration(n) * unit
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, api.ParamError(paramLookback, "must be a duration such as 1h, 2d or custom", err)
		}
	}
	if d <= 0 {
		return 0, api.ParamError(paramLookback, "must be positive", nil)
	}
	return d, nil
}

// parseLimit parses 'limit'; empty or 0 means the query layer's default.
func parseLimit(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, api.ParamError(paramLimit, "must be an integer", err)
	}
	switch {
	case v < 0:
		return 0, api.ParamError(paramLimit, "must not be negative", nil)
	case v > traces.MaxLimit:
		return 0, api.ParamError(paramLimit, fmt.Sprintf("must be at most %d", traces.MaxLimit), nil)
	}
	return int(v), nil
}

// parseTags merges the repeated 'tag=key:value' parameters and the 'tags'
// JSON objects, in that order (a later value for a key wins), as Jaeger does.
// JSON values may be strings, numbers or booleans; the latter two are kept
// in their JSON spelling since tags are compared as strings. It returns nil
// when there are no tags.
func parseTags(simple, jsonTags []string) (map[string]string, error) {
	if len(simple) == 0 && len(jsonTags) == 0 {
		return nil, nil
	}
	tags := make(map[string]string)
	for _, t := range simple {
		k, v, ok := strings.Cut(t, ":")
		if !ok {
			return nil, api.ParamError(paramTag, fmt.Sprintf("must be key:value, got %q", api.Truncate(t, 64)), nil)
		}
		if k == "" {
			return nil, api.ParamError(paramTag, fmt.Sprintf("has an empty key in %q", api.Truncate(t, 64)), nil)
		}
		tags[k] = v
		if len(tags) > MaxSearchTags {
			return nil, api.ParamError(paramTag, fmt.Sprintf("gives more than %d tags", MaxSearchTags), nil)
		}
	}
	for _, raw := range jsonTags {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(raw), &obj); err != nil {
			return nil, api.ParamError(paramTags, "must be a JSON object such as {\"http.status_code\":\"500\"}", err)
		}
		for k, rv := range obj {
			if k == "" {
				return nil, api.ParamError(paramTags, "has an empty key", nil)
			}
			// JSON escapes (\u0000) can spell what the raw parameter
			// check let through.
			if err := api.CheckValue(k, api.MaxParamBytes); err != nil {
				return nil, api.ParamError(paramTags, "has a key that "+err.Error(), nil)
			}
			v, err := jsonScalarString(rv)
			if err != nil {
				return nil, api.ParamError(paramTags, fmt.Sprintf("has a bad value for %q", api.Truncate(k, 64)), err)
			}
			if err := api.CheckValue(v, api.MaxParamBytes); err != nil {
				return nil, api.ParamError(paramTags, fmt.Sprintf("has a value for %q that %v", api.Truncate(k, 64), err), nil)
			}
			tags[k] = v
			if len(tags) > MaxSearchTags {
				return nil, api.ParamError(paramTags, fmt.Sprintf("gives more than %d tags", MaxSearchTags), nil)
			}
		}
	}
	if len(tags) == 0 {
		return nil, nil
	}
	return tags, nil
}

// jsonScalarString turns a JSON string, number or boolean into the string a
// tag filter compares with.
func jsonScalarString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("empty value")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		// json.Unmarshal has already validated the literal.
		return string(raw), nil
	}
	return "", fmt.Errorf("want a string, number or boolean, got %s", api.Truncate(string(raw), 32))
}

// validSpanKind reports whether /api/operations accepts k as 'spanKind'
// ("" means any kind).
func validSpanKind(k string) bool {
	switch k {
	case "", "server", "client", "producer", "consumer", "internal":
		return true
	}
	return false
}

// parseOperationQuery parses GET /api/operations?service=&spanKind=.
func parseOperationQuery(q url.Values) (storage.OperationQuery, error) {
	oq := storage.OperationQuery{Service: q.Get(paramService), SpanKind: q.Get(paramSpanKind)}
	if oq.Service == "" {
		return storage.OperationQuery{}, api.ParamError(paramService, "is required", nil)
	}
	if !validSpanKind(oq.SpanKind) {
		return storage.OperationQuery{}, api.ParamError(paramSpanKind, fmt.Sprintf("must be one of server, client, producer, consumer, internal, got %q", api.Truncate(oq.SpanKind, 32)), nil)
	}
	return oq, nil
}
