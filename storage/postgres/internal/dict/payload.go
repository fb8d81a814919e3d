package dict

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// A payload is the compact binary encoding of what a span or a log record
// carries beyond its columns. This file holds the building blocks both
// layouts use (see spanstore and logstore for the layouts themselves):
// integers are varints, strings a uvarint length and their bytes, and an
// attribute map is
//
//	n { keyID value }*
//
// where keyID is the attribute key's id in the attribute_keys dictionary,
// which is what keeps ten attributes in roughly a hundred bytes. A value
// is a one-byte tag followed by its data; nested maps inside values carry
// their keys as plain strings. A top-level string value of a
// low-cardinality key may be interned: tag tagInterned followed by its id
// in the attribute_values dictionary.
const PayloadVersion = 1

// Interning policy: string values up to MaxInternLen bytes of keys that
// have shown at most MaxInternPerKey distinct values.
const (
	MaxInternLen    = 64
	MaxInternPerKey = 2000
)

// Value tags.
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

// valueKey identifies an interned value: a key id and the string.
type valueKey struct {
	key   uint32
	value string
}

// Source gives the encoder the dictionary ids it knows. A missing key or
// a missing internable value makes the encoding incomplete: the caller
// resolves what is missing (Dictionaries.Resolve) and encodes the item
// again.
type Source interface {
	KeyID(key string) (uint32, bool)
	// ServiceKeyBits is a bitset of the key ids recorded for a service.
	ServiceKeyBits(service int32) []uint64
	ValueID(key uint32, value string) (uint32, bool)
	Internable(key string) bool
}

// stringPair is an attribute key and a string value, before the key has
// an id.
type stringPair struct{ key, value string }

// serviceKey records that a service's spans carry an attribute key.
type serviceKey struct {
	service int32
	key     uint32
}

// Missing collects the dictionary entries an encoding pass lacked. Not
// safe for concurrent use.
type Missing struct {
	keys        map[string]struct{}
	values      map[stringPair]struct{}
	serviceKeys map[serviceKey]struct{}
}

// NewMissing returns an empty set of missing dictionary entries.
func NewMissing() *Missing {
	return &Missing{keys: map[string]struct{}{}, values: map[stringPair]struct{}{}, serviceKeys: map[serviceKey]struct{}{}}
}

// Arena hands out payload buffers from one backing array per batch: far
// fewer allocations than one slice per item. Use it as
// p := a.Keep(encode(enc, a.Next(), item)).
type Arena struct {
	b     []byte
	chunk int // size of each backing array
}

// NewArena returns an arena allocating chunk bytes at a time.
func NewArena(chunk int) *Arena {
	return &Arena{b: make([]byte, 0, chunk), chunk: chunk}
}

// Next returns the free tail of the current backing array, empty.
func (a *Arena) Next() []byte { return a.b[len(a.b):] }

// Keep claims p, which the encoder appended to the slice from Next, and
// returns it with its capacity cut so later appends cannot reach it. When
// the encoder outgrew the tail (p was reallocated), the next payloads go to
// a fresh backing array.
func (a *Arena) Keep(p []byte) []byte {
	if cap(p) == cap(a.b[len(a.b):]) {
		a.b = a.b[:len(a.b)+len(p)]
	} else {
		a.b = make([]byte, 0, max(len(p), a.chunk))
	}
	return p[:len(p):len(p)]
}

// Encoder writes payloads. Not safe for concurrent use.
type Encoder struct {
	buf  []byte
	src  Source
	miss *Missing
	// service is the service of the spans being encoded and serviceBits
	// the keys known for it (set both with SetService); span-level keys
	// not in it are recorded in miss.serviceKeys.
	service     int32
	serviceBits []uint64
	// After a payload: needKey is set when a key had no id (the payload
	// is unusable until the item is encoded again with the key known);
	// needValue when an internable value had no id (the payload is valid,
	// but encoding again after interning makes it smaller). bloom is the
	// Bloom filter of the top-level attributes.
	needKey, needValue bool
	bloom              uint64
	// tags holds a Tag per top-level attribute (two for a value with a
	// second Jaeger form), when recording is on (RecordTags).
	tags       []Tag
	recordTags bool
}

