// Package rulesapi serves the rule evaluation of alerting/rules over
// HTTP: Prometheus's GET /api/v1/rules and GET /api/v1/alerts, in
// Prometheus's JSON (so Grafana and promtool-style clients read them
// unchanged), and GET /api/vigil/rules/status, the last reload's outcome
// and the loaded files, for Vigil's UI. It reads a Source, which
// *rules.Manager implements (on every replica alike: one that does not
// evaluate answers from the state the evaluating one shared); New returns a web.Mounter that cmd/vigil
// hands to web.New beside the other APIs of web/api.
package rulesapi
