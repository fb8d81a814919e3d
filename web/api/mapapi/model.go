package mapapi

import (
	"math"
	"time"

	"github.com/vigil-obs/vigil/query/servicemap"
)

// jsonMap is the JSON of a service map.
type jsonMap struct {
	Start    string     `json:"start"`
	End      string     `json:"end"`
	Nodes    []jsonNode `json:"nodes"`
	Edges    []jsonEdge `json:"edges"`
	Warnings []string   `json:"warnings"`
}

type jsonNode struct {
	ID        string   `json:"id"`
	Kind      string   `json:"kind"`
	Calls     uint64   `json:"calls"`
	Errors    uint64   `json:"errors"`
	Rate      float64  `json:"rate"`
	ErrorRate float64  `json:"error_rate"`
	P50       *float64 `json:"p50"`
	P95       *float64 `json:"p95"`
	P99       *float64 `json:"p99"`
}

type jsonEdge struct {
	Client         string     `json:"client"`
	Server         string     `json:"server"`
	ConnectionType string     `json:"connection_type"`
	Calls          uint64     `json:"calls"`
	Failed         uint64     `json:"failed"`
	Rate           float64    `json:"rate"`
	ErrorRate      float64    `json:"error_rate"`
	P50            *float64   `json:"p50"`
	P95            *float64   `json:"p95"`
	P99            *float64   `json:"p99"`
	Marks          []jsonMark `json:"marks"`
}

type jsonMark struct {
	Kind     string  `json:"kind"`
	Instance string  `json:"instance"`
	Since    string  `json:"since"`
	Value    float64 `json:"value"`
}

// jsonTrace is one example trace of an edge.
type jsonTrace struct {
	TraceID        string  `json:"traceID"`
	Time           string  `json:"time"`
	DurationMs     float64 `json:"duration_ms"`
	Failed         bool    `json:"failed"`
	ConnectionType string  `json:"connection_type"`
}

// quantile is q for JSON: null when there was no latency sample (NaN) or
// it is not a finite number.
func quantile(q float64) *float64 {
	if math.IsNaN(q) || math.IsInf(q, 0) {
		return nil
	}
	return &q
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func toJSONMap(m servicemap.Map) jsonMap {
	out := jsonMap{Start: rfc3339(m.Start), End: rfc3339(m.End), Nodes: make([]jsonNode, 0, len(m.Nodes)),
		Edges: make([]jsonEdge, 0, len(m.Edges)), Warnings: m.Warnings}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	for _, n := range m.Nodes {
		out.Nodes = append(out.Nodes, jsonNode{ID: n.ID, Kind: n.Kind, Calls: n.Calls, Errors: n.Errors, Rate: n.Rate,
			ErrorRate: n.ErrorRate, P50: quantile(n.P50), P95: quantile(n.P95), P99: quantile(n.P99)})
	}
	for _, e := range m.Edges {
		je := jsonEdge{Client: e.Client, Server: e.Server, ConnectionType: e.ConnectionType, Calls: e.Calls, Failed: e.Errors,
			Rate: e.Rate, ErrorRate: e.ErrorRate, P50: quantile(e.P50), P95: quantile(e.P95), P99: quantile(e.P99),
			Marks: make([]jsonMark, 0, len(e.Marks))}
		for _, mk := range e.Marks {
			je.Marks = append(je.Marks, jsonMark{Kind: mk.Kind, Instance: mk.Instance, Since: rfc3339(mk.Since), Value: mk.Value})
		}
		out.Edges = append(out.Edges, je)
	}
	return out
}
