package derive

import (
	"math"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/vigil-obs/vigil/storage"
)

// Names of the derived metrics and of their labels.
const (
	redCallsName    = "traces_span_metrics_calls"
	redDurationName = "traces_span_metrics_duration"

	graphTotalName    = "traces_service_graph_request_total"
	graphFailedName   = "traces_service_graph_request_failed_total"
	graphServerName   = "traces_service_graph_request_server_seconds"
	graphClientName   = "traces_service_graph_request_client_seconds"
	graphUnpairedName = "traces_service_graph_unpaired_spans_total"
	graphDroppedName  = "traces_service_graph_dropped_spans_total"

	replicaLabel = "vigil_replica"

	// overflowName replaces span names beyond MaxOperationsPerService.
	overflowName = "__overflow__"
	// unknownService names the service of a resource without service.name.
	unknownService = "unknown_service"
	// userNode is the client of a call from outside (a root server span).
	userNode = "user"
)

// Connection types of an edge.
const (
	connPlain     = ""
	connDatabase  = "database"
	connMessaging = "messaging_system"
	connVirtual   = "virtual_node"
)

// Bucket bounds: milliseconds for span metrics, seconds for the service
// graph; +Inf is implied.
var (
	msBounds = [...]float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 15000, 30000, 60000}
	// secBounds are also the buckets of the map rollups.
	secBounds = storage.MapLatencyBounds
)

// Label values of span kinds and status codes, by their OTLP numbers.
var (
	kindLabels   = [...]string{"SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"}
	statusLabels = [...]string{"STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"}
)

// family is a metric family: its name and metadata, passed with every
// sample of it.
type family struct {
	name string
	md   metadata.Metadata
}

// Indexes into families.
const (
	famRedCalls uint8 = iota
	famRedDuration
	famGraphTotal
	famGraphFailed
	famGraphServer
	famGraphClient
	famGraphUnpaired
	famGraphDropped
)

var families = [...]family{
	famRedCalls:      {redCallsName, metadata.Metadata{Type: model.MetricTypeCounter, Help: "Spans, by service, span name, kind and status."}},
	famRedDuration:   {redDurationName, metadata.Metadata{Type: model.MetricTypeHistogram, Unit: "milliseconds", Help: "Span durations in milliseconds, by service, span name, kind and status."}},
	famGraphTotal:    {graphTotalName, metadata.Metadata{Type: model.MetricTypeCounter, Help: "Calls between two nodes of the service graph."}},
	famGraphFailed:   {graphFailedName, metadata.Metadata{Type: model.MetricTypeCounter, Help: "Failed calls between two nodes of the service graph."}},
	famGraphServer:   {graphServerName, metadata.Metadata{Type: model.MetricTypeHistogram, Unit: "seconds", Help: "Durations of calls between two nodes, seen by the server."}},
	famGraphClient:   {graphClientName, metadata.Metadata{Type: model.MetricTypeHistogram, Unit: "seconds", Help: "Durations of calls between two nodes, seen by the client."}},
	famGraphUnpaired: {graphUnpairedName, metadata.Metadata{Type: model.MetricTypeCounter, Help: "Client or server spans that paired with nothing and name no peer."}},
	famGraphDropped:  {graphDroppedName, metadata.Metadata{Type: model.MetricTypeCounter, Help: "Client or server spans dropped because too many waited for their partner."}},
}

// seriesState is what every derived series keeps besides its values. It
// is guarded by Deriver.mu.
type seriesState struct {
	changed    bool      // updated since the last flush
	written    bool      // committed at least once since it was created
	lastActive time.Time // flush time of the last flush that saw it changed
	ls         []labels.Labels
	fams       []uint8 // family of each of ls
}

// series is a derived series: one key of one kind, written as several
// Prometheus series (a counter, or a histogram's buckets, sum and count).
type series interface {
	state() *seriesState
	// build sets state().ls and fams.
	build(b *labels.ScratchBuilder, replica string)
	// values appends the values, in the order of state().ls.
	values(dst []float64) []float64
}

