package derive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/storage"
)

// Half is one side of a call, parked in a PairStore when it found no
// partner in memory.
type Half = storage.PairHalf

// Pair is a call seen from both sides.
type Pair = storage.Pair

// PairStore is where replicas sharing a database pair the halves each
// could not pair in memory (storage/postgres/mapstore implements it).
type PairStore interface {
	// Offer parks halves that found no partner in memory; it returns the pairs completed
	// by halves another replica parked earlier (both removed atomically, so each pair is
	// returned to exactly one caller).
	Offer(ctx context.Context, halves []Half) ([]Pair, error)
	// Expire removes and returns halves parked before `before` (each returned once, to one replica).
	Expire(ctx context.Context, before time.Time, limit int) ([]Half, error)
	// WriteEdgeTraces stores example traces of edges.
	WriteEdgeTraces(ctx context.Context, traces []storage.EdgeTrace) error
}

// RollupStore keeps the service map's per-minute rollups
// (storage/postgres/mapstore implements it).
type RollupStore interface {
	// WriteMapRollups writes the cumulative counts of rows' keys as of
	// minute (the flush time truncated to the minute, UTC), replacing the
	// rows of an earlier write in that minute, in one transaction: on
	// error nothing is written.
	WriteMapRollups(ctx context.Context, minute time.Time, rows []storage.MapRollup) error
}

// Options are the Deriver's dependencies.
type Options struct {
	Appendable promstorage.AppendableV2 // the metric pipeline; required
	Pairs      PairStore                // nil = pair only in memory (single replica)
	// Rollups receives the map rollups; nil = Pairs when it is a
	// RollupStore, else no rollups are kept.
	Rollups    RollupStore
	Logger     *slog.Logger          // nil = discard
	Registerer prometheus.Registerer // nil = no self-metrics
	Now        func() time.Time      // nil = time.Now
}

// Limits of the bookkeeping tables that only speed things up.
const (
	maxInterned = 1 << 16 // strings kept by intern
	maxRoutes   = 1 << 14 // "<METHOD> <route>" names kept by routeName
)

// Deriver computes span metrics and the service graph from committed
// spans and writes them as Prometheus series. Committed and Flush are
// safe for concurrent use.
type Deriver struct {
	cfg     Config
	app     promstorage.AppendableV2
	pairs   PairStore
	rollups RollupStore // nil: no map rollups
	logger  *slog.Logger
	now     func() time.Time
	replica string
	m       *selfMetrics

	flushMu sync.Mutex // one flush at a time

	mu         sync.Mutex
	red        map[redKey]*redSeries
	edges      map[edgeKey]*edgeSeries
	counts     map[countKey]*countSeries
	nSeries    int
	ops        map[string]map[string]int // service → span name → live RED series
	pending    map[pairKey]pendingHalf
	intern     map[string]string
	routes     map[routeKey]string
	nodes      map[nodeKey]*nodeState // only with rollups
	nextInc    int64                  // the last incarnation given
	lastOK     time.Time              // last committed flush (creation at first)
	justStaled map[any]struct{}       // keys marked stale at lastOK
	// lastSamples and lastRollups are the size of the last flush, to
	// size the next.
	lastSamples int
	lastRollups int

	// mapRows are the rollups not yet written, by incarnation: the counts
	// taken by the last flush of each key whose write has not succeeded
	// yet. Guarded by flushMu.
	mapRows map[int64]storage.MapRollup
}

// pairKey is the pairing key of a half.
type pairKey struct {
	trace [16]byte
	span  [8]byte
}

// pendingHalf is a half waiting in memory (its pairing key is the map's
// key), kept small so that the map holds it inline.
type pendingHalf struct {
	service, env, ns, peer string
	kind                   string
	start, dur, arrived    int64 // Unix ns, ns, Unix ns
	client, failed, msg    bool
}

