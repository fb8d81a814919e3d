// Package breaker implements a circuit breaker in the manner of resilience4j:
// closed, open and half-open states; a count-based or time-based sliding window
// of call outcomes; a failure-rate and a slow-call-rate threshold that trip the
// breaker once a minimum number of calls has been seen; a fixed wait in the open
// state; and a limited number of probe calls in the half-open state whose
// outcomes decide whether the circuit closes again.
//
// The client keeps one Breaker per logical service and one per instance. Time
// comes from an injected Clock, so every transition can be tested without
// sleeping. A Breaker is safe for concurrent use.
package breaker
