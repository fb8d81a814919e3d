package jaegerapi

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Tag keys and values of the OTLP→Jaeger mapping (OpenTelemetry's
// "non-OTLP formats" specification and the Collector's Jaeger translator).
const (
	keyServiceName     = "service.name"
	keySpanKind        = "span.kind"
	keyStatusCode      = "otel.status_code"
	keyStatusDesc      = "otel.status_description"
	keyError           = "error"
	keyScopeName       = "otel.scope.name"
	keyScopeVersion    = "otel.scope.version"
	keyTraceState      = "w3c.tracestate"
	keyEvent           = "event"
	keyDroppedAttrs    = "otel.dropped_attributes_count"
	keyDroppedEvents   = "otel.dropped_events_count"
	keyDroppedLinks    = "otel.dropped_links_count"
	keyRefType         = "opentracing.ref_type"
	keyLinkTraceID     = "trace_id"
	keyLinkSpanID      = "span_id"
	keyJaegerWarnings  = "@jaeger@warnings"
	refTypeChildOf     = "child_of"
	eventLink          = "link"
	statusOK           = "OK"
	statusError        = "ERROR"
	noServiceName      = "OTLP_EMPTY_SERVICE_NAME"
	jsMaxSafeInteger   = 1<<53 - 1
	jsMinSafeInteger   = -jsMaxSafeInteger
	jaegerSampledFlag  = 1
	w3cSampledFlagMask = 1
)

// flatSpan is a span with the resource and scope it came in.
type flatSpan struct {
	span     ptrace.Span
	scope    pcommon.InstrumentationScope
	resource int // index into ResourceSpans
}

// processEntry is a converted resource and the process ID it was given.
type processEntry struct {
	process uiProcess
	id      string
}

// convertTrace turns the spans of one trace into Jaeger's UI JSON model. It
// reports false when td holds no span. The result is deterministic for a given
// input: spans are ordered by start time then span ID, tags by key, and
// processes are numbered p1, p2... in the order spans first use them, with
// resources of equal service name and tags sharing one process, as Jaeger's
// query service does. It never modifies td.
func convertTrace(td ptrace.Traces) (uiTrace, bool) {
	rss := td.ResourceSpans()
	n := 0
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			n += sss.At(j).Spans().Len()
		}
	}
	if n == 0 {
		return uiTrace{}, false
	}
	flat := make([]flatSpan, 0, n)
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			ss := sss.At(j)
			spans := ss.Spans()
			for k := range spans.Len() {
				flat = append(flat, flatSpan{span: spans.At(k), scope: ss.Scope(), resource: i})
			}
		}
	}
	slices.SortStableFunc(flat, func(a, b flatSpan) int {
		if c := cmp.Compare(a.span.StartTimestamp(), b.span.StartTimestamp()); c != 0 {
			return c
		}
		sa, sb := a.span.SpanID(), b.span.SpanID()
		return bytes.Compare(sa[:], sb[:])
	})

	c := converter{
		resources: make([]*processEntry, rss.Len()),
		byKey:     make(map[string]*processEntry),
	}
	out := uiTrace{
		Spans:     make([]uiSpan, len(flat)),
		Processes: make(map[string]uiProcess),
	}
	for i, fs := range flat {
		pe := c.process(rss.At(fs.resource).Resource(), fs.resource)
		out.Processes[pe.id] = pe.process
		out.Spans[i] = c.span(fs.span, fs.scope, pe.id)
	}
	out.TraceID = out.Spans[0].TraceID
	return out, true
}

// converter holds the per-trace state of a conversion: deduplicated
// processes and the last trace ID formatted (spans of a trace share it).
type converter struct {
	resources []*processEntry          // by resource index
	byKey     map[string]*processEntry // by JSON of the process
	lastID    pcommon.TraceID
	lastIDStr string
}

func (c *converter) process(res pcommon.Resource, idx int) *processEntry {
	if pe := c.resources[idx]; pe != nil {
		return pe
	}
	p := uiProcess{ServiceName: noServiceName, Tags: []uiKeyValue{}}
	attrs := res.Attributes()
	for k, v := range attrs.All() {
		if k == keyServiceName {
			if s := v.AsString(); s != "" {
				p.ServiceName = s
			}
			continue
		}
		p.Tags = append(p.Tags, keyValue(k, v))
	}
	sortTags(p.Tags)
	// The JSON of a process identifies it: tags are sorted and values
	// sanitized, so equal processes encode equally and encoding cannot fail.
	key, err := json.Marshal(p)
	if err != nil {
		key = []byte(strconv.Itoa(idx)) // unreachable; keep it distinct
	}
	pe, ok := c.byKey[string(key)]
	if !ok {
		pe = &processEntry{process: p, id: "p" + strconv.Itoa(len(c.byKey)+1)}
		c.byKey[string(key)] = pe
	}
	c.resources[idx] = pe
	return pe
}