// Tag is one top-level attribute of a payload as trace search indexes
// it: the hash of its key (KeyHash) and of key=value (TagHash).
type Tag struct {
	Key, Pair uint64
}

// RecordTags makes the encoder record the Tags of each payload's
// top-level attributes (Tags).
func (e *Encoder) RecordTags() { e.recordTags = true }

// Tags returns the tags of the payload written since Begin, when
// RecordTags is on. The slice is reused by the next Begin.
func (e *Encoder) Tags() []Tag { return e.tags }

// addTag adds key=value to the Bloom filter and, when recording, to the
// tags.
func (e *Encoder) addTag(keyHash uint64, value string) {
	h := pairHash(keyHash, value)
	e.bloom |= bloomOf(h)
	if e.recordTags {
		e.tags = append(e.tags, Tag{Key: keyHash, Pair: h})
	}
}

// NewEncoder returns an encoder that takes ids from src and records what
// src lacks in miss.
func NewEncoder(src Source, miss *Missing) *Encoder {
	return &Encoder{src: src, miss: miss}
}

// Begin starts a payload in buf, emptied: it writes the version byte and
// clears what the previous payload reported.
func (e *Encoder) Begin(buf []byte) {
	e.buf = append(buf[:0], PayloadVersion)
	e.needKey, e.needValue = false, false
	e.bloom = 0
	e.tags = e.tags[:0]
}

// Payload returns the payload written since Begin.
func (e *Encoder) Payload() []byte { return e.buf }

// NeedKey reports whether an attribute key had no id: the payload must not
// be stored; resolve and encode again.
func (e *Encoder) NeedKey() bool { return e.needKey }

// NeedValue reports whether an internable value had no id: the payload is
// valid, but encoding again after resolving makes it smaller.
func (e *Encoder) NeedValue() bool { return e.needValue }

// Bloom returns the Bloom filter of the top-level attributes written (see
// BloomMask).
func (e *Encoder) Bloom() uint64 { return e.bloom }

// SetService sets the service of the spans encoded next.
func (e *Encoder) SetService(service int32) {
	e.service = service
	e.serviceBits = e.src.ServiceKeyBits(service)
}

// Byte writes one byte.
func (e *Encoder) Byte(b byte) { e.buf = append(e.buf, b) }

// Raw writes p as it is.
func (e *Encoder) Raw(p []byte) { e.buf = append(e.buf, p...) }

// Uvarint writes an unsigned varint.
func (e *Encoder) Uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }

// Varint writes a signed varint.
func (e *Encoder) Varint(v int64) { e.buf = binary.AppendVarint(e.buf, v) }

