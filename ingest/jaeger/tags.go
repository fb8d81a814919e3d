package jaeger

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/jaegertracing/jaeger-idl/model/v1"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv2"
	zipkinmodel "github.com/openzipkin/zipkin-go/model"
	"go.opentelemetry.io/collector/featuregate"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Spans are stored with their tags as the client sent them: the keys and
// value types a Jaeger or Zipkin client wrote, so that the Jaeger API shows
// them and a search by them finds them, as in Jaeger. The contrib
// translators change some on the way in; this file undoes each change:
//
//   - http.status_code → http.response.status_code (both translators, and
//     the Jaeger one renames http.response.status_code to http.status_code
//     when that is off): feature gates, turned off by keepTagNames, then the
//     Jaeger tag http.response.status_code put back by restore;
//   - the tags error=true (Jaeger's bool, Zipkin's "true") and
//     otel.status_code, which set the span status and are removed: put back
//     by restore, so that the API shows them once, as sent, and adds no
//     status tag the span did not carry;
//   - the process tags hostname (→ host.name) and jaeger.version (→
//     opencensus.exporterversion "Jaeger-<version>"): put back by restore.
//
// The status is still derived by the translator as Jaeger does: error=true,
// else otel.status_code, else the HTTP status code (5xx, and 4xx on a
// client span), under either name. Span kind (span.kind), the status
// message (otel.status_description), the trace state (w3c.tracestate) and
// the scope (otel.scope.name/version) become span fields, which the Jaeger
// API turns back into the same tags (web/api/jaegerapi).
//
// The aliases that let a search by http.status_code find OTLP spans
// carrying http.response.status_code, and the reverse, are the store's
// (storage/semconv, storage/postgres/spanstore).

// renamingGates are the translators' feature gates that rename
// http.status_code. They are global to the process; nothing else in Vigil
// uses these translators.
var renamingGates = []string{
	"pkg.translator.jaeger.DontEmitV0HttpConventions",
	"pkg.translator.jaeger.EmitV1HttpConventions",
	"pkg.translator.zipkin.DontEmitV0HttpConventions",
	"pkg.translator.zipkin.EmitV1HttpConventions",
}

// keepTagNames turns off the translators' renaming of http.status_code.
// It is idempotent and safe for concurrent use (gates are atomic).
func keepTagNames() error {
	for _, id := range renamingGates {
		if err := featuregate.GlobalRegistry().Set(id, false); err != nil {
			return fmt.Errorf("keep tag names: %w", err)
		}
	}
	return nil
}

// Tag keys restore puts back.
const (
	tagHTTPStatusOld  = "http.status_code"
	tagHTTPStatusNew  = "http.response.status_code"
	tagError          = "error"
	tagStatusCode     = "otel.status_code"
	tagHostname       = "hostname"
	tagHostName       = "host.name"
	tagJaegerVersion  = "jaeger.version"
	tagExporterVer    = "opencensus.exporterversion"
	exporterVerPrefix = "Jaeger-"
)

type spanKey struct {
	trace pcommon.TraceID
	span  pcommon.SpanID
}

func newSpanKey(high, low, span uint64) spanKey {
	var k spanKey
	binary.BigEndian.PutUint64(k.trace[:8], high)
	binary.BigEndian.PutUint64(k.trace[8:], low)
	binary.BigEndian.PutUint64(k.span[:], span)
	return k
}

// sentTag is a tag as sent, kept to be put back.
type sentTag struct {
	key   string
	value pcommon.Value
}

// spanFix is what restore does to one translated span: remove the keys the
// translator made up, then put the sent tags back.
type spanFix struct {
	remove []string
	put    []sentTag
}

// fixes records, for one batch, what the translator will change. The zero
// value records nothing; it is not safe for concurrent use.
type fixes struct {
	spans map[spanKey]*spanFix
	// Process tags: whether some process sent hostname, jaeger.version,
	// host.name or opencensus.exporterversion.
	hostname, hostName, version, exporterVer bool
}

// tagView is what fixes reads of a Jaeger tag in either IDL.
type tagView struct {
	key    string
	value  func() pcommon.Value
	isTrue bool // a bool tag whose value is true
}

