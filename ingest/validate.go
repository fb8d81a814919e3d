package ingest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Default limits, chosen so that spans from OpenTelemetry SDKs with their
// default span limits (128 attributes, events and links) always pass, while
// one span can never carry more than a few megabytes into the database.
const (
	DefaultMaxAttributes = 128
	DefaultMaxEvents     = 128
	DefaultMaxLinks      = 128
	DefaultMaxValueBytes = 64 << 10
	DefaultMaxAge        = 7 * 24 * time.Hour
	DefaultMaxFutureSkew = time.Hour
)

// MaxAttributeValueDepth is the deepest nesting of array and map attribute
// values that validation accepts (the value of a top-level attribute has
// depth 1). pdata's protobuf decoder refuses values nested beyond about 33
// map or 49 array levels; this stricter bound makes protobuf and JSON
// requests, and other receivers' data, equal before validation.
const MaxAttributeValueDepth = 32

const (
	maxReportedProblems = 5   // problems named in a ValidationReport message
	maxQuotedLen        = 64  // bytes of a key quoted in a message
	maxPathDetailLen    = 512 // bytes of a nested attribute path in a message
	problemSeparator    = "; "
)

// Rejection reasons of validation, used as the reason label of
// vigil_ingest_spans_rejected_total and as keys of ValidationReport.Reasons.
const (
	ReasonInvalidID         = "invalid_id"          // trace_id or span_id all zeros
	ReasonInvalidUTF8       = "invalid_utf8"        // a string is not valid UTF-8
	ReasonNULByte           = "nul_byte"            // NUL in span name, service.name or an attribute key
	ReasonTooManyAttributes = "too_many_attributes" // over Limits.MaxAttributes
	ReasonTooManyEvents     = "too_many_events"     // over Limits.MaxEvents
	ReasonTooManyLinks      = "too_many_links"      // over Limits.MaxLinks
	ReasonValueTooLong      = "value_too_long"      // an attribute key or value over Limits.MaxValueBytes
	ReasonValueTooDeep      = "value_too_deep"      // attribute value nested deeper than MaxAttributeValueDepth
	ReasonEndBeforeStart    = "end_before_start"    // end_time_unix_nano < start_time_unix_nano
	ReasonTooOld            = "too_old"             // start time older than Limits.MaxAge
	ReasonInFuture          = "in_future"           // start time beyond Limits.MaxFutureSkew
)

// Limits bounds what one span may carry. A zero field takes its default
// (see DefaultLimits); a negative count, size or duration disables that
// check. The attribute limits apply to each attribute set separately: span,
// resource, scope, and each event and link.
type Limits struct {
	// MaxAttributes is the largest number of attributes of one span,
	// resource, scope, event or link. Default 128.
	MaxAttributes int `yaml:"max_attributes"`
	// MaxEvents is the largest number of events of one span. Default 128.
	MaxEvents int `yaml:"max_events"`
	// MaxLinks is the largest number of links of one span. Default 128.
	MaxLinks int `yaml:"max_links"`
	// MaxValueBytes is the largest length in bytes of an attribute key,
	// of a string or bytes attribute value, and of each string or bytes
	// nested in an array or map value. Default 64 KiB.
	MaxValueBytes int `yaml:"max_value_bytes"`
	// MaxAge rejects spans whose start time is older than now minus
	// MaxAge (they would land in partitions that retention already
	// dropped or is about to drop). Default 7 days.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxFutureSkew rejects spans whose start time is later than now plus
	// MaxFutureSkew (a badly wrong client clock). Default 1 hour.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
	// Now returns the current time; nil means time.Now.
	Now func() time.Time `yaml:"-"`
}

