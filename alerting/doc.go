// Package alerting will hold Vigil's rule evaluation (Prometheus rule files
// run by Prometheus's rule manager over query/promql's engine and the
// metric store's Queryable and AppendableV2) in alerting/rules, and
// notification delivery (Alertmanager's routing, grouping, silences and
// receivers, plus the chat robots Alertmanager lacks) in alerting/notify.
// The two meet only in cmd/vigil. It holds no code yet; see
// docs/architecture.md for where each part goes.
package alerting
