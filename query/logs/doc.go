// Package logs answers log questions for the HTTP APIs: search with cursor
// pagination, the logs of a trace, and the live tail's feed. It sits
// between web/api and the log store (storage/postgres.LogStore) and applies
// what every log query needs regardless of storage: a deadline per query,
// a default and a cap on the search window, and the result limit. Publisher
// turns what the log pipeline committed into live-tail items.
package logs