// Str writes a length-prefixed string.
func (e *Encoder) Str(s string) {
	e.Uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// Attrs writes one attribute map with its keys as dictionary ids. With
// top set (a span's own attributes) it adds the entries to the Bloom
// filter and records the keys the service is not known to carry.
func (e *Encoder) Attrs(m pcommon.Map, top bool) {
	e.Uvarint(uint64(m.Len()))
	m.Range(func(k string, v pcommon.Value) bool {
		kid, known := e.src.KeyID(k)
		if !known {
			e.needKey = true
			e.miss.keys[k] = struct{}{}
		} else if top && (int(kid/64) >= len(e.serviceBits) || e.serviceBits[kid/64]&(1<<(kid%64)) == 0) {
			e.miss.serviceKeys[serviceKey{e.service, kid}] = struct{}{}
		}
		e.Uvarint(uint64(kid))
		var kh uint64
		if top {
			kh = KeyHash(k)
		}
		if v.Type() != pcommon.ValueTypeStr {
			if top {
				e.addTag(kh, v.AsString())
				if alt, ok := JaegerForm(v); ok {
					e.addTag(kh, alt)
				}
			}
			e.Value(v)
			return true
		}
		str := v.Str()
		if top {
			e.addTag(kh, str)
		}
		if known {
			if id, ok := e.src.ValueID(kid, str); ok {
				e.buf = append(e.buf, tagInterned)
				e.Uvarint(uint64(id))
				return true
			}
		}
		// attribute_values is text: values holding NUL stay inline.
		if len(str) <= MaxInternLen && strings.IndexByte(str, 0) < 0 && e.src.Internable(k) {
			e.needValue = true
			e.miss.values[stringPair{k, str}] = struct{}{}
		}
		e.Value(v)
		return true
	})
}

// Value writes one tagged value; maps inside it keep their keys as
// strings.
func (e *Encoder) Value(v pcommon.Value) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		e.buf = append(e.buf, tagString)
		e.Str(v.Str())
	case pcommon.ValueTypeBool:
		if v.Bool() {
			e.buf = append(e.buf, tagTrue)
		} else {
			e.buf = append(e.buf, tagFalse)
		}
	case pcommon.ValueTypeInt:
		e.buf = append(e.buf, tagInt)
		e.Varint(v.Int())
	case pcommon.ValueTypeDouble:
		e.buf = append(e.buf, tagDouble)
		e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(v.Double()))
	case pcommon.ValueTypeBytes:
		e.buf = append(e.buf, tagBytes)
		b := v.Bytes().AsRaw()
		e.Uvarint(uint64(len(b)))
		e.buf = append(e.buf, b...)
	case pcommon.ValueTypeSlice:
		e.buf = append(e.buf, tagSlice)
		s := v.Slice()
		e.Uvarint(uint64(s.Len()))
		for i := 0; i < s.Len(); i++ {
			e.Value(s.At(i))
		}
	case pcommon.ValueTypeMap:
		e.buf = append(e.buf, tagMap)
		e.plainMap(v.Map())
	default:
		e.buf = append(e.buf, tagEmpty)
	}
}

// plainMap writes a map with its keys as strings.
func (e *Encoder) plainMap(m pcommon.Map) {
	e.Uvarint(uint64(m.Len()))
	m.Range(func(k string, v pcommon.Value) bool {
		e.Str(k)
		e.Value(v)
		return true
	})
}

// Names resolves attribute key and interned value ids while decoding.
type Names interface {
	KeyName(id uint32) (string, bool)
	ValueName(id uint32) (string, bool)
}

// Recorder is a Names that records the ids asked for and answers every
// one: decoding payloads with it collects the ids Dictionaries.LoadNames
// must fetch (a corrupt payload only adds fewer of them). Not safe for
// concurrent use.
type Recorder struct{ keys, values map[uint32]struct{} }

// NewRecorder returns a Recorder that has recorded nothing.
func NewRecorder() *Recorder {
	return &Recorder{keys: map[uint32]struct{}{}, values: map[uint32]struct{}{}}
}

// KeyName records id.
func (r *Recorder) KeyName(id uint32) (string, bool) {
	r.keys[id] = struct{}{}
	return "", true
}

// ValueName records id.
func (r *Recorder) ValueName(id uint32) (string, bool) {
	r.values[id] = struct{}{}
	return "", true
}

// Decoder reads payloads: the building blocks of pgcore.Decoder, and
// attribute maps and tagged values with their ids resolved through Names.
type Decoder struct {
	pgcore.Decoder
	names Names
}

// NewDecoder returns a decoder of payload p, after its version byte;
// names may be nil when no attribute map is read.
func NewDecoder(p []byte, names Names) (Decoder, error) {
	if len(p) == 0 || p[0] != PayloadVersion {
		return Decoder{}, fmt.Errorf("%w: unknown version", pgcore.ErrCorrupt)
	}
	return Decoder{Decoder: pgcore.NewDecoder(p[1:]), names: names}, nil
}

// Attrs reads an attribute map written by Encoder.Attrs into m.
func (d *Decoder) Attrs(m pcommon.Map) {
	n := d.Count()
	m.EnsureCapacity(n)
	for i := 0; i < n && d.Err() == nil; i++ {
		id := d.Uint32()
		k, ok := d.names.KeyName(id)
		if !ok && d.Err() == nil {
			d.Fail(fmt.Sprintf("unknown attribute key id %d", id))
			return
		}
		if tag, ok := d.Peek(); ok && tag == tagInterned {
			d.Byte()
			vid := d.Uint32()
			v, ok := d.names.ValueName(vid)
			if !ok && d.Err() == nil {
				d.Fail(fmt.Sprintf("unknown attribute value id %d", vid))
				return
			}
			m.PutStr(k, v)
			continue
		}
		d.value(m.PutEmpty(k), 0)
	}
}

