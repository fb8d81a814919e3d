package spanstore

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/storage/postgres/internal/dict"
)

// The span payload holds everything about a span that is displayed but
// never filtered on in SQL: attributes, events, links, status message,
// trace state, flags and dropped counts. It is built from dict's blocks
// (attrs is an attribute map with keys as dictionary ids); layout, all
// integers unsigned varints unless noted:
//
//	version flags traceState statusMessage attrs droppedAttrs
//	nEvents { timeOffsetNs(signed) name attrs dropped }* droppedEvents
//	nLinks  { traceID[16] spanID[8] traceState flags attrs dropped }* droppedLinks

// encodeSpan writes the payload of s in buf (emptied) and returns it,
// computing the span's attribute Bloom filter (e.Bloom) on the way. When
// e.NeedKey reports true afterwards the payload must not be stored.
func encodeSpan(e *dict.Encoder, buf []byte, s ptrace.Span) []byte {
	e.Begin(buf)
	e.Uvarint(uint64(s.Flags()))
	e.Str(s.TraceState().AsRaw())
	e.Str(s.Status().Message())
	e.Attrs(s.Attributes(), true)
	e.Uvarint(uint64(s.DroppedAttributesCount()))

	start := int64(s.StartTimestamp())
	events := s.Events()
	e.Uvarint(uint64(events.Len()))
	for i := 0; i < events.Len(); i++ {
		ev := events.At(i)
		e.Varint(int64(ev.Timestamp()) - start)
		e.Str(ev.Name())
		e.Attrs(ev.Attributes(), false)
		e.Uvarint(uint64(ev.DroppedAttributesCount()))
	}
	e.Uvarint(uint64(s.DroppedEventsCount()))

	links := s.Links()
	e.Uvarint(uint64(links.Len()))
	for i := 0; i < links.Len(); i++ {
		l := links.At(i)
		tid, sid := l.TraceID(), l.SpanID()
		e.Raw(tid[:])
		e.Raw(sid[:])
		e.Str(l.TraceState().AsRaw())
		e.Uvarint(uint64(l.Flags()))
		e.Attrs(l.Attributes(), false)
		e.Uvarint(uint64(l.DroppedAttributesCount()))
	}
	e.Uvarint(uint64(s.DroppedLinksCount()))
	return e.Payload()
}

// decodeSpan fills the payload fields of s from p. s's start time must be
// set: event times are offsets from it.
func decodeSpan(p []byte, names dict.Names, s ptrace.Span) error {
	d, err := dict.NewDecoder(p, names)
	if err != nil {
		return err
	}
	s.SetFlags(d.Uint32())
	s.TraceState().FromRaw(d.Str())
	s.Status().SetMessage(d.Str())
	d.Attrs(s.Attributes())
	s.SetDroppedAttributesCount(d.Uint32())

	start := int64(s.StartTimestamp())
	n := d.Count()
	events := s.Events()
	events.EnsureCapacity(n)
	for i := 0; i < n && d.Err() == nil; i++ {
		ev := events.AppendEmpty()
		ev.SetTimestamp(pcommon.Timestamp(start + d.Varint()))
		ev.SetName(d.Str())
		d.Attrs(ev.Attributes())
		ev.SetDroppedAttributesCount(d.Uint32())
	}
	s.SetDroppedEventsCount(d.Uint32())

	n = d.Count()
	links := s.Links()
	links.EnsureCapacity(n)
	for i := 0; i < n && d.Err() == nil; i++ {
		l := links.AppendEmpty()
		var tid pcommon.TraceID
		var sid pcommon.SpanID
		copy(tid[:], d.Bytes(16))
		copy(sid[:], d.Bytes(8))
		l.SetTraceID(tid)
		l.SetSpanID(sid)
		l.TraceState().FromRaw(d.Str())
		l.SetFlags(d.Uint32())
		d.Attrs(l.Attributes())
		l.SetDroppedAttributesCount(d.Uint32())
	}
	s.SetDroppedLinksCount(d.Uint32())
	return d.Finish()
}

// searchTag is one key=value of a trace search, resolved against the
// dictionaries: keyID is 0 when no span ever carried the key, valueID is 0
// when the value was never interned for it.
type searchTag struct {
	key, want string
	keyID     uint32
	valueID   uint32
}

// spanAttrMatches reports whether the top-level span attributes of
// payload p hold t.key with t.want as its string form (pdata's AsString),
// without decoding the rest of the span.
func spanAttrMatches(p []byte, t searchTag, names dict.Names) (bool, error) {
	d, err := dict.NewDecoder(p, names)
	if err != nil {
		return false, err
	}
	d.Uvarint()
	d.SkipStr()
	d.SkipStr()
	match := d.AttrEquals(t.keyID, t.valueID, t.want)
	return match, d.Err()
}

// statusMessage returns the status message stored in payload p.
func statusMessage(p []byte) (string, error) {
	d, err := dict.NewDecoder(p, nil)
	if err != nil {
		return "", err
	}
	d.Uvarint()
	d.SkipStr()
	msg := d.Str()
	return msg, d.Err()
}