func (c *converter) traceID(id pcommon.TraceID) string {
	if c.lastIDStr == "" || id != c.lastID {
		c.lastID, c.lastIDStr = id, formatTraceID(id)
	}
	return c.lastIDStr
}

func (c *converter) span(s ptrace.Span, scope pcommon.InstrumentationScope, processID string) uiSpan {
	traceID := c.traceID(s.TraceID())
	start := uint64(s.StartTimestamp())
	var dur uint64
	if end := uint64(s.EndTimestamp()); end > start {
		dur = (end - start) / 1000
	}
	out := uiSpan{
		TraceID:       traceID,
		SpanID:        formatSpanID(s.SpanID()),
		Flags:         flagsOf(s.Flags()),
		OperationName: s.Name(),
		References:    c.references(s, traceID),
		StartTime:     start / 1000,
		Duration:      dur,
		ProcessID:     processID,
	}
	out.Tags, out.Warnings = spanTags(s, scope)
	out.Logs = spanLogs(s)
	return out
}

// flagsOf maps OTLP span flags to Jaeger's: only the W3C sampled bit has the
// same meaning in both (W3C's other bits collide with Jaeger's debug flag).
func flagsOf(otlp uint32) uint32 {
	if otlp&w3cSampledFlagMask != 0 {
		return jaegerSampledFlag
	}
	return 0
}

// references maps the parent to a CHILD_OF reference, first, and links to
// FOLLOWS_FROM references, unless a link says opentracing.ref_type=child_of;
// a link to the parent itself only sets the parent reference's type. This is
// the Collector translator's makeJaegerProtoReferences.
func (c *converter) references(s ptrace.Span, traceID string) []uiReference {
	links := s.Links()
	parent := s.ParentSpanID()
	hasParent := !parent.IsEmpty()
	n := links.Len()
	if hasParent {
		n++
	}
	refs := make([]uiReference, 0, n)
	if hasParent {
		refs = append(refs, uiReference{RefType: refChildOf, TraceID: traceID, SpanID: formatSpanID(parent)})
	}
	for i := range links.Len() {
		l := links.At(i)
		refType := refFollowsFrom
		if v, ok := l.Attributes().Get(keyRefType); ok && v.AsString() == refTypeChildOf {
			refType = refChildOf
		}
		if hasParent && l.TraceID() == s.TraceID() && l.SpanID() == parent {
			refs[0].RefType = refType
			continue
		}
		refs = append(refs, uiReference{RefType: refType, TraceID: c.traceID(l.TraceID()), SpanID: formatSpanID(l.SpanID())})
	}
	return refs
}

// spanTags builds the span's tags in the translator's order (scope, attributes,
// kind, status, error, status description, trace state, then the dropped
// counts of the non-OTLP spec), sorted by key as Jaeger's query service does.
// The @jaeger@warnings attribute becomes the span's warnings instead.
//
// The attributes are the tags as the client sent them (ingest/jaeger keeps a
// Jaeger client's tags as they were). The tags made from span fields are
// added only where the span does not carry the tag itself, so that no key
// appears twice and a Jaeger client's span shows what it sent:
//
//   - span.kind, from the kind: Jaeger has no kind field, and the UI, the
//     dependency and Monitor views read the tag;
//   - otel.status_code (OK or ERROR) and error=true (ERROR), from the status,
//     unless the span's own tags already say it (error=true or "true", or
//     otel.status_code of that status): the UI marks failed spans by
//     error=true, and OK has no other spelling in Jaeger. A span whose
//     status was derived from something else shows both, as Jaeger v2
//     does: a Jaeger span failed by its HTTP status code alone (5xx, or 4xx
//     on a client span), or a Zipkin span whose error tag holds a message
//     (error="boom" stays, and error=true comes beside it);
//   - otel.status_description, from the status message;
//   - w3c.tracestate, otel.scope.name and otel.scope.version, from the trace
//     state and the instrumentation scope;
//   - otel.dropped_*_count, when something was dropped.
//
// A Jaeger client's span.kind, otel.status_description, w3c.tracestate and
// otel.scope.* tags became those fields on the way in, so they come back as
// sent.
func spanTags(s ptrace.Span, scope pcommon.InstrumentationScope) ([]uiKeyValue, []string) {
	attrs := s.Attributes()
	tags := make([]uiKeyValue, 0, attrs.Len()+6)
	carried := func(k string) bool { _, ok := attrs.Get(k); return ok }
	add := func(k, v string) {
		if !carried(k) {
			tags = append(tags, stringTag(k, v))
		}
	}
	if name := scope.Name(); name != "" {
		add(keyScopeName, name)
	}
	if v := scope.Version(); v != "" {
		add(keyScopeVersion, v)
	}
	var warnings []string
	for k, v := range attrs.All() {
		if k == keyJaegerWarnings {
			warnings = appendWarnings(warnings, v)
			continue
		}
		tags = append(tags, keyValue(k, v))
	}
	if kind := spanKindName(s.Kind()); kind != "" {
		add(keySpanKind, kind)
	}
	status := s.Status()
	if !statusCarried(attrs, status.Code()) {
		switch status.Code() {
		case ptrace.StatusCodeOk:
			tags = append(tags, stringTag(keyStatusCode, statusOK))
		case ptrace.StatusCodeError:
			tags = append(tags, stringTag(keyStatusCode, statusError))
			tags = append(tags, uiKeyValue{Key: keyError, Type: valueBool, Value: true})
		}
	}
	if msg := status.Message(); msg != "" {
		add(keyStatusDesc, msg)
	}
	if ts := s.TraceState().AsRaw(); ts != "" {
		add(keyTraceState, ts)
	}
	tags = appendCount(tags, keyDroppedAttrs, s.DroppedAttributesCount())
	tags = appendCount(tags, keyDroppedEvents, s.DroppedEventsCount())
	tags = appendCount(tags, keyDroppedLinks, s.DroppedLinksCount())
	sortTags(tags)
	return tags, warnings
}

