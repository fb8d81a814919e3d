package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The span payload is a compact binary encoding of everything about a span
// that is displayed but never filtered on in SQL: attributes, events, links,
// status message, trace state, flags and dropped counts. Top-level attribute
// keys are replaced by ids from the attribute_keys dictionary, which is what
// keeps ten attributes in roughly a hundred bytes. Layout (all integers are
// unsigned varints unless noted):
//
//	version(=1) flags traceState statusMessage attrs droppedAttrs
//	nEvents { timeOffsetNs(signed) name attrs dropped }* droppedEvents
//	nLinks  { traceID[16] spanID[8] traceState flags attrs dropped }* droppedLinks
//
// attrs is n { keyID value }*, a value is a one-byte tag followed by its
// data; nested maps inside values carry their keys as plain strings. A
// top-level string value of a low-cardinality key may be interned: tag
// tagInterned followed by its id in the attribute_values dictionary.
const payloadVersion = 1

// Interning policy: string values up to maxInternLen bytes of keys that
// have shown at most maxInternPerKey distinct values.
const (
	maxInternLen    = 64
	maxInternPerKey = 2000
)

const (
	tagEmpty byte = iota
	tagString
	tagTrue
	tagFalse
	tagInt
	tagDouble
	tagBytes
	tagSlice
	tagMap
	tagInterned
)

// maxNesting bounds the depth of nested values accepted by the decoder, so a
// corrupt payload cannot exhaust the stack.
const maxNesting = 64

var errCorruptPayload = errors.New("corrupt span payload")

// valueKey identifies an interned value: a key id and the string.
type valueKey struct {
	key   uint32
	value string
}

// dictSource gives the encoder the dictionary ids it knows. A missing key
// or a missing internable value makes the encoding incomplete: the caller
// resolves what is missing and encodes the span again.
type dictSource interface {
	keyID(key string) (uint32, bool)
	// serviceKeyBits is a bitset of the key ids recorded for a service.
	serviceKeyBits(service int32) []uint64
	valueID(key uint32, value string) (uint32, bool)
	internable(key string) bool
}

// stringPair is an attribute key and a string value, before the key has
// an id.
type stringPair struct{ key, value string }

// missing collects the dictionary entries an encoding lacked.
type missing struct {
	keys        map[string]struct{}
	values      map[stringPair]struct{}
	serviceKeys map[serviceKey]struct{}
}

// serviceKey records that a service's spans carry an attribute key.
type serviceKey struct {
	service int32
	key     uint32
}

// newMissing returns an empty set of missing dictionary entries.
func newMissing() *missing {
	return &missing{keys: map[string]struct{}{}, values: map[stringPair]struct{}{}, serviceKeys: map[serviceKey]struct{}{}}
}

// payloadArena hands out payload buffers from one backing array per batch:
// far fewer allocations than one slice per item. Use it as
// enc.buf = a.next(); p := a.keep(enc.encodeSpan(sp)).
type payloadArena struct {
	b     []byte
	chunk int // size of each backing array
}

func newPayloadArena(chunk int) *payloadArena {
	return &payloadArena{b: make([]byte, 0, chunk), chunk: chunk}
}

// next returns the free tail of the current backing array, empty.
func (a *payloadArena) next() []byte { return a.b[len(a.b):] }

// keep claims p, which the encoder appended to the slice from next, and
// returns it with its capacity cut so later appends cannot reach it. When
// the encoder outgrew the tail (p was reallocated), the next payloads go to
// a fresh backing array.
func (a *payloadArena) keep(p []byte) []byte {
	if cap(p) == cap(a.b[len(a.b):]) {
		a.b = a.b[:len(a.b)+len(p)]
	} else {
		a.b = make([]byte, 0, max(len(p), a.chunk))
	}
	return p[:len(p):len(p)]
}

type payloadEncoder struct {
	buf  []byte
	dict dictSource
	miss *missing
	// service is the service of the spans being encoded and serviceBits
	// the keys known for it (set both with setService); span-level keys
	// not in it are recorded in miss.serviceKeys.
	service     int32
	serviceBits []uint64
	// After encodeSpan: needKey is set when a key had no id (the payload
	// is unusable until the span is encoded again with the key known);
	// needValue when an internable value had no id (the payload is valid,
	// but encoding again after interning makes it smaller). bloom is the
	// span's tag_bloom.
	needKey, needValue bool
	bloom              uint64
}

func (e *payloadEncoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *payloadEncoder) varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }

