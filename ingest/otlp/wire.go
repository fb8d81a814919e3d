package otlp

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/vigil-obs/vigil/ingest"
)

// maxWalkDepth bounds the recursion of locateProtoError; attribute values
// are stopped well before it by ingest.MaxAttributeValueDepth.
const maxWalkDepth = 256

// anyValueName is the message whose nesting makes attribute values deep.
const anyValueName protoreflect.FullName = "opentelemetry.proto.common.v1.AnyValue"

// locateProtoError walks data as a message of type md and describes the
// first wire-format problem with the path of the field it is in, e.g.
// "resource_spans[0].scope_spans[0].spans[2].trace_id: 3 bytes, want 16
// (byte 41)". pdata's decoder reports problems without saying where; this
// runs only after it failed, so its cost does not matter. It returns ""
// when it finds nothing wrong.
func locateProtoError(data []byte, md protoreflect.MessageDescriptor) string {
	return walkMessage(data, md, "", 0, 0, 0)
}

// walkMessage walks b as a message of type md found at path, at byte base of
// the request, depth messages and valueDepth attribute values deep.
func walkMessage(b []byte, md protoreflect.MessageDescriptor, path string, base, depth, valueDepth int) string {
	if depth > maxWalkDepth {
		return at(path, base, fmt.Sprintf("messages nested deeper than %d levels", maxWalkDepth))
	}
	if md.FullName() == anyValueName {
		valueDepth++
		if valueDepth > ingest.MaxAttributeValueDepth {
			return at(path, base, fmt.Sprintf("attribute value nested deeper than %d levels", ingest.MaxAttributeValueDepth))
		}
	}
	seen := map[protowire.Number]int{}
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return at(path, base+off, "invalid field tag: "+protowire.ParseError(n).Error())
		}
		fd := md.Fields().ByNumber(num)
		var fieldPath string
		if fd != nil {
			fieldPath = join(path, string(fd.Name()))
			if fd.IsList() {
				fieldPath += "[" + strconv.Itoa(seen[num]) + "]"
				seen[num]++
			}
		} else {
			fieldPath = join(path, "field "+strconv.Itoa(int(num)))
		}
		valOff := off + n
		m := protowire.ConsumeFieldValue(num, typ, b[valOff:])
		if m < 0 {
			return at(fieldPath, base+valOff, protowire.ParseError(m).Error())
		}
		if fd != nil {
			if want, ok := wireTypes(fd); !ok[typ] {
				return at(fieldPath, base+off, fmt.Sprintf("wire type %d, want %d", typ, want))
			}
			if typ == protowire.BytesType {
				v, vn := protowire.ConsumeBytes(b[valOff:])
				if msg := checkBytesField(fd, v, fieldPath, base+valOff+vn-len(v), depth, valueDepth); msg != "" {
					return msg
				}
			}
		}
		off = valOff + m
	}
	return ""
}

// checkBytesField checks a length-delimited field: nested messages are
// walked, and ids must have their OTLP length.
func checkBytesField(fd protoreflect.FieldDescriptor, v []byte, path string, off, depth, valueDepth int) string {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		return walkMessage(v, fd.Message(), path, off, depth+1, valueDepth)
	case protoreflect.BytesKind:
		want := 0
		switch fd.Name() {
		case "trace_id":
			want = 16
		case "span_id", "parent_span_id":
			want = 8
		}
		if want > 0 && len(v) != 0 && len(v) != want {
			return at(path, off, fmt.Sprintf("%d bytes, want %d", len(v), want))
		}
	}
	return ""
}

// wireTypes returns the wire type a field is encoded with and the set of
// wire types a decoder accepts for it (packed repeated scalars also come
// length-delimited).
func wireTypes(fd protoreflect.FieldDescriptor) (protowire.Type, map[protowire.Type]bool) {
	var t protowire.Type
	switch fd.Kind() {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Int64Kind,
		protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		t = protowire.VarintType
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		t = protowire.Fixed64Type
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		t = protowire.Fixed32Type
	case protoreflect.GroupKind:
		t = protowire.StartGroupType
	default:
		t = protowire.BytesType
	}
	ok := map[protowire.Type]bool{t: true}
	if fd.IsList() && t != protowire.BytesType && t != protowire.StartGroupType {
		ok[protowire.BytesType] = true
	}
	return t, ok
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func at(path string, off int, problem string) string {
	if path == "" {
		path = "request"
	}
	return fmt.Sprintf("%s: %s (byte %d)", path, problem, off)
}

// tidyJSONError shortens the errors of pdata's JSON decoder (jsoniter),
// which quote the input twice around the error position, to the operation
// and the text just before the position:
//
//	ID.UnmarshalJSONIter: length mismatch, after `ceId":"zz"`
func tidyJSONError(err error) string {
	msg := err.Error()
	const marker = ", error found in #"
	i := strings.Index(msg, marker)
	if i < 0 {
		return msg
	}
	head, rest := msg[:i], msg[i+len(marker):]
	// rest: "<n> byte of ...|<window>|..., bigger context ...|<ctx>|..."
	sp := strings.IndexByte(rest, ' ')
	if sp < 0 {
		return head
	}
	pos, err2 := strconv.Atoi(rest[:sp])
	const open = " byte of ...|"
	if err2 != nil || !strings.HasPrefix(rest[sp:], open) {
		return head
	}
	window := rest[sp+len(open):]
	if end := strings.Index(window, "|..."); end >= 0 {
		window = window[:end]
	}
	if pos < 0 || pos > len(window) {
		return head
	}
	if pos == 0 {
		return head + ", at the start of the body"
	}
	return head + ", after `" + window[:pos] + "`"
}
