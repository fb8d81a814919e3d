// Package tail is the in-process broadcast hub behind the live tail: the
// ingest pipelines publish what they have just committed, and each
// subscriber (a WebSocket client of web/api) receives the items matching
// its filter.
//
// The hub is generic over the item type so that the same mechanism serves
// log records today and spans later (for example new error spans of a
// service). Publishing never blocks and never allocates per subscriber
// beyond its bounded buffer: a subscriber that does not keep up loses
// items, and the next item it does receive carries the number it lost, so
// the client can show a "dropped N" marker. Memory is therefore bounded by
// MaxSubscribers × Buffer items.
//
// So that one client cannot take every subscription, Subscribe also takes
// quotas: keys such as the client's address or token, each with its own
// limit, counted atomically with the hub-wide MaxSubscribers and released
// when the subscription closes. What a key means is the caller's business
// (web/api keys the live tail by client address and by token).
//
// It is fed after commit, in process: every item a subscriber sees is
// durable, and no database round trip is needed. With several Vigil
// replicas, a client sees what its own replica committed; a Postgres
// LISTEN/NOTIFY relay (payload ids, 8000-byte limit, one more connection
// per replica) can be added behind Publish without changing subscribers.
package tail