func (e *payloadEncoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// setService sets the service of the spans encoded next.
func (e *payloadEncoder) setService(service int32) {
	e.service = service
	e.serviceBits = e.dict.serviceKeyBits(service)
}

// encodeSpan appends the payload of s to e.buf (reset first) and returns
// it, computing the span's attribute Bloom filter (e.bloom) on the way.
// When e.needKey is set afterwards the payload must not be stored.
func (e *payloadEncoder) encodeSpan(s ptrace.Span) []byte {
	e.buf = e.buf[:0]
	e.needKey, e.needValue = false, false
	e.bloom = 0
	e.buf = append(e.buf, payloadVersion)
	e.uvarint(uint64(s.Flags()))
	e.str(s.TraceState().AsRaw())
	e.str(s.Status().Message())
	e.attrs(s.Attributes(), true)
	e.uvarint(uint64(s.DroppedAttributesCount()))

	start := int64(s.StartTimestamp())
	events := s.Events()
	e.uvarint(uint64(events.Len()))
	for i := 0; i < events.Len(); i++ {
		ev := events.At(i)
		e.varint(int64(ev.Timestamp()) - start)
		e.str(ev.Name())
		e.attrs(ev.Attributes(), false)
		e.uvarint(uint64(ev.DroppedAttributesCount()))
	}
	e.uvarint(uint64(s.DroppedEventsCount()))

	links := s.Links()
	e.uvarint(uint64(links.Len()))
	for i := 0; i < links.Len(); i++ {
		l := links.At(i)
		tid, sid := l.TraceID(), l.SpanID()
		e.buf = append(e.buf, tid[:]...)
		e.buf = append(e.buf, sid[:]...)
		e.str(l.TraceState().AsRaw())
		e.uvarint(uint64(l.Flags()))
		e.attrs(l.Attributes(), false)
		e.uvarint(uint64(l.DroppedAttributesCount()))
	}
	e.uvarint(uint64(s.DroppedLinksCount()))
	return e.buf
}

// attrs encodes one attribute map; bloom adds its entries to e.bloom.
func (e *payloadEncoder) attrs(m pcommon.Map, bloom bool) {
	e.uvarint(uint64(m.Len()))
	m.Range(func(k string, v pcommon.Value) bool {
		kid, known := e.dict.keyID(k)
		if !known {
			e.needKey = true
			e.miss.keys[k] = struct{}{}
		} else if bloom && (int(kid/64) >= len(e.serviceBits) || e.serviceBits[kid/64]&(1<<(kid%64)) == 0) {
			e.miss.serviceKeys[serviceKey{e.service, kid}] = struct{}{}
		}
		e.uvarint(uint64(kid))
		if v.Type() != pcommon.ValueTypeStr {
			if bloom {
				e.bloom |= bloomMask(k, v.AsString())
			}
			e.value(v)
			return true
		}
		str := v.Str()
		if bloom {
			e.bloom |= bloomMask(k, str)
		}
		if known {
			if id, ok := e.dict.valueID(kid, str); ok {
				e.buf = append(e.buf, tagInterned)
				e.uvarint(uint64(id))
				return true
			}
		}
		// attribute_values is text: values holding NUL stay inline.
		if len(str) <= maxInternLen && strings.IndexByte(str, 0) < 0 && e.dict.internable(k) {
			e.needValue = true
			e.miss.values[stringPair{k, str}] = struct{}{}
		}
		e.value(v)
		return true
	})
}

func (e *payloadEncoder) value(v pcommon.Value) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		e.buf = append(e.buf, tagString)
		e.str(v.Str())
	case pcommon.ValueTypeBool:
		if v.Bool() {
			e.buf = append(e.buf, tagTrue)
		} else {
			e.buf = append(e.buf, tagFalse)
		}
	case pcommon.ValueTypeInt:
		e.buf = append(e.buf, tagInt)
		e.varint(v.Int())
	case pcommon.ValueTypeDouble:
		e.buf = append(e.buf, tagDouble)
		e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(v.Double()))
	case pcommon.ValueTypeBytes:
		e.buf = append(e.buf, tagBytes)
		b := v.Bytes().AsRaw()
		e.uvarint(uint64(len(b)))
		e.buf = append(e.buf, b...)
	case pcommon.ValueTypeSlice:
		e.buf = append(e.buf, tagSlice)
		s := v.Slice()
		e.uvarint(uint64(s.Len()))
		for i := 0; i < s.Len(); i++ {
			e.value(s.At(i))
		}
	case pcommon.ValueTypeMap:
		e.buf = append(e.buf, tagMap)
		m := v.Map()
		e.uvarint(uint64(m.Len()))
		m.Range(func(k string, mv pcommon.Value) bool {
			e.str(k)
			e.value(mv)
			return true
		})
	default:
		e.buf = append(e.buf, tagEmpty)
	}
}