// span records the tags of one span that restore must put back.
func (f *fixes) span(k spanKey, tags []tagView) {
	var fix spanFix
	sentOld, sentNew := false, false
	for _, t := range tags {
		switch t.key {
		case tagHTTPStatusOld:
			sentOld = true
		case tagHTTPStatusNew:
			sentNew = true
		}
	}
	for _, t := range tags {
		switch {
		case sentNew && (t.key == tagHTTPStatusOld || t.key == tagHTTPStatusNew),
			t.key == tagError && t.isTrue,
			t.key == tagStatusCode:
			fix.put = append(fix.put, sentTag{t.key, t.value()})
		}
	}
	if sentNew && !sentOld {
		fix.remove = append(fix.remove, tagHTTPStatusOld)
	}
	if len(fix.put) == 0 {
		return
	}
	if f.spans == nil {
		f.spans = map[spanKey]*spanFix{}
	}
	f.spans[k] = &fix
}

// process records the process tags restore must put back.
func (f *fixes) process(keys func(yield func(string) bool)) {
	for k := range keys {
		switch k {
		case tagHostname:
			f.hostname = true
		case tagHostName:
			f.hostName = true
		case tagJaegerVersion:
			f.version = true
		case tagExporterVer:
			f.exporterVer = true
		}
	}
}

// restore undoes the translator's changes in td.
func (f *fixes) restore(td ptrace.Traces) {
	undoHost := f.hostname && !f.hostName
	undoVersion := f.version && !f.exporterVer
	if len(f.spans) == 0 && !undoHost && !undoVersion {
		return
	}
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		attrs := rs.Resource().Attributes()
		if v, ok := attrs.Get(tagHostName); ok && undoHost {
			v.CopyTo(attrs.PutEmpty(tagHostname))
			attrs.Remove(tagHostName)
		}
		if v, ok := attrs.Get(tagExporterVer); ok && undoVersion && strings.HasPrefix(v.Str(), exporterVerPrefix) {
			attrs.PutStr(tagJaegerVersion, strings.TrimPrefix(v.Str(), exporterVerPrefix))
			attrs.Remove(tagExporterVer)
		}
		if len(f.spans) == 0 {
			continue
		}
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				sp := spans.At(k)
				fix := f.spans[spanKey{sp.TraceID(), sp.SpanID()}]
				if fix == nil {
					continue
				}
				a := sp.Attributes()
				for _, key := range fix.remove {
					a.Remove(key)
				}
				for _, t := range fix.put {
					t.value.CopyTo(a.PutEmpty(t.key))
				}
			}
		}
	}
}

// thriftToTraces is jaegertranslator.ThriftToTraces with the tags kept as
// sent.
func thriftToTraces(batch *jaegerthrift.Batch) (ptrace.Traces, error) {
	var f fixes
	if p := batch.GetProcess(); p != nil {
		f.process(thriftKeys(p.GetTags()))
	}
	var views []tagView
	for _, sp := range batch.GetSpans() {
		if sp == nil {
			continue
		}
		need := false
		for _, t := range sp.GetTags() {
			if t != nil && changed(t.GetKey(), t.GetVType() == jaegerthrift.TagType_BOOL && t.GetVBool()) {
				need = true
				break
			}
		}
		if !need {
			continue
		}
		views = views[:0]
		for _, t := range sp.GetTags() {
			if t != nil && keptKey(t.GetKey()) {
				views = append(views, thriftTagView(t))
			}
		}
		if len(views) > 0 {
			f.span(newSpanKey(uint64(sp.GetTraceIdHigh()), uint64(sp.GetTraceIdLow()), uint64(sp.GetSpanId())), views)
		}
	}
	td, err := jaegertranslator.ThriftToTraces(batch)
	if err != nil {
		return td, err
	}
	f.restore(td)
	return td, nil
}

// protoToTraces is jaegertranslator.ProtoToTraces with the tags kept as
// sent.
func protoToTraces(batches []*model.Batch) (ptrace.Traces, error) {
	var f fixes
	var views []tagView
	for _, b := range batches {
		if b == nil {
			continue
		}
		if p := b.GetProcess(); p != nil {
			f.process(modelKeys(p.GetTags()))
		}
		for _, sp := range b.GetSpans() {
			if sp == nil {
				continue
			}
			if sp.Process != nil {
				f.process(modelKeys(sp.Process.GetTags()))
			}
			need := false
			for i := range sp.Tags {
				if changed(sp.Tags[i].Key, sp.Tags[i].VType == model.ValueType_BOOL && sp.Tags[i].VBool) {
					need = true
					break
				}
			}
			if !need {
				continue
			}
			views = views[:0]
			for i := range sp.Tags {
				if keptKey(sp.Tags[i].Key) {
					views = append(views, modelTagView(&sp.Tags[i]))
				}
			}
			if len(views) > 0 {
				f.span(newSpanKey(sp.TraceID.High, sp.TraceID.Low, uint64(sp.SpanID)), views)
			}
		}
	}
	td, err := jaegertranslator.ProtoToTraces(batches)
	if err != nil {
		return td, err
	}
	f.restore(td)
	return td, nil
}