// statusCarried reports whether the attributes already express the status
// code as Jaeger reads it.
func statusCarried(attrs pcommon.Map, code ptrace.StatusCode) bool {
	sc, hasSC := attrs.Get(keyStatusCode)
	switch code {
	case ptrace.StatusCodeError:
		if v, ok := attrs.Get(keyError); ok && (v.Type() == pcommon.ValueTypeBool && v.Bool() ||
			v.Type() == pcommon.ValueTypeStr && v.Str() == "true") {
			return true
		}
		return hasSC && strings.EqualFold(sc.AsString(), statusError)
	case ptrace.StatusCodeOk:
		return hasSC && strings.EqualFold(sc.AsString(), statusOK)
	}
	return false
}

func appendWarnings(dst []string, v pcommon.Value) []string {
	if v.Type() != pcommon.ValueTypeSlice {
		return append(dst, v.AsString())
	}
	sl := v.Slice()
	for i := range sl.Len() {
		dst = append(dst, sl.At(i).AsString())
	}
	return dst
}

func appendCount(dst []uiKeyValue, key string, n uint32) []uiKeyValue {
	if n == 0 {
		return dst
	}
	return append(dst, uiKeyValue{Key: key, Type: valueInt64, Value: int64(n)})
}

// spanLogs turns events into logs (an "event" field with the event name,
// unless an attribute is already called so, then the attributes) and, since
// Jaeger references cannot carry attributes, each link that has attributes
// into a log at the span's start with event=link, trace_id, span_id and the
// link's attributes, as the OpenTelemetry Jaeger mapping suggests. Logs are
// ordered by time; fields put "event" first, then sort by key.
func spanLogs(s ptrace.Span) []uiLog {
	events := s.Events()
	links := s.Links()
	logs := make([]uiLog, 0, events.Len())
	for i := range events.Len() {
		e := events.At(i)
		attrs := e.Attributes()
		fields := make([]uiKeyValue, 0, attrs.Len()+1)
		if _, has := attrs.Get(keyEvent); e.Name() != "" && !has {
			fields = append(fields, stringTag(keyEvent, e.Name()))
		}
		for k, v := range attrs.All() {
			fields = append(fields, keyValue(k, v))
		}
		fields = appendCount(fields, keyDroppedAttrs, e.DroppedAttributesCount())
		sortLogFields(fields)
		logs = append(logs, uiLog{Timestamp: uint64(e.Timestamp()) / 1000, Fields: fields})
	}
	for i := range links.Len() {
		l := links.At(i)
		attrs := l.Attributes()
		if attrs.Len() == 0 || (attrs.Len() == 1 && hasKey(attrs, keyRefType)) {
			continue
		}
		fields := make([]uiKeyValue, 0, attrs.Len()+3)
		fields = append(fields,
			stringTag(keyEvent, eventLink),
			stringTag(keyLinkTraceID, formatTraceID(l.TraceID())),
			stringTag(keyLinkSpanID, formatSpanID(l.SpanID())))
		for k, v := range attrs.All() {
			if k == keyRefType {
				continue
			}
			fields = append(fields, keyValue(k, v))
		}
		fields = appendCount(fields, keyDroppedAttrs, l.DroppedAttributesCount())
		sortLogFields(fields)
		logs = append(logs, uiLog{Timestamp: uint64(s.StartTimestamp()) / 1000, Fields: fields})
	}
	slices.SortStableFunc(logs, func(a, b uiLog) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
	return logs
}

func hasKey(m pcommon.Map, k string) bool {
	_, ok := m.Get(k)
	return ok
}

func spanKindName(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindServer:
		return "server"
	case ptrace.SpanKindClient:
		return "client"
	case ptrace.SpanKindProducer:
		return "producer"
	case ptrace.SpanKindConsumer:
		return "consumer"
	case ptrace.SpanKindInternal:
		return "internal"
	}
	return ""
}

