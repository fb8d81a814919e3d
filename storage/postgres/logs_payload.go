package postgres

import (
	"fmt"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/storage"
)

// The log payload uses the span payload's building blocks (attribute keys
// as dictionary ids, interned values, tagged values) for what a log record
// carries beyond its columns. Layout (unsigned varints unless noted):
//
//	version(=1) flags eventName attrs droppedAttrs bodyKind [value]
//
// bodyKind says where the body is: bodyInText (a string body, held by the
// body column itself, so it is never stored twice), bodyEmpty, or
// bodyValue followed by the typed value of a structured body (map, array,
// number...), whose JSON form is what the body column holds.
const (
	bodyInText byte = iota
	bodyEmpty
	bodyValue
)

// encodeLog appends the payload of lr to e.buf (reset first) and returns
// it. When e.needKey is set afterwards the payload must not be stored.
func (e *payloadEncoder) encodeLog(lr plog.LogRecord) []byte {
	e.buf = e.buf[:0]
	e.needKey, e.needValue = false, false
	e.buf = append(e.buf, payloadVersion)
	e.uvarint(uint64(lr.Flags()))
	e.str(lr.EventName())
	e.attrs(lr.Attributes(), false)
	e.uvarint(uint64(lr.DroppedAttributesCount()))
	switch body := lr.Body(); body.Type() {
	case pcommon.ValueTypeStr:
		e.buf = append(e.buf, bodyInText)
	case pcommon.ValueTypeEmpty:
		e.buf = append(e.buf, bodyEmpty)
	default:
		e.buf = append(e.buf, bodyValue)
		e.value(body)
	}
	return e.buf
}

// decodeLog fills the payload fields of lr from p; text is the body
// column.
func decodeLog(p []byte, text string, keys keyNames, lr plog.LogRecord) error {
	if len(p) == 0 || p[0] != payloadVersion {
		return fmt.Errorf("%w: unknown version", errCorruptPayload)
	}
	d := &payloadDecoder{b: p[1:], keys: keys}
	lr.SetFlags(plog.LogRecordFlags(d.u32()))
	lr.SetEventName(d.str())
	d.attrs(lr.Attributes())
	lr.SetDroppedAttributesCount(d.u32())
	kind := d.bytes(1)
	if d.err != nil {
		return d.err
	}
	switch kind[0] {
	case bodyInText:
		lr.Body().SetStr(text)
	case bodyEmpty:
	case bodyValue:
		d.value(lr.Body(), 0)
	default:
		d.fail(fmt.Sprintf("unknown body kind %d", kind[0]))
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

// logBloom is the attr_bloom of a record: its attributes, the top-level
// fields of its body when the body is a map or a JSON object, and the
// bloom of its resource's attributes (res).
func logBloom(lr plog.LogRecord, res uint64) uint64 {
	b := res | attributesBloom(lr.Attributes())
	switch body := lr.Body(); body.Type() {
	case pcommon.ValueTypeMap:
		b |= attributesBloom(body.Map())
	case pcommon.ValueTypeStr:
		for k, v := range storage.JSONBodyFields(body.Str()) {
			b |= bloomMask(k, v)
		}
	}
	return b
}