// hist is a classic histogram of observations: per-bucket counts (not
// cumulative; the last is +Inf) and the sum.
type hist struct {
	counts []uint64
	sum    float64
}

func newHist(bounds []float64) hist { return hist{counts: make([]uint64, len(bounds)+1)} }

func (h *hist) observe(bounds []float64, v float64) {
	h.counts[bucketOf(bounds, v)]++
	h.sum += v
}

// bucketOf returns the index of the first of bounds at or above v
// (len(bounds) for none, or NaN), as sort.SearchFloat64s does, without its
// indirect calls: it runs for every span and call.
func bucketOf(bounds []float64, v float64) int {
	if math.IsNaN(v) {
		return len(bounds)
	}
	lo, hi := 0, len(bounds)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bounds[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// count is the number of observations.
func (h *hist) count() uint64 {
	var n uint64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// appendValues appends the cumulative buckets, the sum and the count.
func (h *hist) appendValues(dst []float64) []float64 {
	var cum uint64
	for _, c := range h.counts {
		cum += c
		dst = append(dst, float64(cum))
	}
	return append(dst, h.sum, float64(cum))
}

// leValues returns the le label values of bounds, +Inf last, formatted
// as the contract says.
func leValues(bounds []float64) []string {
	out := make([]string, 0, len(bounds)+1)
	for _, b := range bounds {
		out = append(out, strconv.FormatFloat(b, 'f', -1, 64))
	}
	return append(out, "+Inf")
}

// le values of msBounds and secBounds.
var (
	msLE  = leValues(msBounds[:])
	secLE = leValues(secBounds)
)

// histLabels appends the label sets of a histogram family name over the
// labels in base (without __name__ or le): buckets, sum, count.
func histLabels(st *seriesState, b *labels.ScratchBuilder, base []labels.Label, name string, fam uint8, les []string) {
	bucket := name + "_bucket"
	for _, le := range les {
		st.ls = append(st.ls, labelSet(b, base, bucket, "le", le))
		st.fams = append(st.fams, fam)
	}
	st.ls = append(st.ls, labelSet(b, base, name+"_sum", "", ""), labelSet(b, base, name+"_count", "", ""))
	st.fams = append(st.fams, fam, fam)
}

// labelSet builds base with __name__ name and, when extra is set, the
// label extra=value.
func labelSet(b *labels.ScratchBuilder, base []labels.Label, name, extra, value string) labels.Labels {
	b.Reset()
	b.Add(model.MetricNameLabel, name)
	for _, l := range base {
		if l.Value != "" {
			b.Add(l.Name, l.Value)
		}
	}
	if extra != "" {
		b.Add(extra, value)
	}
	b.Sort()
	return b.Labels()
}

// redKey identifies a span-metrics series.
type redKey struct {
	service, name, env, ns string
	kind, status           uint8
}

// redSeries is the calls counter and duration histogram of one redKey.
type redSeries struct {
	seriesState
	key redKey
	h   hist // of msBounds
	// node is the map node the series' server or consumer spans count
	// in (nil until one does, or forgotten when node.dead).
	node *nodeState
}

func (s *redSeries) state() *seriesState { return &s.seriesState }

func (s *redSeries) build(b *labels.ScratchBuilder, replica string) {
	base := []labels.Label{
		{Name: "service_name", Value: s.key.service},
		{Name: "span_name", Value: s.key.name},
		{Name: "span_kind", Value: kindLabels[s.key.kind]},
		{Name: "status_code", Value: statusLabels[s.key.status]},
		{Name: "deployment_environment", Value: s.key.env},
		{Name: "k8s_namespace_name", Value: s.key.ns},
		{Name: replicaLabel, Value: replica},
	}
	s.ls = append(make([]labels.Labels, 0, 1+len(msLE)+2), labelSet(b, base, redCallsName, "", ""))
	s.fams = append(make([]uint8, 0, cap(s.ls)), famRedCalls)
	histLabels(&s.seriesState, b, base, redDurationName, famRedDuration, msLE)
}

func (s *redSeries) values(dst []float64) []float64 {
	return s.h.appendValues(append(dst, float64(s.h.count())))
}

// edgeKey identifies a service-graph edge.
type edgeKey struct {
	client, server, conn string
	clientEnv, clientNs  string
	serverEnv, serverNs  string
}

// edgeSeries is the counters and histograms of one edge, and the example
// trace of the current flush.
type edgeSeries struct {
	seriesState
	key            edgeKey
	total, failed  uint64
	server, client hist // of secBounds
	example        exampleTrace
	// inc is the map rollups' incarnation of the edge; mapDirty is set
	// when it changed since its counts were last taken for the rollups.
	inc      int64
	mapDirty bool
}

// exampleTrace is the call kept as the edge's example in a flush.
type exampleTrace struct {
	set      bool
	failed   bool
	traceID  [16]byte
	start    time.Time
	duration time.Duration
}

func (s *edgeSeries) state() *seriesState { return &s.seriesState }

func (s *edgeSeries) build(b *labels.ScratchBuilder, replica string) {
	base := []labels.Label{
		{Name: "client", Value: s.key.client},
		{Name: "server", Value: s.key.server},
		{Name: "connection_type", Value: s.key.conn},
		{Name: "client_deployment_environment", Value: s.key.clientEnv},
		{Name: "server_deployment_environment", Value: s.key.serverEnv},
		{Name: "client_k8s_namespace_name", Value: s.key.clientNs},
		{Name: "server_k8s_namespace_name", Value: s.key.serverNs},
		{Name: replicaLabel, Value: replica},
	}
	s.ls = append(make([]labels.Labels, 0, 2+2*(len(secLE)+2)), labelSet(b, base, graphTotalName, "", ""), labelSet(b, base, graphFailedName, "", ""))
	s.fams = append(make([]uint8, 0, cap(s.ls)), famGraphTotal, famGraphFailed)
	histLabels(&s.seriesState, b, base, graphServerName, famGraphServer, secLE)
	histLabels(&s.seriesState, b, base, graphClientName, famGraphClient, secLE)
}

func (s *edgeSeries) values(dst []float64) []float64 {
	dst = append(dst, float64(s.total), float64(s.failed))
	dst = s.server.appendValues(dst)
	return s.client.appendValues(dst)
}

// countKey identifies an unpaired or dropped spans counter.
type countKey struct {
	fam     uint8 // famGraphUnpaired or famGraphDropped
	client  bool  // the client= label, else server=
	service string
}

// countSeries is one unpaired or dropped spans counter.
type countSeries struct {
	seriesState
	key countKey
	n   uint64
}

func (s *countSeries) state() *seriesState { return &s.seriesState }

func (s *countSeries) build(b *labels.ScratchBuilder, replica string) {
	side := "server"
	if s.key.client {
		side = "client"
	}
	base := []labels.Label{{Name: side, Value: s.key.service}, {Name: replicaLabel, Value: replica}}
	s.ls = append(s.ls[:0], labelSet(b, base, families[s.key.fam].name, "", ""))
	s.fams = append(s.fams[:0], s.key.fam)
}

func (s *countSeries) values(dst []float64) []float64 { return append(dst, float64(s.n)) }

// nodeKey identifies a node of the map rollups: a service in an
// environment and a namespace.
type nodeKey struct {
	service, env, ns string
}

// nodeState is the map rollups' counts of a node: its server and
// consumer spans, those with status Error, and their durations. It is not
// a Prometheus series (the span-metrics series hold the same calls by
// span name); it lives as long as one of its spans' series is updated
// within SeriesIdleTimeout. Guarded by Deriver.mu.
type nodeState struct {
	key           nodeKey
	inc           int64
	calls, failed uint64
	h             hist      // of secBounds
	dirty         bool      // updated since its counts were last taken
	lastActive    time.Time // flush time of the last flush that took them
	dead          bool      // forgotten: a span counts in a new node
}
