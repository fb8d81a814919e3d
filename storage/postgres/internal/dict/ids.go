package dict

import "go.opentelemetry.io/collector/pdata/pcommon"

// unknownService is the service name of items whose resource has no
// service.name, as the OpenTelemetry SDKs name it.
const unknownService = "unknown_service"

// ServiceName returns the service.name of a resource: the key of the
// services dictionary.
func ServiceName(res pcommon.Resource) string {
	if v, ok := res.Attributes().Get("service.name"); ok && v.Str() != "" {
		return v.Str()
	}
	return unknownService
}

// SpanIDToInt is a span id as the bigint column that holds it (big-endian,
// the zero id is 0).
func SpanIDToInt(b pcommon.SpanID) int64 {
	return int64(uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7]))
}

// IntToSpanID is the inverse of SpanIDToInt.
func IntToSpanID(v int64) pcommon.SpanID {
	u := uint64(v)
	return pcommon.SpanID{byte(u >> 56), byte(u >> 48), byte(u >> 40), byte(u >> 32),
		byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}
}