func pendingOf(h *Half, arrived time.Time) pendingHalf {
	return pendingHalf{service: h.Service, env: h.Environment, ns: h.Namespace, peer: h.Peer, kind: h.Kind,
		start: h.Start.UnixNano(), dur: int64(h.Duration), arrived: arrived.UnixNano(),
		client: h.Client, failed: h.Failed, msg: h.Messaging}
}

func (p *pendingHalf) half(k pairKey) Half {
	return Half{TraceID: k.trace, SpanID: k.span, Client: p.client, Kind: p.kind, Service: p.service,
		Environment: p.env, Namespace: p.ns, Failed: p.failed, Start: time.Unix(0, p.start).UTC(),
		Duration: time.Duration(p.dur), Peer: p.peer, Messaging: p.msg}
}

type routeKey struct{ method, route string }

// New returns a Deriver; cfg must be valid.
func New(cfg Config, opts Options) (*Deriver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Appendable == nil {
		return nil, errors.New("derive: an appendable is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	replica := cfg.Replica
	if replica == "" {
		replica = NewReplicaID()
	}
	if opts.Rollups == nil {
		opts.Rollups, _ = opts.Pairs.(RollupStore)
	}
	d := &Deriver{
		cfg: cfg, app: opts.Appendable, pairs: opts.Pairs, rollups: opts.Rollups, now: opts.Now, replica: replica,
		logger:     opts.Logger.With("component", "derive"),
		red:        map[redKey]*redSeries{},
		edges:      map[edgeKey]*edgeSeries{},
		counts:     map[countKey]*countSeries{},
		ops:        map[string]map[string]int{},
		pending:    map[pairKey]pendingHalf{},
		intern:     map[string]string{},
		routes:     map[routeKey]string{},
		justStaled: map[any]struct{}{},
		nodes:      map[nodeKey]*nodeState{},
		mapRows:    map[int64]storage.MapRollup{},
		// Incarnations count from the wall clock's nanoseconds at
		// creation, so that a process restarted under the same replica
		// name never reuses one (it would have to have created more keys
		// than nanoseconds passed).
		nextInc: time.Now().UnixNano(),
	}
	d.lastOK = d.now()
	m, err := newSelfMetrics(opts.Registerer, d)
	if err != nil {
		return nil, err
	}
	d.m = m
	return d, nil
}

// NewReplicaID names a process in the series it derives (the default
// vigil_replica): the host name and six random hex digits, so that two
// processes on one host differ too.
func NewReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "vigil"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// Replica returns the value of the vigil_replica label of this Deriver's
// series.
func (d *Deriver) Replica() string { return d.replica }

// resourceInfo is what the rules read from a resource, owned strings.
type resourceInfo struct {
	service, env, ns string
}

// spanAttrs is what the rules read from a span's attributes. The strings
// point into the pdata and must not outlive Committed.
type spanAttrs struct {
	route, method           string
	dbSystem, dbName        string
	peerService, serverAddr string
	netPeerName             string
	msgDest, msgSystem      string
}

// readSpanAttrs reads the attributes the rules use in one pass, taking
// the first of the old and new semantic-convention names present.
func readSpanAttrs(m pcommon.Map, a *spanAttrs) {
	set := func(dst *string, v pcommon.Value) {
		if *dst == "" && v.Type() == pcommon.ValueTypeStr {
			*dst = v.Str()
		}
	}
	for k, v := range m.All() {
		switch k {
		case "http.route":
			set(&a.route, v)
		case "http.request.method", "http.method":
			set(&a.method, v)
		case "db.system", "db.system.name":
			set(&a.dbSystem, v)
		case "db.name", "db.namespace":
			set(&a.dbName, v)
		case "peer.service", "service.peer.name":
			// service.peer.name is what the Zipkin translator makes of
			// a span's remoteEndpoint.serviceName.
			set(&a.peerService, v)
		case "server.address":
			set(&a.serverAddr, v)
		case "net.peer.name":
			set(&a.netPeerName, v)
		case "messaging.destination.name", "messaging.destination":
			set(&a.msgDest, v)
		case "messaging.system":
			set(&a.msgSystem, v)
		}
	}
}

// firstOf returns the first non-empty string.
func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// Committed is the span pipeline's hook: called with each committed batch, from the
// pipeline's writer goroutines concurrently. It aggregates in memory, never blocks on I/O,
// and keeps no reference into the pdata once it returns.
func (d *Deriver) Committed(batch []ptrace.Traces) {
	if !d.cfg.Enabled {
		return
	}
	now := d.now()
	var n int
	var attrs spanAttrs
	for _, td := range batch {
		rss := td.ResourceSpans()
		for i := range rss.Len() {
			rs := rss.At(i)
			d.mu.Lock()
			res := d.resourceLocked(rs.Resource().Attributes())
			sss := rs.ScopeSpans()
			for j := range sss.Len() {
				spans := sss.At(j).Spans()
				for k := range spans.Len() {
					attrs = spanAttrs{}
					d.spanLocked(&res, spans.At(k), &attrs, now)
				}
				n += spans.Len()
			}
			d.mu.Unlock()
		}
	}
	d.m.spans.Add(float64(n))
}

// resourceLocked reads the service and dimensions of a resource.
func (d *Deriver) resourceLocked(m pcommon.Map) resourceInfo {
	var service, envNew, envOld, ns string
	for k, v := range m.All() {
		if v.Type() != pcommon.ValueTypeStr {
			continue
		}
		switch k {
		case "service.name":
			service = v.Str()
		case "deployment.environment.name":
			envNew = v.Str()
		case "deployment.environment":
			envOld = v.Str()
		case "k8s.namespace.name":
			ns = v.Str()
		}
	}
	if service == "" {
		service = unknownService
	}
	return resourceInfo{service: d.internLocked(service), env: d.internLocked(firstOf(envNew, envOld)), ns: d.internLocked(ns)}
}

// internLocked returns an owned copy of s, shared by equal strings.
func (d *Deriver) internLocked(s string) string {
	if s == "" {
		return ""
	}
	if o, ok := d.intern[s]; ok {
		return o
	}
	if len(d.intern) >= maxInterned {
		clear(d.intern)
	}
	o := strings.Clone(s)
	d.intern[o] = o
	return o
}

// routeNameLocked returns "<METHOD> <route>", or route without a method.
func (d *Deriver) routeNameLocked(method, route string) string {
	if method == "" {
		return route
	}
	if s, ok := d.routes[routeKey{method, route}]; ok {
		return s
	}
	if len(d.routes) >= maxRoutes {
		clear(d.routes)
	}
	s := method + " " + route
	d.routes[routeKey{s[:len(method)], s[len(method)+1:]}] = s
	return s
}

// spanLocked applies the rules to one span.
func (d *Deriver) spanLocked(res *resourceInfo, span ptrace.Span, a *spanAttrs, now time.Time) {
	readSpanAttrs(span.Attributes(), a)
	name := span.Name()
	if a.route != "" {
		name = d.routeNameLocked(a.method, a.route)
	}
	kind := span.Kind()
	if kind < 0 || int(kind) >= len(kindLabels) {
		kind = ptrace.SpanKindUnspecified
	}
	status := span.Status().Code()
	if status < 0 || int(status) >= len(statusLabels) {
		status = ptrace.StatusCodeUnset
	}
	failed := status == ptrace.StatusCodeError
	var dur time.Duration
	if s, e := span.StartTimestamp(), span.EndTimestamp(); e > s && e-s <= math.MaxInt64 {
		dur = time.Duration(e - s)
	}
	red := d.redLocked(res, name, uint8(kind), uint8(status), dur, now)
	if d.rollups != nil && red != nil && (kind == ptrace.SpanKindServer || kind == ptrace.SpanKindConsumer) {
		d.nodeLocked(red, failed, dur)
	}

	h := Half{
		TraceID: span.TraceID(), Service: res.service, Environment: res.env, Namespace: res.ns,
		Failed: failed, Duration: dur, Start: span.StartTimestamp().AsTime(),
	}
	switch kind {
	case ptrace.SpanKindClient:
		if a.dbSystem != "" {
			server := d.internLocked(firstOf(a.dbName, a.serverAddr, a.netPeerName, a.dbSystem))
			d.edgeLocked(edgeKey{client: h.Service, server: server, conn: connDatabase, clientEnv: h.Environment, clientNs: h.Namespace},
				&h, nil, now)
			return
		}
		h.Client, h.Kind, h.SpanID = true, storage.HalfClient, span.SpanID()
		h.Peer = firstOf(a.peerService, a.dbName, a.serverAddr, a.netPeerName)
	case ptrace.SpanKindProducer:
		h.Client, h.Kind, h.SpanID, h.Messaging = true, storage.HalfProducer, span.SpanID(), true
		h.Peer = firstOf(a.msgDest, a.msgSystem)
	case ptrace.SpanKindServer, ptrace.SpanKindConsumer:
		h.Kind, h.Messaging = storage.HalfServer, kind == ptrace.SpanKindConsumer
		if h.Messaging {
			h.Kind = storage.HalfConsumer
		}
		h.SpanID = span.ParentSpanID()
		if pcommon.SpanID(h.SpanID).IsEmpty() {
			// A call from outside.
			d.edgeLocked(edgeKey{client: userNode, server: h.Service, conn: connVirtual, serverEnv: h.Environment, serverNs: h.Namespace},
				nil, &h, now)
			return
		}
	default:
		return
	}
	if pcommon.TraceID(h.TraceID).IsEmpty() || pcommon.SpanID(h.SpanID).IsEmpty() {
		// Nothing can pair with it.
		h.Peer = d.internLocked(h.Peer)
		d.aloneLocked(&h, now)
		return
	}
	d.halfLocked(&h, now, now)
}

// halfLocked pairs h with its waiting partner, or parks it in memory
// (arrived at arrived), or drops it when memory is full.
func (d *Deriver) halfLocked(h *Half, arrived, now time.Time) {
	k := pairKey{h.TraceID, h.SpanID}
	if p, ok := d.pending[k]; ok {
		if p.client == h.Client {
			return // a copy of a half already waiting
		}
		delete(d.pending, k)
		other := p.half(k)
		if h.Client {
			d.pairedLocked(h, &other, now)
		} else {
			d.pairedLocked(&other, h, now)
		}
		return
	}
	if len(d.pending) >= d.cfg.MaxPending {
		d.countLocked(countKey{fam: famGraphDropped, client: h.Client, service: h.Service})
		return
	}
	h.Peer = d.internLocked(h.Peer)
	d.pending[k] = pendingOf(h, arrived)
}

// pairedLocked counts a call seen from both sides.
func (d *Deriver) pairedLocked(c, s *Half, now time.Time) {
	conn := connPlain
	if c.Messaging || s.Messaging {
		conn = connMessaging
	}
	d.edgeLocked(edgeKey{client: c.Service, server: s.Service, conn: conn,
		clientEnv: c.Environment, clientNs: c.Namespace, serverEnv: s.Environment, serverNs: s.Namespace}, c, s, now)
}

// aloneLocked settles a half that will pair with nothing: an edge to the
// peer it names, or an unpaired span.
func (d *Deriver) aloneLocked(h *Half, now time.Time) {
	if !h.Client || h.Peer == "" {
		d.countLocked(countKey{fam: famGraphUnpaired, client: h.Client, service: h.Service})
		return
	}
	conn := connVirtual
	if h.Messaging {
		conn = connMessaging
	}
	d.edgeLocked(edgeKey{client: h.Service, server: h.Peer, conn: conn, clientEnv: h.Environment, clientNs: h.Namespace}, h, nil, now)
}

// admitLocked reports whether one more series may be held, counting a
// refusal.
func (d *Deriver) admitLocked() bool {
	if d.nSeries >= d.cfg.MaxSeries {
		d.m.seriesDropped.Inc()
		return false
	}
	d.nSeries++
	return true
}

// redLocked counts a span in its span-metrics series and returns it, or
// nil when it could not be held.
func (d *Deriver) redLocked(res *resourceInfo, name string, kind, status uint8, dur time.Duration, now time.Time) *redSeries {
	k := redKey{service: res.service, name: name, env: res.env, ns: res.ns, kind: kind, status: status}
	s := d.red[k]
	if s == nil {
		ops := d.ops[k.service]
		if _, known := ops[k.name]; !known && len(ops) >= d.cfg.MaxOperationsPerService {
			k.name = overflowName
			d.m.folded(k.service)
			s = d.red[k]
		}
	}
	if s == nil {
		if !d.admitLocked() {
			return nil
		}
		if k.name != overflowName {
			ops := d.ops[k.service]
			if ops == nil {
				ops = map[string]int{}
				d.ops[k.service] = ops
			}
			k.name = strings.Clone(k.name)
			if n, ok := ops[k.name]; ok {
				ops[k.name] = n + 1
			} else {
				ops[k.name] = 1
			}
		}
		s = &redSeries{key: k, h: newHist(msBounds[:])}
		s.lastActive = now
		d.red[k] = s
	}
	s.changed = true
	s.h.observe(msBounds[:], float64(dur)/float64(time.Millisecond))
	return s
}

// newIncLocked returns a new incarnation of a map key.
func (d *Deriver) newIncLocked() int64 {
	d.nextInc++
	return d.nextInc
}

// nodeLocked counts a server or consumer span, whose span-metrics series
// is r, in its map node. A node holds as many keys as the span-metrics
// series it is made from, so MaxSeries bounds nodes too.
func (d *Deriver) nodeLocked(r *redSeries, failed bool, dur time.Duration) {
	n := r.node
	if n == nil || n.dead {
		k := nodeKey{service: r.key.service, env: r.key.env, ns: r.key.ns}
		n = d.nodes[k]
		if n == nil {
			n = &nodeState{key: k, inc: d.newIncLocked(), h: newHist(secBounds)}
			d.nodes[k] = n
		}
		r.node = n
	}
	n.dirty = true
	n.calls++
	if failed {
		n.failed++
	}
	n.h.observe(secBounds, dur.Seconds())
}

// edgeLocked counts a call of an edge from its client half c and server
// half s, either of which may be nil (then the other's duration stands
// for both sides).
func (d *Deriver) edgeLocked(k edgeKey, c, s *Half, now time.Time) {
	e := d.edges[k]
	if e == nil {
		if !d.admitLocked() {
			return
		}
		e = &edgeSeries{key: k, server: newHist(secBounds), client: newHist(secBounds), inc: d.newIncLocked()}
		e.lastActive = now
		d.edges[k] = e
	}
	if c == nil {
		c = s
	}
	if s == nil {
		s = c
	}
	failed := c.Failed || s.Failed
	e.changed, e.mapDirty = true, true
	e.total++
	if failed {
		e.failed++
	}
	e.client.observe(secBounds, c.Duration.Seconds())
	e.server.observe(secBounds, s.Duration.Seconds())
	if !e.example.set || (failed && !e.example.failed) {
		e.example = exampleTrace{set: true, failed: failed, traceID: c.TraceID, start: c.Start, duration: c.Duration}
	}
}

// countLocked adds one to an unpaired or dropped spans counter.
func (d *Deriver) countLocked(k countKey) {
	s := d.counts[k]
	if s == nil {
		if !d.admitLocked() {
			return
		}
		s = &countSeries{key: k}
		d.counts[k] = s
	}
	s.changed = true
	s.n++
}
