package jaegerapi

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-obs/vigil/query/servicemap"
)

// The Monitor's answer is Jaeger's api_v2/metrics MetricFamily as
// jaeger-query writes it, with gogo/protobuf's jsonpb (OrigName off,
// EmitDefaults off): camelCase names, the enum by name, empty fields left
// out, a Timestamp in RFC 3339 with 0, 3, 6 or 9 fraction digits, and a
// double that is not finite as the strings "NaN", "Infinity",
// "-Infinity".

type pbMetricFamily struct {
	Name    string     `json:"name,omitempty"`
	Type    string     `json:"type,omitempty"`
	Help    string     `json:"help,omitempty"`
	Metrics []pbMetric `json:"metrics,omitempty"`
}

type pbMetric struct {
	Labels       []pbLabel       `json:"labels,omitempty"`
	MetricPoints []pbMetricPoint `json:"metricPoints,omitempty"`
}

type pbLabel struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

type pbMetricPoint struct {
	GaugeValue pbGaugeValue `json:"gaugeValue"`
	Timestamp  pbTimestamp  `json:"timestamp"`
}

type pbGaugeValue struct {
	DoubleValue pbDouble `json:"doubleValue"`
}

// pbDouble is a double as jsonpb writes it.
type pbDouble float64

func (d pbDouble) MarshalJSON() ([]byte, error) {
	f := float64(d)
	switch {
	case math.IsNaN(f):
		return []byte(`"NaN"`), nil
	case math.IsInf(f, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(f, -1):
		return []byte(`"-Infinity"`), nil
	}
	return json.Marshal(f)
}

// pbTimestamp is a google.protobuf.Timestamp as jsonpb writes it.
type pbTimestamp time.Time

func (t pbTimestamp) MarshalJSON() ([]byte, error) {
	x := time.Time(t).UTC().Format("2006-01-02T15:04:05.000000000")
	x = strings.TrimSuffix(x, "000")
	x = strings.TrimSuffix(x, "000")
	x = strings.TrimSuffix(x, ".000")
	return []byte(strconv.Quote(x + "Z")), nil
}

func toMetricFamily(f servicemap.MetricFamily) pbMetricFamily {
	out := pbMetricFamily{Name: f.Name, Type: "GAUGE", Help: f.Help}
	for _, m := range f.Metrics {
		pm := pbMetric{}
		for _, l := range m.Labels {
			pm.Labels = append(pm.Labels, pbLabel{Name: l.Name, Value: l.Value})
		}
		for _, p := range m.Points {
			pm.MetricPoints = append(pm.MetricPoints, pbMetricPoint{GaugeValue: pbGaugeValue{DoubleValue: pbDouble(p.V)}, Timestamp: pbTimestamp(p.T)})
		}
		out.Metrics = append(out.Metrics, pm)
	}
	return out
}
