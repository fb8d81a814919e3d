// Package traces answers trace questions for the HTTP APIs: services,
// operations, a trace by id and trace search. It sits between web/api
// (the Jaeger query API) and the span store, which it sees through
// [Reader].
//
// It applies what every trace query needs regardless of storage, and is
// the only place that does: a deadline per query, the search window when
// a search gives none ([DefaultLookback] or the search's own lookback), the
// cut of that window to the retention (Config.MaxLookback), and the
// result limit ([DefaultLimit], at most [MaxLimit]). The reader therefore
// always receives an explicit window and limit. A search the store stopped
// before it examined the whole window comes back marked
// (storage.FoundTraces.Truncated), for the API to tell the user.
package traces