// changed reports whether the translator changes a span's tag k (isTrue:
// a bool tag holding true); most spans carry none, and cost restore
// nothing.
func changed(k string, isTrue bool) bool {
	return k == tagHTTPStatusNew || k == tagStatusCode || (k == tagError && isTrue)
}

// keptKey reports whether restore may need the tag k of a span that has a
// changed tag.
func keptKey(k string) bool {
	switch k {
	case tagHTTPStatusOld, tagHTTPStatusNew, tagError, tagStatusCode:
		return true
	}
	return false
}

func thriftKeys(tags []*jaegerthrift.Tag) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for _, t := range tags {
			if t != nil && !yield(t.GetKey()) {
				return
			}
		}
	}
}

func modelKeys(tags []model.KeyValue) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for i := range tags {
			if !yield(tags[i].Key) {
				return
			}
		}
	}
}

// thriftTagView converts as the translator does (its
// jThriftTagsToInternalAttributes).
func thriftTagView(t *jaegerthrift.Tag) tagView {
	return tagView{
		key:    t.GetKey(),
		isTrue: t.GetVType() == jaegerthrift.TagType_BOOL && t.GetVBool(),
		value: func() pcommon.Value {
			switch t.GetVType() {
			case jaegerthrift.TagType_STRING:
				return pcommon.NewValueStr(t.GetVStr())
			case jaegerthrift.TagType_BOOL:
				return pcommon.NewValueBool(t.GetVBool())
			case jaegerthrift.TagType_LONG:
				return pcommon.NewValueInt(t.GetVLong())
			case jaegerthrift.TagType_DOUBLE:
				return pcommon.NewValueDouble(t.GetVDouble())
			case jaegerthrift.TagType_BINARY:
				v := pcommon.NewValueBytes()
				v.Bytes().FromRaw(t.GetVBinary())
				return v
			}
			return pcommon.NewValueStr(fmt.Sprintf("<Unknown Jaeger TagType %q>", t.GetVType()))
		},
	}
}

// modelTagView converts as the translator does (its
// jTagsToInternalAttributes).
func modelTagView(t *model.KeyValue) tagView {
	return tagView{
		key:    t.Key,
		isTrue: t.GetVType() == model.ValueType_BOOL && t.GetVBool(),
		value: func() pcommon.Value {
			switch t.GetVType() {
			case model.ValueType_STRING:
				return pcommon.NewValueStr(t.GetVStr())
			case model.ValueType_BOOL:
				return pcommon.NewValueBool(t.GetVBool())
			case model.ValueType_INT64:
				return pcommon.NewValueInt(t.GetVInt64())
			case model.ValueType_FLOAT64:
				return pcommon.NewValueDouble(t.GetVFloat64())
			case model.ValueType_BINARY:
				v := pcommon.NewValueBytes()
				v.Bytes().FromRaw(t.GetVBinary())
				return v
			}
			return pcommon.NewValueStr(fmt.Sprintf("<Unknown Jaeger TagType %q>", t.GetVType()))
		},
	}
}

// zipkinTranslator keeps Zipkin's string tags as strings, as Zipkin stores
// them.
var zipkinTranslator = zipkinv2.ToTranslator{ParseStringTags: false}

// zipkinToTraces is zipkinv2's ToTraces with the tags kept as sent.
func zipkinToTraces(spans []*zipkinmodel.SpanModel) (ptrace.Traces, error) {
	var f fixes
	var views []tagView
	for _, sp := range spans {
		if sp == nil {
			continue
		}
		views = views[:0]
		for k, v := range sp.Tags {
			if k == tagError || k == tagStatusCode {
				views = append(views, tagView{key: k, isTrue: v == "true", value: func() pcommon.Value { return pcommon.NewValueStr(v) }})
			}
		}
		if len(views) > 0 {
			f.span(newSpanKey(sp.TraceID.High, sp.TraceID.Low, uint64(sp.ID)), views)
		}
	}
	td, err := zipkinTranslator.ToTraces(spans)
	if err != nil {
		return td, err
	}
	f.restore(td)
	return td, nil
}
