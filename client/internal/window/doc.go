// Package window keeps counters over a sliding time window made of fixed-width
// buckets. The circuit breaker's time-based window and the retry budget both
// count events this way; time comes from the caller so that both can run on an
// injected clock.
package window
