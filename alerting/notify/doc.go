// Package notify is Vigil's notification delivery: an Alertmanager built
// from Alertmanager's own packages (config, receivers, provider/mem,
// dispatch, inhibit, silence, nflog, the notification pipeline, templates,
// time intervals and the v2 API that amtool speaks), minus its gossip
// cluster, with its state in PostgreSQL.
//
// Where it sits: the rule engine (alerting/rules) hands firing and
// resolved alerts to Notifier.Send, and any client may post them to the
// Alertmanager API (APIHandler, /api/v2/); the two meet only in cmd/vigil.
// Notifications leave through Alertmanager's receivers (webhook, Slack,
// Discord, Teams, email, PagerDuty, …) plus the chat robots of
// alerting/notify/robots (Feishu, DingTalk, WeCom) that Vigil adds to an
// Alertmanager file. web/api/notifyapi serves receivers, receiver tests,
// the notification history and the configuration status to the UI.
//
// Configuration (Config) is an Alertmanager file, or a list of webhook
// URLs (a generated route grouped by alertname and service), or, with
// neither, the built-in "log" receiver that logs each notification. Reload
// keeps the running configuration when the new one is invalid.
//
// Replicas: state goes through a Store (storage/postgres/alertstore) in
// place of gossip. Every change of silences and of the notification log
// is appended to the database as the very message gossip would carry, and
// every replica merges the changes it has not seen every SyncInterval;
// maintenance stores a snapshot and drops the changes it covers. Alerts
// posted to any replica are written to the database and copied into every
// replica's in-memory provider, so the API answers the same everywhere.
// Only the replica holding the notification lock (Elector, usually
// storage/postgres/leader with KeyNotify) sends: it runs the inhibitor and
// a dispatcher with the notification pipeline; the shared notification
// log keeps a new leader from sending again what the old one sent, and a
// replica that takes the lead merges it (and the silences and alerts)
// before it dispatches, not at its next SyncInterval. The
// other replicas run an inhibitor and a dispatcher whose pipeline sends
// nothing, so alert groups (/api/v2/alerts/groups) and inhibited states
// answer on every replica.
//
// Every delivery attempt of every integration is cut after
// IntegrationTimeout and recorded in the history (time, receiver,
// integration and index, group key, counts, outcome, the error text with
// URLs removed, duration). Alertmanager's retry stage retries only
// failures it deems recoverable (5xx, timeouts), never a 4xx.
package notify
