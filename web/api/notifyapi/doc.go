// Package notifyapi serves Vigil's own API over notification delivery
// (alerting/notify) for the UI: the receivers with their integrations
// (secrets masked), a receiver test that reports what each integration
// answered, the notification history, and the state of the Alertmanager
// configuration. Alertmanager's own API v2 (what amtool and Prometheus
// speak) is notify.Notifier.APIHandler: API.Register mounts it on the
// Alertmanager paths of /api/v2/, so the Vigil URL is also an
// Alertmanager URL. It reads a Source, which *notify.Notifier implements;
// cmd/vigil hands the API to web as a web.Mounter.
package notifyapi
