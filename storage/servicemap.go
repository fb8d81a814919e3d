package storage

import "time"

// EdgeTrace is one trace holding a call from Client to Server, kept by the
// service-graph deriver as an example of the edge so that a map can list
// the traces behind an edge for any past window.
type EdgeTrace struct {
	Client         string
	Server         string
	ConnectionType string // "", "database", "messaging_system" or "virtual_node"
	TraceID        [16]byte
	Time           time.Time     // start of the client half (the server half when there is none)
	Duration       time.Duration // of the client half (the server half when there is none)
	Failed         bool
}

// EdgeTraceQuery selects the example traces of one edge in a window,
// newest first. Client or Server may be empty for "any"; Limit must be
// set (query/servicemap settles the default).
type EdgeTraceQuery struct {
	Client string
	Server string
	Start  time.Time
	End    time.Time
	Limit  int
}
