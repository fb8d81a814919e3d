package logstore

import (
	"fmt"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/internal/dict"
)

// The log payload holds what a log record carries beyond its columns,
// built from dict's blocks (attrs is an attribute map with keys as
// dictionary ids, value a tagged value). Layout (unsigned varints unless
// noted):
//
//	version flags eventName attrs droppedAttrs bodyKind [value]
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

// encodeLog writes the payload of lr in buf (emptied) and returns it.
// When e.NeedKey reports true afterwards the payload must not be stored.
func encodeLog(e *dict.Encoder, buf []byte, lr plog.LogRecord) []byte {
	e.Begin(buf)
	e.Uvarint(uint64(lr.Flags()))
	e.Str(lr.EventName())
	e.Attrs(lr.Attributes(), false)
	e.Uvarint(uint64(lr.DroppedAttributesCount()))
	switch body := lr.Body(); body.Type() {
	case pcommon.ValueTypeStr:
		e.Byte(bodyInText)
	case pcommon.ValueTypeEmpty:
		e.Byte(bodyEmpty)
	default:
		e.Byte(bodyValue)
		e.Value(body)
	}
	return e.Payload()
}

// decodeLog fills the payload fields of lr from p; text is the body
// column.
func decodeLog(p []byte, text string, names dict.Names, lr plog.LogRecord) error {
	d, err := dict.NewDecoder(p, names)
	if err != nil {
		return err
	}
	lr.SetFlags(plog.LogRecordFlags(d.Uint32()))
	lr.SetEventName(d.Str())
	d.Attrs(lr.Attributes())
	lr.SetDroppedAttributesCount(d.Uint32())
	kind := d.Bytes(1)
	if err := d.Err(); err != nil {
		return err
	}
	switch kind[0] {
	case bodyInText:
		lr.Body().SetStr(text)
	case bodyEmpty:
	case bodyValue:
		d.Value(lr.Body())
	default:
		d.Fail(fmt.Sprintf("unknown body kind %d", kind[0]))
	}
	return d.Finish()
}

// logBloom is the attr_bloom of a record: its attributes, the top-level
// fields of its body when the body is a map or a JSON object, and the
// bloom of its resource's attributes (res).
func logBloom(lr plog.LogRecord, res uint64) uint64 {
	b := res | dict.AttributesBloom(lr.Attributes())
	switch body := lr.Body(); body.Type() {
	case pcommon.ValueTypeMap:
		b |= dict.AttributesBloom(body.Map())
	case pcommon.ValueTypeStr:
		// A key given twice adds the bits of both values: the filter
		// only narrows, and the exact test keeps the last value.
		storage.EachJSONBodyField(body.Str(), func(k, v string) { b |= dict.BloomMask(k, v) })
	}
	return b
}
