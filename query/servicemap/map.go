package servicemap

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	prom "github.com/prometheus/prometheus/promql"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-obs/vigil/storage"
)

// Filter keys a map may be narrowed by: resource attributes of the
// calling or called service.
const (
	FilterEnvironment = "deployment.environment"
	FilterNamespace   = "k8s.namespace.name"
)

// Node kinds.
const (
	KindService   = "service"
	KindDatabase  = "database"
	KindMessaging = "messaging"
	KindPeer      = "peer"
	KindUser      = "user"
)

// Mark kinds: what the reference client decided about the calls of an
// edge.
const (
	MarkBreakerOpen          = "breaker_open"
	MarkBreakerHalfOpen      = "breaker_half_open"
	MarkEjected              = "ejected"
	MarkRetryBudgetExhausted = "retry_budget_exhausted"
)

// userNode is the client the deriver names for calls from outside (a
// server or consumer span without a parent).
const userNode = "user"

// MapQuery asks for the service map of a window. A zero End is now and a
// zero Start End minus DefaultWindow; the map widens the window to whole
// minutes. Filters holds at most FilterEnvironment and FilterNamespace
// (an empty value does not narrow the map); another key is a
// QueryError.
type MapQuery struct {
	Start   time.Time
	End     time.Time
	Filters map[string]string
}

// Map is the service map of a window. Start and End are the window the
// figures are of: the one asked for widened to whole minutes (Start
// rounded down, End up, at least one minute). Nodes are sorted by id,
// edges by client, server and connection type.
type Map struct {
	Start    time.Time
	End      time.Time
	Nodes    []Node
	Edges    []Edge
	Warnings []string
}

// Stats are the RED figures of a node or an edge over the window. Calls
// and Errors are exact; Rate is calls per second of the window, ErrorRate
// Errors/Calls (0 without calls); the quantiles are in seconds,
// interpolated within the buckets of storage.MapLatencyBounds as
// Prometheus's histogram_quantile does, NaN when there is no latency
// sample.
type Stats struct {
	Calls     uint64
	Errors    uint64
	Rate      float64
	ErrorRate float64
	P50       float64
	P95       float64
	P99       float64
}

// Node is one service or one thing services call. A service's figures are
// those of its server and consumer spans; another node's those of the
// edges into it.
type Node struct {
	ID   string
	Kind string // KindService, KindDatabase, KindMessaging, KindPeer or KindUser
	Stats
}

// Edge is the calls from Client to Server of one connection type ("",
// ConnectionDatabase, ConnectionMessaging or ConnectionVirtual). Its
// Stats.Errors are the failed calls; its latency is the server side's,
// the client side's when no server half was seen.
type Edge struct {
	Client         string
	Server         string
	ConnectionType string
	Stats
	Marks []Mark
}

// Mark is a decision of the reference client about an edge's calls at the
// end of the window: a breaker open or half-open, an instance ejected
// (since when, Value the gauge), or the retry budget exhausted (Since the
// first refusal in the window, Value the refusals). Instance is "" for a
// decision about the whole service.
type Mark struct {
	Kind     string
	Instance string
	Since    time.Time
	Value    float64
}

// quantiles of the map.
var mapQuantiles = [3]float64{0.5, 0.95, 0.99}

type edgeKey struct{ client, server, conn string }

// acc accumulates the counts of an edge or a node. For a node, server is
// its latency histogram.
type acc struct {
	calls, failed  uint64
	server, client []uint64
}

func (a *acc) add(c storage.MapCounts) {
	a.calls += c.Calls
	a.failed += c.Failed
	a.server = addHist(a.server, c.ServerHist)
	a.client = addHist(a.client, c.ClientHist)
}

// addHist adds the bucket counts of src to dst, growing dst as needed.
func addHist(dst, src []uint64) []uint64 {
	if len(dst) < len(src) {
		dst = append(dst, make([]uint64, len(src)-len(dst))...)
	}
	for i, c := range src {
		dst[i] += c
	}
	return dst
}