// DefaultLimits returns the documented defaults: 128 attributes per
// attribute set, 128 events and 128 links per span, 64 KiB per attribute
// key or value, start times from 7 days in the past to 1 hour in the
// future, and the real clock.
func DefaultLimits() Limits {
	return Limits{
		MaxAttributes: DefaultMaxAttributes,
		MaxEvents:     DefaultMaxEvents,
		MaxLinks:      DefaultMaxLinks,
		MaxValueBytes: DefaultMaxValueBytes,
		MaxAge:        DefaultMaxAge,
		MaxFutureSkew: DefaultMaxFutureSkew,
		Now:           time.Now,
	}
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxAttributes == 0 {
		l.MaxAttributes = d.MaxAttributes
	}
	if l.MaxEvents == 0 {
		l.MaxEvents = d.MaxEvents
	}
	if l.MaxLinks == 0 {
		l.MaxLinks = d.MaxLinks
	}
	if l.MaxValueBytes == 0 {
		l.MaxValueBytes = d.MaxValueBytes
	}
	if l.MaxAge == 0 {
		l.MaxAge = d.MaxAge
	}
	if l.MaxFutureSkew == 0 {
		l.MaxFutureSkew = d.MaxFutureSkew
	}
	if l.Now == nil {
		l.Now = d.Now
	}
	return l
}

// ValidationReport describes the spans ValidateTracesReport removed.
type ValidationReport struct {
	// Rejected is the number of spans removed.
	Rejected int
	// Message names the first problems (at most five), each prefixed by
	// the path of the offending span, scope or resource in the request as
	// received, e.g. "resource_spans[0].scope_spans[1].spans[3]: trace_id
	// is all zeros", then how many more spans were rejected. It is valid
	// UTF-8 and empty when nothing was rejected.
	Message string
	// Reasons counts the rejected spans by Reason* constant; nil when
	// nothing was rejected.
	Reasons map[string]int
}

