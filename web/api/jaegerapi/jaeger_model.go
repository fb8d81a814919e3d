package jaegerapi

// The types below mirror Jaeger's UI model (jaeger internal/uimodel, formerly
// model/json): field names, and which fields are always present, follow it so
// that the Jaeger UI and Grafana read our answers unchanged. The envelope
// around them is api.Envelope.

// uiOperation is an element of the /api/operations answer.
type uiOperation struct {
	Name     string `json:"name"`
	SpanKind string `json:"spanKind"`
}

// uiTrace is one trace in Jaeger's UI JSON.
type uiTrace struct {
	TraceID   string               `json:"traceID"`
	Spans     []uiSpan             `json:"spans"`
	Processes map[string]uiProcess `json:"processes"`
	Warnings  []string             `json:"warnings"`
}

// uiSpan is one span; times are microseconds (since the Unix epoch for
// StartTime).
type uiSpan struct {
	TraceID       string        `json:"traceID"`
	SpanID        string        `json:"spanID"`
	Flags         uint32        `json:"flags"`
	OperationName string        `json:"operationName"`
	References    []uiReference `json:"references"`
	StartTime     uint64        `json:"startTime"`
	Duration      uint64        `json:"duration"`
	Tags          []uiKeyValue  `json:"tags"`
	Logs          []uiLog       `json:"logs"`
	ProcessID     string        `json:"processID"`
	Warnings      []string      `json:"warnings"`
}

// uiReference is a CHILD_OF or FOLLOWS_FROM reference to another span.
type uiReference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// uiProcess is the process (OTLP resource) that emitted spans.
type uiProcess struct {
	ServiceName string       `json:"serviceName"`
	Tags        []uiKeyValue `json:"tags"`
}

// uiLog is a span log (OTLP span event).
type uiLog struct {
	Timestamp uint64       `json:"timestamp"`
	Fields    []uiKeyValue `json:"fields"`
}

// uiKeyValue is a typed tag. Type is one of the value* constants; Value is a
// string, bool, int64, float64, or, where JavaScript cannot hold the number
// exactly (int64 beyond ±2^53-1, NaN, ±Infinity), its decimal string.
type uiKeyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// Jaeger value types and reference types as they appear in the JSON.
const (
	valueString  = "string"
	valueBool    = "bool"
	valueInt64   = "int64"
	valueFloat64 = "float64"
	valueBinary  = "binary"

	refChildOf     = "CHILD_OF"
	refFollowsFrom = "FOLLOWS_FROM"
)
