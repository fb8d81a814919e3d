package dict

import (
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
	return bloomBits(xxhash.Sum64String(key), value)
}

// bloomBits is BloomMask with the key's hash already computed.
func bloomBits(keyHash uint64, value string) uint64 {
	h := keyHash ^ (xxhash.Sum64String(value) * 0x9e3779b97f4a7c15)
	h ^= h >> 29
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
		}
		return true
	})
	return b
}