// keyNames resolves attribute key and interned value ids while decoding.
type keyNames interface {
	keyName(id uint32) (string, bool)
	valueName(id uint32) (string, bool)
}

type payloadDecoder struct {
	b    []byte
	keys keyNames
	err  error
}

func (d *payloadDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errCorruptPayload, what)
	}
}

func (d *payloadDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *payloadDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *payloadDecoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length beyond end")
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *payloadDecoder) str() string { return string(d.bytes(d.uvarint())) }

func (d *payloadDecoder) u32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.fail("value out of range")
	}
	return uint32(v)
}

// count reads an element count and rejects counts that could not possibly
// fit in the rest of the payload (every element takes at least one byte), so
// a corrupt count cannot trigger a huge allocation.
func (d *payloadDecoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.b)) {
		d.fail("count beyond end")
		return 0
	}
	return int(v)
}

// decodeSpan fills the payload fields of s from p.
func decodeSpan(p []byte, keys keyNames, s ptrace.Span) error {
	d := &payloadDecoder{b: p, keys: keys}
	if len(p) == 0 || p[0] != payloadVersion {
		return fmt.Errorf("%w: unknown version", errCorruptPayload)
	}
	d.b = d.b[1:]
	s.SetFlags(d.u32())
	s.TraceState().FromRaw(d.str())
	s.Status().SetMessage(d.str())
	d.attrs(s.Attributes())
	s.SetDroppedAttributesCount(d.u32())

	start := int64(s.StartTimestamp())
	n := d.count()
	events := s.Events()
	events.EnsureCapacity(n)
	for i := 0; i < n && d.err == nil; i++ {
		ev := events.AppendEmpty()
		ev.SetTimestamp(pcommon.Timestamp(start + d.varint()))
		ev.SetName(d.str())
		d.attrs(ev.Attributes())
		ev.SetDroppedAttributesCount(d.u32())
	}
	s.SetDroppedEventsCount(d.u32())

	n = d.count()
	links := s.Links()
	links.EnsureCapacity(n)
	for i := 0; i < n && d.err == nil; i++ {
		l := links.AppendEmpty()
		var tid pcommon.TraceID
		var sid pcommon.SpanID
		copy(tid[:], d.bytes(16))
		copy(sid[:], d.bytes(8))
		l.SetTraceID(tid)
		l.SetSpanID(sid)
		l.TraceState().FromRaw(d.str())
		l.SetFlags(d.u32())
		d.attrs(l.Attributes())
		l.SetDroppedAttributesCount(d.u32())
	}
	s.SetDroppedLinksCount(d.u32())
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

func (d *payloadDecoder) attrs(m pcommon.Map) {
	n := d.count()
	m.EnsureCapacity(n)
	for i := 0; i < n && d.err == nil; i++ {
		id := d.u32()
		k, ok := d.keys.keyName(id)
		if !ok && d.err == nil {
			d.fail(fmt.Sprintf("unknown attribute key id %d", id))
			return
		}
		if len(d.b) > 0 && d.b[0] == tagInterned {
			d.b = d.b[1:]
			vid := d.u32()
			v, ok := d.keys.valueName(vid)
			if !ok && d.err == nil {
				d.fail(fmt.Sprintf("unknown attribute value id %d", vid))
				return
			}
			m.PutStr(k, v)
			continue
		}
		d.value(m.PutEmpty(k), 0)
	}
}

func (d *payloadDecoder) value(v pcommon.Value, depth int) {
	if depth > maxNesting {
		d.fail("nesting too deep")
		return
	}
	tag := d.bytes(1)
	if d.err != nil {
		return
	}
	switch tag[0] {
	case tagEmpty:
	case tagString:
		v.SetStr(d.str())
	case tagTrue:
		v.SetBool(true)
	case tagFalse:
		v.SetBool(false)
	case tagInt:
		v.SetInt(d.varint())
	case tagDouble:
		b := d.bytes(8)
		if d.err == nil {
			v.SetDouble(math.Float64frombits(binary.LittleEndian.Uint64(b)))
		}
	case tagBytes:
		v.SetEmptyBytes().FromRaw(d.bytes(d.uvarint()))
	case tagSlice:
		n := d.count()
		s := v.SetEmptySlice()
		s.EnsureCapacity(n)
		for i := 0; i < n && d.err == nil; i++ {
			d.value(s.AppendEmpty(), depth+1)
		}
	case tagMap:
		n := d.count()
		m := v.SetEmptyMap()
		m.EnsureCapacity(n)
		for i := 0; i < n && d.err == nil; i++ {
			k := d.str()
			d.value(m.PutEmpty(k), depth+1)
		}
	default:
		d.fail(fmt.Sprintf("unknown value tag %d", tag[0]))
	}
}

// encodeResource encodes a resource and an instrumentation scope for the
// resources dictionary. Keys here are plain strings: a resource row is
// written once, not once per span.
func encodeResource(res pcommon.Resource, scope pcommon.InstrumentationScope) (resBytes, scopeBytes []byte) {
	e := &payloadEncoder{}
	e.buf = append(e.buf, payloadVersion)
	e.plainMap(res.Attributes())
	e.uvarint(uint64(res.DroppedAttributesCount()))
	resBytes = e.buf

	e = &payloadEncoder{}
	e.buf = append(e.buf, payloadVersion)
	e.str(scope.Name())
	e.str(scope.Version())
	e.plainMap(scope.Attributes())
	e.uvarint(uint64(scope.DroppedAttributesCount()))
	return resBytes, e.buf
}

func (e *payloadEncoder) plainMap(m pcommon.Map) {
	e.uvarint(uint64(m.Len()))
	m.Range(func(k string, v pcommon.Value) bool {
		e.str(k)
		e.value(v)
		return true
	})
}

// decodeResource is the inverse of encodeResource.
func decodeResource(resBytes, scopeBytes []byte, res pcommon.Resource, scope pcommon.InstrumentationScope) error {
	if len(resBytes) == 0 || resBytes[0] != payloadVersion || len(scopeBytes) == 0 || scopeBytes[0] != payloadVersion {
		return fmt.Errorf("%w: unknown resource version", errCorruptPayload)
	}
	d := &payloadDecoder{b: resBytes[1:]}
	d.plainMap(res.Attributes())
	res.SetDroppedAttributesCount(d.u32())
	if d.err != nil {
		return d.err
	}
	d = &payloadDecoder{b: scopeBytes[1:]}
	scope.SetName(d.str())
	scope.SetVersion(d.str())
	d.plainMap(scope.Attributes())
	scope.SetDroppedAttributesCount(d.u32())
	return d.err
}

func (d *payloadDecoder) plainMap(m pcommon.Map) {
	n := d.count()
	m.EnsureCapacity(n)
	for i := 0; i < n && d.err == nil; i++ {
		k := d.str()
		d.value(m.PutEmpty(k), 0)
	}
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
func spanAttrMatches(p []byte, t searchTag, names keyNames) (match bool, err error) {
	if len(p) == 0 || p[0] != payloadVersion {
		return false, fmt.Errorf("%w: unknown version", errCorruptPayload)
	}
	d := &payloadDecoder{b: p[1:], keys: names}
	d.uvarint()
	d.skipStr()
	d.skipStr()
	n := d.count()
	for i := 0; i < n && d.err == nil; i++ {
		if d.u32() != t.keyID {
			d.skipValue(0)
			continue
		}
		save := d.b
		tag := d.bytes(1)
		if d.err != nil {
			break
		}
		switch tag[0] {
		case tagInterned:
			return t.valueID != 0 && d.u32() == t.valueID, d.err
		case tagString:
			return string(d.bytes(d.uvarint())) == t.want, d.err
		default:
			d.b = save
			v := pcommon.NewValueEmpty()
			d.value(v, 0)
			return d.err == nil && v.AsString() == t.want, d.err
		}
	}
	return false, d.err
}

// statusMessage returns the status message stored in payload p.
func statusMessage(p []byte) (string, error) {
	if len(p) == 0 || p[0] != payloadVersion {
		return "", fmt.Errorf("%w: unknown version", errCorruptPayload)
	}
	d := &payloadDecoder{b: p[1:]}
	d.uvarint()
	d.skipStr()
	msg := d.str()
	return msg, d.err
}

func (d *payloadDecoder) skipStr() { d.bytes(d.uvarint()) }

// skipValue moves past one encoded value.
func (d *payloadDecoder) skipValue(depth int) {
	if depth > maxNesting {
		d.fail("nesting too deep")
		return
	}
	tag := d.bytes(1)
	if d.err != nil {
		return
	}
	switch tag[0] {
	case tagEmpty, tagTrue, tagFalse:
	case tagString, tagBytes:
		d.skipStr()
	case tagInt:
		d.varint()
	case tagInterned:
		d.uvarint()
	case tagDouble:
		d.bytes(8)
	case tagSlice:
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			d.skipValue(depth + 1)
		}
	case tagMap:
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			d.skipStr()
			d.skipValue(depth + 1)
		}
	default:
		d.fail(fmt.Sprintf("unknown value tag %d", tag[0]))
	}
}
