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
