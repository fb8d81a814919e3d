package storage

import "time"

// Kinds of a PairHalf, after the span kind it was made from.
const (
	HalfClient   = "client"
	HalfServer   = "server"
	HalfProducer = "producer"
	HalfConsumer = "consumer"
)

// PairHalf is one side of a call between two services, taken from one
// span by the service-graph deriver: a client or producer span (the
// caller's side) or a server or consumer span (the callee's side). Two
// halves pair when their TraceID and SpanID are equal. A PairHalf is a
// plain value, encoded as JSON where replicas share it.
type PairHalf struct {
	TraceID [16]byte `json:"t"`
	// SpanID is the pairing key: the span's own id for a client or
	// producer span, its parent's id for a server or consumer span.
	SpanID [8]byte `json:"s"`
	// Client is true for the caller's side (Kind client or producer).
	Client bool `json:"c,omitempty"`
	// Kind is HalfClient, HalfServer, HalfProducer or HalfConsumer.
	Kind    string `json:"k"`
	Service string `json:"svc"`
	// Environment and Namespace are the resource's
	// deployment.environment(.name) and k8s.namespace.name, or "".
	Environment string        `json:"env,omitempty"`
	Namespace   string        `json:"ns,omitempty"`
	Failed      bool          `json:"f,omitempty"`
	Start       time.Time     `json:"st"`
	Duration    time.Duration `json:"d"`
	// Peer names the other side when this half ends alone: a virtual
	// node for a client half (peer.service, db.name, server.address, …)
	// or a messaging destination for a producer half; "" when the span
	// names none.
	Peer string `json:"p,omitempty"`
	// Messaging is true for producer and consumer halves.
	Messaging bool `json:"m,omitempty"`
	// ParkedAt is when the half was handed to the shared pairing store.
	ParkedAt time.Time `json:"pa"`
}

// Pair is a call seen from both sides: the client (or producer) half and
// the server (or consumer) half with the same pairing key.
type Pair struct {
	Client PairHalf
	Server PairHalf
}

// MapLatencyBounds are the upper bounds, in seconds, of the latency
// buckets of the service graph (+Inf is implied): those of the
// traces_service_graph_request_{server,client}_seconds histograms and of
// MapCounts. It must not be modified.
var MapLatencyBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60}

// MapKey identifies one rollup series of the service map: an edge (Client
// → Server over ConnectionType, with both sides' environment and
// namespace) or a node (Node true: the server and consumer spans of
// Server in ServerEnv and ServerNs; Client and ConnectionType empty), as
// counted by one deriver replica in one incarnation. The deriver gives a
// key a new Incarnation, unique within its Replica, whenever it creates
// it (again); within an incarnation the counts start at zero and never
// decrease. Absent dimensions are "".
type MapKey struct {
	Replica        string
	Incarnation    int64
	Node           bool
	Client         string
	Server         string
	ConnectionType string
	ClientEnv      string
	ClientNs       string
	ServerEnv      string
	ServerNs       string
}

// MapCounts are the calls of a map key: cumulative since the key's
// incarnation began in a MapRollup, an increase over a window in a
// MapTotal. For an edge they are the calls of
// traces_service_graph_request_total and _failed_total and the server
// and client latencies; for a node its server and consumer spans, those
// with status Error, and their durations (ServerHist; ClientHist empty).
// The histograms hold one count per bucket of MapLatencyBounds and a last
// one for +Inf (not cumulative over buckets); the sums are in seconds.
type MapCounts struct {
	Calls      uint64
	Failed     uint64
	ServerHist []uint64
	ClientHist []uint64
	ServerSum  float64
	ClientSum  float64
}

// MapRollup is the cumulative counts of one key as of one flush.
type MapRollup struct {
	Key    MapKey
	Counts MapCounts
}

// MapWindowQuery asks for the calls of every map key in [Start, End).
// Start and End are whole minutes, Start before End. Env and Namespace
// narrow the keys ("" = any): a node matches by its own environment and
// namespace, an edge when either side matches each. KeyLookback is how far
// before Start the counts of a key at Start are looked for (its writer's
// idle timeout and a margin).
type MapWindowQuery struct {
	Start       time.Time
	End         time.Time
	Env         string
	Namespace   string
	KeyLookback time.Duration
}

// MapTotal is the increase of the calls of a node or an edge over a
// window, summed over replicas, incarnations and the environment and
// namespace dimensions.
type MapTotal struct {
	Node           bool
	Client         string
	Server         string
	ConnectionType string
	Counts         MapCounts
}
