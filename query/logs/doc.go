// Package logs answers log questions for the HTTP APIs: search with cursor
// pagination, volume over time, the logs of a trace, and the live tail's
// feed. It sits between web/api/logsapi (the native log API) and the log store,
// which it sees through [Reader]; [Publisher] turns what the log pipeline
// committed into live-tail items.
//
// It applies what every log query needs regardless of storage, and is the
// only place that does: a deadline per query, the search window when a
// query gives none ([DefaultLookback], or [DefaultTraceLookback] for a
// search by trace id), the cap on its width (Config.MaxLookback), the page
// size ([DefaultLimit], at most [MaxLimit]), the histogram's buckets
// ([DefaultHistogramBuckets], at most [MaxHistogramBuckets]) and the
// records of one trace (at most [MaxTraceLogs]). The reader therefore
// always receives an explicit window and limit.
package logs
