package dict

import (
	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// ResourceRow is a resources row about to be written: a resource and an
// instrumentation scope, encoded, under the hash of their encoding.
type ResourceRow struct {
	ID       int64
	Service  int32
	Resource []byte
	Scope    []byte
}

// NewResourceRow encodes res and scope for service. Its id is the 64-bit
// xxhash of the encoding, so a writer needs no round trip to learn it.
func NewResourceRow(service int32, res pcommon.Resource, scope pcommon.InstrumentationScope) ResourceRow {
	rb, sb := EncodeResource(res, scope)
	h := xxhash.New()
	_, _ = h.Write(rb)
	_, _ = h.Write(sb)
	return ResourceRow{ID: int64(h.Sum64()), Service: service, Resource: rb, Scope: sb}
}

// EncodeResource encodes a resource and an instrumentation scope for the
// resources dictionary. Keys here are plain strings: a resource row is
// written once, not once per item. Layout of each: version, then
//
//	resource: attrs droppedAttrs
//	scope:    name version attrs droppedAttrs
func EncodeResource(res pcommon.Resource, scope pcommon.InstrumentationScope) (resBytes, scopeBytes []byte) {
	e := &Encoder{}
	e.Begin(nil)
	e.plainMap(res.Attributes())
	e.Uvarint(uint64(res.DroppedAttributesCount()))
	resBytes = e.buf

	e = &Encoder{}
	e.Begin(nil)
	e.Str(scope.Name())
	e.Str(scope.Version())
	e.plainMap(scope.Attributes())
	e.Uvarint(uint64(scope.DroppedAttributesCount()))
	return resBytes, e.buf
}

// DecodeResource is the inverse of EncodeResource.
func DecodeResource(resBytes, scopeBytes []byte, res pcommon.Resource, scope pcommon.InstrumentationScope) error {
	d, err := NewDecoder(resBytes, nil)
	if err != nil {
		return err
	}
	ds, err := NewDecoder(scopeBytes, nil)
	if err != nil {
		return err
	}
	d.plainMap(res.Attributes())
	res.SetDroppedAttributesCount(d.Uint32())
	if err := d.Err(); err != nil {
		return err
	}
	scope.SetName(ds.Str())
	scope.SetVersion(ds.Str())
	ds.plainMap(scope.Attributes())
	scope.SetDroppedAttributesCount(ds.Uint32())
	return ds.Err()
}
