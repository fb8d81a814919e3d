// Package alerting will hold Vigil's rule evaluation (Prometheus rule files
// run by Prometheus's rule manager over the PostgreSQL-backed Queryable)
// and notification delivery from a durable outbox, in alerting/rules and
// alerting/notify. It is empty until the metrics store exists.
package alerting
