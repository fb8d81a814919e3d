package dict

import (
	"encoding/hex"
	"strconv"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// A span's tag_bloom and a log record's attr_bloom are 64-bit Bloom
// filters over top-level attributes, each added as its key and the
// value's string form, with three bits taken from a mix of the two
// strings' 64-bit hashes. With ~10 attributes a query for a key=value the
// row does not have passes by chance about 5% of the time; search then
// checks the decoded row exactly, so false positives cost time, never
// correctness.

// BloomMask returns the three bits of key=value.
func BloomMask(key, value string) uint64 {
	return bloomOf(TagHash(key, value))
}

// TagHash is the 64-bit hash of key=value (the value in its string form)
// that the Bloom filters take their bits from and that span_tags rows
// carry.
func TagHash(key, value string) uint64 {
	return pairHash(xxhash.Sum64String(key), value)
}

// KeyHash is the hash span_tags rows carry for a key whose values were
// too many in one batch to list: TagHash's key part.
func KeyHash(key string) uint64 { return xxhash.Sum64String(key) }

// pairHash is TagHash with the key's hash already computed.
func pairHash(keyHash uint64, value string) uint64 {
	h := keyHash ^ (xxhash.Sum64String(value) * 0x9e3779b97f4a7c15)
	return h ^ h>>29
}

// bloomOf returns the three bits of a TagHash.
func bloomOf(h uint64) uint64 {
	return 1<<(h&63) | 1<<((h>>6)&63) | 1<<((h>>12)&63)
}

// AttributesBloom is the filter of an attribute map's top-level entries.
func AttributesBloom(m pcommon.Map) uint64 {
	var b uint64
	m.Range(func(k string, v pcommon.Value) bool {
		if v.Type() == pcommon.ValueTypeStr {
			b |= BloomMask(k, v.Str())
		} else {
			b |= BloomMask(k, v.AsString())
			if alt, ok := JaegerForm(v); ok {
				b |= BloomMask(k, alt)
			}
		}
		return true
	})
	return b
}

// JaegerForm returns the string form Jaeger compares a tag by in a search
// (its model.KeyValue.AsString) when it differs from pdata's AsString, the
// form stored values are matched by: a double with ten significant digits
// ("3.141592654", "1e-07"; pdata writes "3.14159265358979", "1e-7") and
// bytes in hex (pdata: base64). Strings, booleans and integers have one
// form. A search value matches a value by either form.
func JaegerForm(v pcommon.Value) (string, bool) {
	var s string
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		s = strconv.FormatFloat(v.Double(), 'g', 10, 64)
	case pcommon.ValueTypeBytes:
		s = hex.EncodeToString(v.Bytes().AsRaw())
	default:
		return "", false
	}
	if s == v.AsString() {
		return "", false
	}
	return s, true
}
