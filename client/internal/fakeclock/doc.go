// Package fakeclock is a manually advanced clock for tests of the client's
// state machines (breaker windows, ejection times, retry budgets, EWMA decay,
// discovery refreshes). Time moves only when a test calls Advance or Set.
package fakeclock
