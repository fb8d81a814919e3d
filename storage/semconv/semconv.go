// Package semconv holds the one table of attribute names that OpenTelemetry's
// semantic conventions renamed between generations, so that a search by
// either name finds spans and log records that carry the other. Spans are
// stored with the names their senders used (ingest/jaeger keeps a Jaeger
// client's http.status_code as it is); the searches read both generations
// instead: the trace search (storage/postgres/spanstore) and the log
// attribute filters (storage.AttrMatches, storage/postgres/logstore). It
// lives under storage, not internal, because the stores, which may import
// nothing outside storage, are its users.
//
// Sources: the OpenTelemetry HTTP semantic-convention migration guide
// (semconv v1.20.0 to v1.23.0, the first stable HTTP conventions:
// https://opentelemetry.io/docs/specs/semconv/non-normative/http-migration/)
// and the database one (to v1.26.0 and the stable database conventions:
// https://opentelemetry.io/docs/specs/semconv/non-normative/db-migration/),
// with the messaging and user-agent renames of the same releases.
//
// Only renames that keep the value are listed: a value found under one name
// means the same under the other. Splits are left out or noted: http.target
// became url.path plus url.query, so http.target ↔ url.path matches only
// targets without a query string. exception.* did not change.
//
// The network names depend on the side of the call. server.address is the
// peer's name on a client span (net.peer.name before) and the local host's
// name on a server span (net.host.name before); on a server span
// net.peer.name used to name the client. Each of those aliases therefore
// holds only for one side, told by the span kind: net.peer.name and
// net.peer.port for every kind but server, net.host.name and net.host.port
// for server spans only. Given the kind, each old name has one new name and
// back, so the pairs are unambiguous.
//
// The package is plain data and safe for concurrent use: nothing in it
// changes after start-up.
package semconv

// Side restricts an alias to spans of some kinds.
type Side uint8

const (
	// AnySide applies to every span and log record.
	AnySide Side = iota
	// ServerSide applies to server spans only.
	ServerSide
	// NotServerSide applies to every span but server ones (client,
	// producer, consumer, internal and unspecified). A log record has no
	// kind: the log filters use AnySide aliases only.
	NotServerSide
)

// Applies reports whether an alias of side s holds for a span that is (or
// is not) a server span.
func (s Side) Applies(server bool) bool {
	switch s {
	case ServerSide:
		return server
	case NotServerSide:
		return !server
	}
	return true
}

// Rename is one attribute renamed by the semantic conventions.
type Rename struct {
	Old, New string
	// Side is where the two names mean the same.
	Side Side
}

// Renames is the table, old name first. It is not to be modified.
var Renames = []Rename{
	// HTTP (migration guide, semconv v1.20.0 → v1.23.0).
	{Old: "http.method", New: "http.request.method"},
	{Old: "http.status_code", New: "http.response.status_code"},
	{Old: "http.url", New: "url.full"},
	{Old: "http.target", New: "url.path"}, // only targets without "?query"
	{Old: "http.scheme", New: "url.scheme"},
	{Old: "http.user_agent", New: "user_agent.original"},
	{Old: "net.peer.name", New: "server.address", Side: NotServerSide},
	{Old: "net.peer.port", New: "server.port", Side: NotServerSide},
	{Old: "net.host.name", New: "server.address", Side: ServerSide},
	{Old: "net.host.port", New: "server.port", Side: ServerSide},
	// Database (migration guide, to semconv v1.26.0 and later).
	{Old: "db.statement", New: "db.query.text"},
	{Old: "db.operation", New: "db.operation.name"},
	// Messaging (semconv v1.17.0 → v1.21.0).
	{Old: "messaging.destination", New: "messaging.destination.name"},
}

// Alias is another name of an attribute, valid on spans of Side.
type Alias struct {
	Key  string
	Side Side
}

// Aliases returns the other names of key, old or new, with the side where
// each holds; nil when key was not renamed. The result must not be
// modified.
func Aliases(key string) []Alias {
	return aliases[key]
}

var aliases = func() map[string][]Alias {
	m := make(map[string][]Alias, 2*len(Renames))
	for _, r := range Renames {
		m[r.Old] = append(m[r.Old], Alias{Key: r.New, Side: r.Side})
		m[r.New] = append(m[r.New], Alias{Key: r.Old, Side: r.Side})
	}
	return m
}()