func stringTag(k, v string) uiKeyValue {
	return uiKeyValue{Key: k, Type: valueString, Value: v}
}

// keyValue converts an attribute to a typed Jaeger tag: strings, booleans,
// ints and doubles keep their type, bytes become binary (base64 in JSON),
// maps and slices become their JSON text as a string tag, and an empty value
// becomes an empty string, as the Collector translator does. Numbers that
// JavaScript cannot represent are written as strings, as Jaeger does.
func keyValue(k string, v pcommon.Value) uiKeyValue {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return uiKeyValue{Key: k, Type: valueString, Value: v.Str()}
	case pcommon.ValueTypeBool:
		return uiKeyValue{Key: k, Type: valueBool, Value: v.Bool()}
	case pcommon.ValueTypeInt:
		i := v.Int()
		if i > jsMaxSafeInteger || i < jsMinSafeInteger {
			return uiKeyValue{Key: k, Type: valueInt64, Value: strconv.FormatInt(i, 10)}
		}
		return uiKeyValue{Key: k, Type: valueInt64, Value: i}
	case pcommon.ValueTypeDouble:
		return uiKeyValue{Key: k, Type: valueFloat64, Value: floatValue(v.Double())}
	case pcommon.ValueTypeBytes:
		return uiKeyValue{Key: k, Type: valueBinary, Value: base64.StdEncoding.EncodeToString(v.Bytes().AsRaw())}
	case pcommon.ValueTypeMap, pcommon.ValueTypeSlice:
		return uiKeyValue{Key: k, Type: valueString, Value: nestedJSON(v)}
	}
	return uiKeyValue{Key: k, Type: valueString, Value: ""}
}

// floatValue returns f, or its name when JSON cannot hold it.
func floatValue(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// nestedJSON encodes a map or slice value as JSON text (map keys sorted,
// bytes as base64, no HTML escaping), like pcommon.Value.AsString, except that
// NaN and infinities become strings instead of making the encoding fail.
func nestedJSON(v pcommon.Value) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rawValue(v)); err != nil {
		return v.AsString()
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// rawValue is pcommon.Value.AsRaw with JSON-safe doubles.
func rawValue(v pcommon.Value) any {
	switch v.Type() {
	case pcommon.ValueTypeMap:
		m := make(map[string]any, v.Map().Len())
		for k, e := range v.Map().All() {
			m[k] = rawValue(e)
		}
		return m
	case pcommon.ValueTypeSlice:
		sl := v.Slice()
		s := make([]any, sl.Len())
		for i := range sl.Len() {
			s[i] = rawValue(sl.At(i))
		}
		return s
	case pcommon.ValueTypeDouble:
		return floatValue(v.Double())
	case pcommon.ValueTypeEmpty:
		return nil
	}
	return v.AsRaw()
}

// sortTags sorts tags by key, keeping the order of equal keys.
func sortTags(tags []uiKeyValue) {
	slices.SortStableFunc(tags, func(a, b uiKeyValue) int { return cmp.Compare(a.Key, b.Key) })
}

// sortLogFields puts the first string "event" field first and sorts the rest
// by key, as Jaeger's SortTagsAndLogFields adjuster does.
func sortLogFields(fields []uiKeyValue) {
	off := 0
	for i, f := range fields {
		if f.Key == keyEvent && f.Type == valueString {
			fields[0], fields[i] = fields[i], fields[0]
			off = 1
			break
		}
	}
	sortTags(fields[off:])
}

// formatTraceID prints a trace ID as Jaeger does: 16 hex digits when the
// high 64 bits are zero, 32 otherwise.
func formatTraceID(id pcommon.TraceID) string {
	if [8]byte(id[:8]) == [8]byte{} {
		return hex.EncodeToString(id[8:])
	}
	return hex.EncodeToString(id[:])
}

// formatSpanID prints a span ID as 16 hex digits.
func formatSpanID(id pcommon.SpanID) string {
	return hex.EncodeToString(id[:])
}
