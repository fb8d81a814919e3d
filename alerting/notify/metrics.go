package notify

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are Vigil's own; Alertmanager's packages register theirs
// (alertmanager_notifications_total, alertmanager_silences, …) on the
// same registerer.
type metrics struct {
	historyWriteFailures prometheus.Counter
	stateWriteFailures   *prometheus.CounterVec
	stateSyncFailures    *prometheus.CounterVec
	alertSyncFailures    prometheus.Counter
	configReloadSuccess  prometheus.Gauge
	configReloadTime     prometheus.Gauge
	// requestDuration is handed to Alertmanager's API, which requires it.
	requestDuration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		historyWriteFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_notify_history_write_failures_total",
			Help: "Notification attempts that could not be written to the notification history.",
		}),
		stateWriteFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_notify_state_write_failures_total",
			Help: "Failed writes of silence or notification log changes to the database (retried).",
		}, []string{"state"}),
		stateSyncFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_notify_state_sync_failures_total",
			Help: "Failed reads or merges of silence or notification log changes from the database.",
		}, []string{"state"}),
		alertSyncFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_notify_alert_sync_failures_total",
			Help: "Failed reads of the alerts other replicas received.",
		}),
		configReloadSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_notify_config_last_reload_successful",
			Help: "Whether the last load of the notification configuration succeeded.",
		}),
		configReloadTime: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_notify_config_last_reload_success_timestamp_seconds",
			Help: "When the notification configuration was last loaded successfully.",
		}),
		requestDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "alertmanager_http_request_duration_seconds",
			Help:                            "Histogram of latencies for HTTP requests.",
			Buckets:                         prometheus.DefBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"handler", "method", "code"}),
	}
}