// histCount is the number of observations in h.
func histCount(h []uint64) uint64 {
	var n uint64
	for _, c := range h {
		n += c
	}
	return n
}

// quantiles returns the map's quantiles of h, the non-cumulative counts
// of the buckets of storage.MapLatencyBounds then +Inf, computed by
// Prometheus's BucketQuantile (histogram_quantile's interpolation); NaN
// without observations. Counts beyond the bounds count in +Inf.
func quantiles(h []uint64) [3]float64 {
	out := [3]float64{math.NaN(), math.NaN(), math.NaN()}
	if histCount(h) == 0 {
		return out
	}
	bounds := storage.MapLatencyBounds
	b := make(prom.Buckets, 0, len(bounds)+1)
	cum := 0.0
	for i, c := range h {
		cum += float64(c)
		if i < len(bounds) && !math.IsInf(bounds[i], 1) {
			b = append(b, prom.Bucket{UpperBound: bounds[i], Count: cum})
		}
	}
	b = append(b, prom.Bucket{UpperBound: math.Inf(1), Count: cum})
	for i, q := range mapQuantiles {
		// BucketQuantile sorts b in place (it is sorted already) and
		// reads the counts as cumulative.
		out[i], _, _, _, _, _ = prom.BucketQuantile(q, b)
	}
	return out
}