// Value reads a value written by Encoder.Value into v.
func (d *Decoder) Value(v pcommon.Value) { d.value(v, 0) }

func (d *Decoder) value(v pcommon.Value, depth int) {
	if depth > maxNesting {
		d.Fail("nesting too deep")
		return
	}
	tag := d.Bytes(1)
	if d.Err() != nil {
		return
	}
	switch tag[0] {
	case tagEmpty:
	case tagString:
		v.SetStr(d.Str())
	case tagTrue:
		v.SetBool(true)
	case tagFalse:
		v.SetBool(false)
	case tagInt:
		v.SetInt(d.Varint())
	case tagDouble:
		b := d.Bytes(8)
		if d.Err() == nil {
			v.SetDouble(math.Float64frombits(binary.LittleEndian.Uint64(b)))
		}
	case tagBytes:
		v.SetEmptyBytes().FromRaw(d.Bytes(d.Uvarint()))
	case tagSlice:
		n := d.Count()
		s := v.SetEmptySlice()
		s.EnsureCapacity(n)
		for i := 0; i < n && d.Err() == nil; i++ {
			d.value(s.AppendEmpty(), depth+1)
		}
	case tagMap:
		n := d.Count()
		m := v.SetEmptyMap()
		m.EnsureCapacity(n)
		for i := 0; i < n && d.Err() == nil; i++ {
			k := d.Str()
			d.value(m.PutEmpty(k), depth+1)
		}
	default:
		d.Fail(fmt.Sprintf("unknown value tag %d", tag[0]))
	}
}

// plainMap reads a map written by Encoder.plainMap into m.
func (d *Decoder) plainMap(m pcommon.Map) {
	n := d.Count()
	m.EnsureCapacity(n)
	for i := 0; i < n && d.Err() == nil; i++ {
		k := d.Str()
		d.value(m.PutEmpty(k), 0)
	}
}

// AttrEquals reads an attribute map up to the entry of keyID and reports
// whether that entry's value has want as its string form (pdata's
// AsString, or Jaeger's: see JaegerForm), without decoding the other entries; valueID is want's
// interned id for the key, 0 when it was never interned. Check Err
// afterwards.
func (d *Decoder) AttrEquals(keyID, valueID uint32, want string) bool {
	n := d.Count()
	for i := 0; i < n && d.Err() == nil; i++ {
		if d.Uint32() != keyID {
			d.skipValue(0)
			continue
		}
		save := *d
		tag := d.Bytes(1)
		if d.Err() != nil {
			break
		}
		switch tag[0] {
		case tagInterned:
			return valueID != 0 && d.Uint32() == valueID
		case tagString:
			return string(d.Bytes(d.Uvarint())) == want
		default:
			*d = save
			v := pcommon.NewValueEmpty()
			d.value(v, 0)
			if d.Err() != nil {
				return false
			}
			if v.AsString() == want {
				return true
			}
			alt, ok := JaegerForm(v)
			return ok && alt == want
		}
	}
	return false
}

// skipValue moves past one encoded value.
func (d *Decoder) skipValue(depth int) {
	if depth > maxNesting {
		d.Fail("nesting too deep")
		return
	}
	tag := d.Bytes(1)
	if d.Err() != nil {
		return
	}
	switch tag[0] {
	case tagEmpty, tagTrue, tagFalse:
	case tagString, tagBytes:
		d.SkipStr()
	case tagInt:
		d.Varint()
	case tagInterned:
		d.Uvarint()
	case tagDouble:
		d.Bytes(8)
	case tagSlice:
		n := d.Count()
		for i := 0; i < n && d.Err() == nil; i++ {
			d.skipValue(depth + 1)
		}
	case tagMap:
		n := d.Count()
		for i := 0; i < n && d.Err() == nil; i++ {
			d.SkipStr()
			d.skipValue(depth + 1)
		}
	default:
		d.Fail(fmt.Sprintf("unknown value tag %d", tag[0]))
	}
}
