package storage

import (
	"errors"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

var (
	// ErrNotFound is returned when the requested object (a trace, a service)
	// does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable is returned when the database cannot be reached or
	// refuses connections. It is retryable: callers should answer with a
	// retryable status (gRPC UNAVAILABLE, HTTP 503).
	ErrUnavailable = errors.New("storage unavailable")
	// ErrLimitExceeded is returned when a read would exceed its
	// ReadLimits. The error wrapping it names the limit; it is the
	// query's fault, not the store's.
	ErrLimitExceeded = errors.New("read limit exceeded")
)

// ReadLimits bound what one query reads from a store, counted over all
// its reads. Zero fields mean no limit.
type ReadLimits struct {
	// MaxSeries is the most series the query's selections may return.
	MaxSeries int
	// MaxSamples is the most samples the query may read.
	MaxSamples int64
}

// Operation is a span name seen for a service, with the span kind it was
// reported with ("server", "client", "producer", "consumer", "internal" or ""
// when unspecified).
type Operation struct {
	Name     string
	SpanKind string
}

// OperationQuery selects the operations of one service, optionally of one
// span kind.
type OperationQuery struct {
	Service  string
	SpanKind string
}

// TraceQuery selects traces: a trace matches when one of its spans matches
// every set field. Zero values mean "any", except for the window
// (StartMin, StartMax) and Limit, which a store needs set: query/traces
// settles their defaults, the store applies none.
type TraceQuery struct {
	Service     string
	Operation   string
	Tags        map[string]string // span, resource or scope attributes, compared as strings
	StartMin    time.Time
	StartMax    time.Time
	DurationMin time.Duration
	DurationMax time.Duration
	Limit       int // maximum number of traces
}

// FoundTraces is the answer to a TraceQuery: the matching traces, newest
// first (by their newest matching span), one ptrace.Traces per trace.
//
// A store bounds the spans one search may examine. When it reached the
// bound before it had examined every candidate of the window, Truncated
// is set and SearchedFrom is the start time of the oldest span it
// examined: Traces are then exactly the newest matching traces among
// the spans from SearchedFrom to the end of the window, and older ones
// may exist. Without Truncated, Traces are the newest matching traces of
// the whole window.
type FoundTraces struct {
	Traces       []ptrace.Traces
	Truncated    bool
	SearchedFrom time.Time
}

// ServiceSummary is what Vigil knows of one service: when it was first and
// last seen and which signals ("traces", "logs", "metrics") it has stored.
type ServiceSummary struct {
	Name      string
	FirstSeen time.Time
	LastSeen  time.Time
	Signals   []string
}

// RuleGroupState is the evaluation state of one rule group, as the
// replica that evaluates the rules wrote it (State is alerting/rules's
// JSON), and when it was written.
type RuleGroupState struct {
	File, Group string
	State       []byte
	Updated     time.Time
}