// ValidateTracesReport removes from td, in place, every span that Vigil
// cannot or should not store, and reports how many it removed, why (by
// Reason* constant, for metrics) and which, naming the first problems
// precisely (see ValidationReport.Message).
//
// A span is invalid when its trace_id or span_id is all zeros; when a
// string it carries (name, trace_state, status message, attribute keys and
// string values at any depth, event names, link trace_states) is not valid
// UTF-8; when its name contains a NUL byte (PostgreSQL text cannot hold
// one); when it has more attributes, events or links, or a longer or
// deeper attribute key or value, than lim allows (see Limits); when it
// ends before it starts; or when it starts before now-MaxAge or after
// now+MaxFutureSkew. Every span of a resource is invalid when the
// resource's attributes break the same rules, its service.name contains a
// NUL byte, or its schema_url is not valid UTF-8; likewise for a scope and
// its name, version, attributes and schema_url.
//
// Resource and scope entries left without spans are removed too. Zero
// fields of lim take their defaults. td must not be used concurrently.
func ValidateTracesReport(td ptrace.Traces, lim Limits) ValidationReport {
	v := newValidator(lim)
	ri := -1
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		ri++
		if p := v.checkResource(rs); p.reason != "" {
			v.rejectGroup(p, countSpans(rs.ScopeSpans()), func() string { return fmt.Sprintf("resource_spans[%d]", ri) })
			return true
		}
		si := -1
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			si++
			if p := v.checkScope(ss); p.reason != "" {
				v.rejectGroup(p, ss.Spans().Len(), func() string { return fmt.Sprintf("resource_spans[%d].scope_spans[%d]", ri, si) })
				return true
			}
			spi := -1
			ss.Spans().RemoveIf(func(sp ptrace.Span) bool {
				spi++
				p := v.checkSpan(sp)
				if p.reason == "" {
					return false
				}
				v.reject(p.reason, 1, func() string {
					return fmt.Sprintf("resource_spans[%d].scope_spans[%d].spans[%d]: %s", ri, si, spi, p.detail)
				})
				return true
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	return v.report()
}

func countSpans(sss ptrace.ScopeSpansSlice) int {
	n := 0
	for i := 0; i < sss.Len(); i++ {
		n += sss.At(i).Spans().Len()
	}
	return n
}

// problem is a validation failure: a Reason* constant and a description
// "<field> <what is wrong>" relative to the checked object.
type problem struct {
	reason string
	detail string
}

type validator struct {
	lim                Limits
	minStart, maxStart uint64 // bounds of start_time_unix_nano, inclusive
	rejected           int
	reasons            map[string]int
	problems           []string
	unreported         int // rejections not named in problems
	// one and many name the items counted in messages ("span", "spans").
	one, many string
}

func newValidator(lim Limits) *validator {
	lim = lim.WithDefaults()
	now := lim.Now()
	v := &validator{lim: lim, minStart: 0, maxStart: math.MaxUint64, one: "span", many: "spans"}
	if lim.MaxAge > 0 {
		if t := now.Add(-lim.MaxAge).UnixNano(); t > 0 {
			v.minStart = uint64(t)
		}
	}
	if lim.MaxFutureSkew > 0 {
		if t := now.Add(lim.MaxFutureSkew).UnixNano(); t >= 0 {
			v.maxStart = uint64(t)
		}
	}
	return v
}

func (v *validator) reject(reason string, n int, describe func() string) {
	if v.reasons == nil {
		v.reasons = make(map[string]int)
	}
	v.rejected += n
	v.reasons[reason] += n
	if len(v.problems) < maxReportedProblems {
		v.problems = append(v.problems, describe())
	} else {
		v.unreported += n
	}
}

func (v *validator) rejectGroup(p problem, spans int, where func() string) {
	if spans == 0 {
		return // nothing lost: an empty resource or scope is just dropped
	}
	v.reject(p.reason, spans, func() string {
		s := v.many
		if spans == 1 {
			s = v.one
		}
		return fmt.Sprintf("%s: %s (%d %s rejected)", where(), p.detail, spans, s)
	})
}

func (v *validator) report() ValidationReport {
	r := ValidationReport{Rejected: v.rejected, Reasons: v.reasons}
	if len(v.problems) > 0 {
		r.Message = strings.Join(v.problems, problemSeparator)
		if v.unreported > 0 {
			r.Message += fmt.Sprintf("%sand %d more rejected %s", problemSeparator, v.unreported, v.many)
		}
	}
	return r
}

func (v *validator) checkResource(rs ptrace.ResourceSpans) problem {
	if !utf8.ValidString(rs.SchemaUrl()) {
		return problem{ReasonInvalidUTF8, "schema_url is not valid UTF-8"}
	}
	attrs := rs.Resource().Attributes()
	if p := v.checkAttributes(attrs); p.reason != "" {
		p.detail = "resource." + p.detail
		return p
	}
	if sn, found := attrs.Get("service.name"); found && sn.Type() == pcommon.ValueTypeStr && strings.IndexByte(sn.Str(), 0) >= 0 {
		return problem{ReasonNULByte, `resource.attributes["service.name"] contains a NUL byte`}
	}
	return problem{}
}

func (v *validator) checkScope(ss ptrace.ScopeSpans) problem {
	if !utf8.ValidString(ss.SchemaUrl()) {
		return problem{ReasonInvalidUTF8, "schema_url is not valid UTF-8"}
	}
	sc := ss.Scope()
	if !utf8.ValidString(sc.Name()) {
		return problem{ReasonInvalidUTF8, "scope.name is not valid UTF-8"}
	}
	if !utf8.ValidString(sc.Version()) {
		return problem{ReasonInvalidUTF8, "scope.version is not valid UTF-8"}
	}
	p := v.checkAttributes(sc.Attributes())
	if p.reason != "" {
		p.detail = "scope." + p.detail
	}
	return p
}

func (v *validator) checkSpan(sp ptrace.Span) problem {
	if sp.TraceID().IsEmpty() {
		return problem{ReasonInvalidID, "trace_id is all zeros"}
	}
	if sp.SpanID().IsEmpty() {
		return problem{ReasonInvalidID, "span_id is all zeros"}
	}
	name := sp.Name()
	if !utf8.ValidString(name) {
		return problem{ReasonInvalidUTF8, "name is not valid UTF-8"}
	}
	if strings.IndexByte(name, 0) >= 0 {
		return problem{ReasonNULByte, "name contains a NUL byte"}
	}
	start, end := uint64(sp.StartTimestamp()), uint64(sp.EndTimestamp())
	if end < start {
		return problem{ReasonEndBeforeStart, fmt.Sprintf("end_time_unix_nano %s is before start_time_unix_nano %s", formatNanos(end), formatNanos(start))}
	}
	if start < v.minStart {
		return problem{ReasonTooOld, fmt.Sprintf("start_time_unix_nano %s is older than the maximum age of %s", formatNanos(start), v.lim.MaxAge)}
	}
	if start > v.maxStart {
		return problem{ReasonInFuture, fmt.Sprintf("start_time_unix_nano %s is more than %s in the future", formatNanos(start), v.lim.MaxFutureSkew)}
	}
	if !utf8.ValidString(sp.TraceState().AsRaw()) {
		return problem{ReasonInvalidUTF8, "trace_state is not valid UTF-8"}
	}
	if !utf8.ValidString(sp.Status().Message()) {
		return problem{ReasonInvalidUTF8, "status.message is not valid UTF-8"}
	}
	if p := v.checkAttributes(sp.Attributes()); p.reason != "" {
		return p
	}
	events := sp.Events()
	if n := events.Len(); v.lim.MaxEvents > 0 && n > v.lim.MaxEvents {
		return problem{ReasonTooManyEvents, fmt.Sprintf("events has %d entries, over the limit of %d", n, v.lim.MaxEvents)}
	}
	for i := 0; i < events.Len(); i++ {
		ev := events.At(i)
		if !utf8.ValidString(ev.Name()) {
			return problem{ReasonInvalidUTF8, fmt.Sprintf("events[%d].name is not valid UTF-8", i)}
		}
		if p := v.checkAttributes(ev.Attributes()); p.reason != "" {
			p.detail = fmt.Sprintf("events[%d].", i) + p.detail
			return p
		}
	}
	links := sp.Links()
	if n := links.Len(); v.lim.MaxLinks > 0 && n > v.lim.MaxLinks {
		return problem{ReasonTooManyLinks, fmt.Sprintf("links has %d entries, over the limit of %d", n, v.lim.MaxLinks)}
	}
	for i := 0; i < links.Len(); i++ {
		l := links.At(i)
		if !utf8.ValidString(l.TraceState().AsRaw()) {
			return problem{ReasonInvalidUTF8, fmt.Sprintf("links[%d].trace_state is not valid UTF-8", i)}
		}
		if p := v.checkAttributes(l.Attributes()); p.reason != "" {
			p.detail = fmt.Sprintf("links[%d].", i) + p.detail
			return p
		}
	}
	return problem{}
}

// checkAttributes checks one attribute set. The detail it returns starts
// with "attributes"; callers prefix the owner ("events[2].") on failure
// only, so that valid spans cost no formatting.
func (v *validator) checkAttributes(attrs pcommon.Map) problem {
	const field = "attributes"
	if n := attrs.Len(); v.lim.MaxAttributes > 0 && n > v.lim.MaxAttributes {
		return problem{ReasonTooManyAttributes, fmt.Sprintf("%s has %d entries, over the limit of %d", field, n, v.lim.MaxAttributes)}
	}
	p := problem{}
	attrs.Range(func(k string, val pcommon.Value) bool {
		// Top-level keys go to a text dictionary, which cannot hold NUL.
		if strings.IndexByte(k, 0) >= 0 {
			p = problem{ReasonNULByte, fmt.Sprintf("%s[%s] key contains a NUL byte", field, quote(k))}
			return false
		}
		p = v.checkKeyValue(k, val, 1)
		if p.reason != "" {
			p.detail = field + p.detail
			return false
		}
		return true
	})
	return p
}

// checkKeyValue checks one map entry; the detail it returns starts with
// the entry's path ("[\"key\"]...") so callers prefix their field.
func (v *validator) checkKeyValue(k string, val pcommon.Value, depth int) problem {
	if !utf8.ValidString(k) {
		return problem{ReasonInvalidUTF8, fmt.Sprintf("[%s] key is not valid UTF-8", quote(k))}
	}
	if v.lim.MaxValueBytes > 0 && len(k) > v.lim.MaxValueBytes {
		return problem{ReasonValueTooLong, fmt.Sprintf("[%s] key is %d bytes, over the limit of %d", quote(k), len(k), v.lim.MaxValueBytes)}
	}
	p := v.checkValue(val, depth)
	if p.reason != "" {
		p.detail = prependPath(depth, "["+quote(k)+"]", p.detail)
	}
	return p
}

// prependPath puts an outer path element before detail. Below the top
// level it stops once detail is long, marking the gap with "...", so that
// deep paths of long keys keep their start and their end (what is wrong)
// within a bounded length.
func prependPath(depth int, elem, detail string) string {
	if depth > 1 && len(detail) > maxPathDetailLen {
		if strings.HasPrefix(detail, "...") {
			return detail
		}
		return "..." + detail
	}
	return elem + detail
}

// checkValue checks a value at the given nesting depth (1 for the value of
// a top-level attribute). The detail it returns starts with the path below
// the value ("[2][\"k\"] value is ...", or " value is ...").
func (v *validator) checkValue(val pcommon.Value, depth int) problem {
	switch val.Type() {
	case pcommon.ValueTypeStr:
		s := val.Str()
		if !utf8.ValidString(s) {
			return problem{ReasonInvalidUTF8, " value is not valid UTF-8"}
		}
		if v.lim.MaxValueBytes > 0 && len(s) > v.lim.MaxValueBytes {
			return problem{ReasonValueTooLong, fmt.Sprintf(" value is %d bytes, over the limit of %d", len(s), v.lim.MaxValueBytes)}
		}
	case pcommon.ValueTypeBytes:
		if n := val.Bytes().Len(); v.lim.MaxValueBytes > 0 && n > v.lim.MaxValueBytes {
			return problem{ReasonValueTooLong, fmt.Sprintf(" value is %d bytes, over the limit of %d", n, v.lim.MaxValueBytes)}
		}
	case pcommon.ValueTypeSlice:
		if depth >= MaxAttributeValueDepth {
			return problem{ReasonValueTooDeep, fmt.Sprintf(" value is nested deeper than %d levels", MaxAttributeValueDepth)}
		}
		sl := val.Slice()
		for i := 0; i < sl.Len(); i++ {
			if p := v.checkValue(sl.At(i), depth+1); p.reason != "" {
				p.detail = prependPath(depth, "["+strconv.Itoa(i)+"]", p.detail)
				return p
			}
		}
	case pcommon.ValueTypeMap:
		if depth >= MaxAttributeValueDepth {
			return problem{ReasonValueTooDeep, fmt.Sprintf(" value is nested deeper than %d levels", MaxAttributeValueDepth)}
		}
		p := problem{}
		val.Map().Range(func(k string, vv pcommon.Value) bool {
			p = v.checkKeyValue(k, vv, depth+1)
			return p.reason == ""
		})
		return p
	}
	return problem{}
}

// quote quotes s for a message, escaping invalid UTF-8 and cutting it to a
// bounded length so that messages stay valid UTF-8 and short.
func quote(s string) string {
	if len(s) <= maxQuotedLen {
		return strconv.Quote(s)
	}
	cut := maxQuotedLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// formatNanos renders a Unix-nanosecond timestamp as RFC 3339 UTC, or as a
// number when it is beyond what time.Time can represent in int64 nanos.
func formatNanos(ns uint64) string {
	if ns > math.MaxInt64 {
		return strconv.FormatUint(ns, 10)
	}
	return time.Unix(0, int64(ns)).UTC().Format(time.RFC3339Nano)
}
