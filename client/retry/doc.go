// Package retry holds the two policies that keep retries from hurting: an
// exponential backoff with full jitter (AWS's "Exponential Backoff And
// Jitter"), and a retry budget in the manner of Finagle's RetryBudget, which
// allows retries up to a ratio of the requests seen over a sliding window plus
// a small floor, so that during an outage retries add a bounded fraction of
// load instead of multiplying it.
//
// Which calls may be retried, and where, is decided by the client; this
// package only answers "how long to wait" and "may I". Time comes from an
// injected clock. A Budget is safe for concurrent use.
package retry
