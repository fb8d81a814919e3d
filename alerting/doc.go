// Package alerting holds no code: its two subpackages do. alerting/rules
// evaluates Prometheus rule files with Prometheus's rule manager over
// query/promql's engine and the metric store's Queryable and
// AppendableV2, on one replica at a time, and hands the alerts due to be
// sent to a callback. alerting/notify delivers them: Alertmanager's
// routing, grouping, silences and receivers, plus the chat robots
// Alertmanager lacks. The two do not import each other; cmd/vigil
// connects the first's callback to the second. See docs/architecture.md.
package alerting
