package pgcore

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Decoder reads the varint-based encodings Vigil keeps in bytea columns:
// span and log payloads, resources, native histogram samples and chunk
// segments. Integers are unsigned or zig-zag varints, strings and byte
// strings a uvarint length and their bytes, floats their IEEE-754 bits in
// little-endian order.
//
// The first malformed read records an error wrapping ErrCorrupt and every
// later read returns a zero value, so a caller decodes a whole structure
// and checks Err once. No read allocates more than the input can hold:
// lengths and counts beyond the bytes left are errors. Copying a Decoder
// saves its position. Not safe for concurrent use.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder returns a decoder reading b, which it does not copy: byte
// strings it returns share b's memory.
func NewDecoder(b []byte) Decoder { return Decoder{b: b} }

// Err returns the first error, or nil.
func (d *Decoder) Err() error { return d.err }

// Fail records a decoding error, saying what was wrong, unless one was
// already recorded.
func (d *Decoder) Fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
}

// Len returns the number of bytes not yet read.
func (d *Decoder) Len() int { return len(d.b) }

// Peek returns the next byte without reading it; ok is false at the end
// of the input or after an error.
func (d *Decoder) Peek() (b byte, ok bool) {
	if d.err != nil || len(d.b) == 0 {
		return 0, false
	}
	return d.b[0], true
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if p := d.Bytes(1); p != nil {
		return p[0]
	}
	return 0
}

// Bytes reads n bytes.
func (d *Decoder) Bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.Fail("length beyond end")
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.Fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Varint reads a zig-zag signed varint.
func (d *Decoder) Varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.Fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Uint32 reads an unsigned varint that must fit in 32 bits.
func (d *Decoder) Uint32() uint32 {
	v := d.Uvarint()
	if v > math.MaxUint32 {
		d.Fail("value out of range")
	}
	return uint32(v)
}

// Count reads an element count and rejects counts that could not possibly
// fit in the rest of the input (every element takes at least one byte), so
// a corrupt count cannot trigger a huge allocation.
func (d *Decoder) Count() int {
	v := d.Uvarint()
	if v > uint64(len(d.b)) {
		d.Fail("count beyond end")
		return 0
	}
	return int(v)
}

// Str reads a length-prefixed string.
func (d *Decoder) Str() string { return string(d.Bytes(d.Uvarint())) }

// SkipStr moves past a length-prefixed string.
func (d *Decoder) SkipStr() { d.Bytes(d.Uvarint()) }

// Float64 reads the eight little-endian bytes of an IEEE-754 double.
func (d *Decoder) Float64() float64 {
	b := d.Bytes(8)
	if b == nil {
		return 0
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b))
}

// Finish records an error if bytes remain unread, and returns Err.
func (d *Decoder) Finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.Fail("trailing bytes")
	}
	return d.err
}
