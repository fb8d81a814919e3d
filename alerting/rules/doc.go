// Package rules evaluates Prometheus alerting and recording rules over
// Vigil's metric store. It runs Prometheus's own rule manager
// (github.com/prometheus/prometheus/rules) with query/promql's engine, so
// every rule query is held to Vigil's query limits, and writes recorded
// series and the ALERTS and ALERTS_FOR_STATE series through a Prometheus
// AppendableV2 (the metric store or the metric pipeline), where PromQL
// reads them back.
//
// The rule set is the shipped pack (DefaultRules: HighErrorRate,
// HighLatency, HighMemoryUsage, ServiceDown) plus the files that
// Config.RuleFiles match. Reload, a file watcher and cmd/vigil's SIGHUP
// and /-/reload reread it; an invalid set leaves the previous rules
// running and is reported by Status and vigil_rules_* metrics. Check
// validates files as promtool check rules does and lints them for rules
// that load but alert wrongly (vigil rules check).
//
// With several replicas, Manager.Run evaluates only while an Elector
// (storage/postgres/leader) grants it leadership, each term with a fresh
// Prometheus manager, so `for` state is restored from ALERTS_FOR_STATE
// when another replica takes over; after every evaluation of a group it
// writes the group's state to Options.States, from which the other
// replicas answer RuleGroups and ActiveAlerts. Alerts due to be sent go to
// Options.Notify as Prometheus notifier alerts; cmd/vigil hands them to
// alerting/notify. web/api/rulesapi serves RuleGroups, ActiveAlerts and
// Status as Prometheus's /api/v1/rules and /api/v1/alerts.
package rules