// Map returns the service map of q's window, widened to whole minutes.
// Every edge with a call in the window is there, and every edge a mark
// is about; every node an edge names, and every service with server or
// consumer spans in the window. Filters keep the edges whose client or
// server has the attribute and the services that have it. Counts and
// latencies come from the deriver's rollups (Options.Rollups), the marks
// from the reference client's series (Options.Metrics; none without it).
// Errors: a QueryError for a bad window or filter; storage errors
// wrapped.
func (s *Service) Map(ctx context.Context, q MapQuery) (Map, error) {
	if s.opts.Rollups == nil {
		return Map{}, fmt.Errorf("service map: no rollup store: %w", storage.ErrUnavailable)
	}
	start, end, err := s.window(q.Start, q.End, DefaultWindow)
	if err != nil {
		return Map{}, err
	}
	start, end = alignWindow(start, end)
	wq := storage.MapWindowQuery{Start: start, End: end, KeyLookback: s.cfg.KeyLookback}
	keys := make([]string, 0, len(q.Filters))
	for k := range q.Filters {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch k {
		case FilterEnvironment:
			wq.Env = q.Filters[k]
		case FilterNamespace:
			wq.Namespace = q.Filters[k]
		default:
			return Map{}, &QueryError{Param: "attr." + k, Msg: fmt.Sprintf("is not a map filter (known: attr.%s, attr.%s)", FilterEnvironment, FilterNamespace)}
		}
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()

	// The totals and the marks are read at once, each on its own
	// connection.
	var (
		totals []storage.MapTotal
		marks  []markSeries
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if totals, err = s.opts.Rollups.MapTotals(gctx, wq); err != nil {
			return fmt.Errorf("service map totals: %w", err)
		}
		return nil
	})
	if s.opts.Metrics != nil {
		g.Go(func() error {
			var err error
			marks, err = s.readMarks(gctx, start, end)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return Map{}, err
	}
	edges := map[edgeKey]*acc{}
	nodes := map[string]*acc{}
	for _, t := range totals {
		var a *acc
		if t.Node {
			if a = nodes[t.Server]; a == nil {
				a = &acc{}
				nodes[t.Server] = a
			}
		} else {
			k := edgeKey{t.Client, t.Server, t.ConnectionType}
			if a = edges[k]; a == nil {
				a = &acc{}
				edges[k] = a
			}
		}
		a.add(t.Counts)
	}
	return buildMap(start, end, edges, nodes, marks, wq.Env == "" && wq.Namespace == ""), nil
}

// buildMap turns the accumulated figures into a Map. markOnly adds an
// edge for marks about a pair that made no call in the window; the marks
// carry no resource attributes, so a filtered map leaves them out.
func buildMap(start, end time.Time, edges map[edgeKey]*acc, nodes map[string]*acc, marks []markSeries, markOnly bool) Map {
	secs := end.Sub(start).Seconds()
	stats := func(calls, errs uint64, h []uint64) Stats {
		st := Stats{Calls: calls, Errors: errs}
		if secs > 0 {
			st.Rate = float64(calls) / secs
		}
		if calls > 0 {
			st.ErrorRate = float64(errs) / float64(calls)
		}
		qs := quantiles(h)
		st.P50, st.P95, st.P99 = qs[0], qs[1], qs[2]
		return st
	}
	m := Map{Start: start, End: end, Nodes: []Node{}, Edges: []Edge{}, Warnings: []string{}}

	// Marks are about calls from job to vigil_service: every edge between
	// the two gets them.
	marksOf := map[[2]string][]Mark{}
	for _, ms := range marks {
		k := [2]string{ms.client, ms.server}
		marksOf[k] = append(marksOf[k], ms.mark)
	}
	keys := make([]edgeKey, 0, len(edges))
	for k, e := range edges {
		if e.calls > 0 || len(marksOf[[2]string{k.client, k.server}]) > 0 {
			keys = append(keys, k)
		}
	}
	marked := map[[2]string]bool{}
	for _, k := range keys {
		marked[[2]string{k.client, k.server}] = true
	}
	// A mark about a pair with no edge in the window (a breaker open
	// from the start: no call got through) still shows, on a plain edge.
	for k := range marksOf {
		if markOnly && !marked[k] {
			ek := edgeKey{client: k[0], server: k[1]}
			edges[ek] = &acc{}
			keys = append(keys, ek)
		}
	}
	slices.SortFunc(keys, func(a, b edgeKey) int {
		return cmpStrings(a.client, b.client, a.server, b.server, a.conn, b.conn)
	})

	kinds := map[string]string{}
	incoming := map[string]*acc{}
	// A name that is a service anywhere is a service; otherwise the
	// first edge (in edge order) that names it says what it is.
	setKind := func(id, kind string) {
		if _, ok := kinds[id]; !ok || kind == KindService {
			kinds[id] = kind
		}
	}
	for svc, n := range nodes {
		if n.calls > 0 {
			setKind(svc, KindService)
		}
	}
	for _, k := range keys {
		e := edges[k]
		// The server half's latency; the client half's when no server
		// half was seen (a database, a peer, a lone producer).
		h := e.server
		if histCount(h) == 0 {
			h = e.client
		}
		edge := Edge{Client: k.client, Server: k.server, ConnectionType: k.conn, Stats: stats(e.calls, e.failed, h)}
		if ms := marksOf[[2]string{k.client, k.server}]; len(ms) > 0 {
			edge.Marks = slices.Clone(ms)
		}
		m.Edges = append(m.Edges, edge)

		clientKind, serverKind := KindService, KindService
		switch k.conn {
		case ConnectionDatabase:
			serverKind = KindDatabase
		case ConnectionMessaging:
			serverKind = KindMessaging
		case ConnectionVirtual:
			if k.client == userNode {
				clientKind = KindUser
			} else {
				serverKind = KindPeer
			}
		}
		setKind(k.client, clientKind)
		setKind(k.server, serverKind)
		in := incoming[k.server]
		if in == nil {
			in = &acc{}
			incoming[k.server] = in
		}
		in.calls += e.calls
		in.failed += e.failed
		in.server = addHist(in.server, h)
	}
	ids := make([]string, 0, len(kinds))
	for id := range kinds {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		node := Node{ID: id, Kind: kinds[id]}
		switch n := nodes[id]; {
		case node.Kind == KindService && n != nil:
			node.Stats = stats(n.calls, n.failed, n.server)
		case node.Kind != KindService && incoming[id] != nil:
			in := incoming[id]
			node.Stats = stats(in.calls, in.failed, in.server)
		default:
			node.Stats = stats(0, 0, nil)
		}
		m.Nodes = append(m.Nodes, node)
	}
	return m
}
