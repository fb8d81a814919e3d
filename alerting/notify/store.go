package notify

import (
	"context"
	"time"

	"github.com/vigil-obs/vigil/storage/postgres/alertstore"
)

// StateStore keeps Alertmanager's silences and notification log as
// deltas and snapshots (see alertstore.Store).
type StateStore interface {
	AppendDelta(ctx context.Context, kind string, data []byte) (int64, error)
	ReadState(ctx context.Context, kind string, after int64) (alertstore.State, error)
	WriteSnapshot(ctx context.Context, kind string, seq int64, data []byte) error
}

// AlertStore keeps the alerts posted to any replica.
type AlertStore interface {
	PutAlerts(ctx context.Context, alerts []alertstore.Alert) error
	AlertsAfter(ctx context.Context, rev int64, limit int) ([]alertstore.Alert, error)
	DeleteAlertsEndedBefore(ctx context.Context, t time.Time) (int64, error)
}

// HistoryStore keeps the notification history.
type HistoryStore interface {
	RecordNotifications(ctx context.Context, ns []alertstore.Notification) error
	Notifications(ctx context.Context, f alertstore.NotificationFilter) ([]alertstore.Notification, error)
	DeleteNotificationsBefore(ctx context.Context, t time.Time) (int64, error)
}

// Store is everything a Notifier keeps in the database;
// *alertstore.Store implements it.
type Store interface {
	StateStore
	AlertStore
	HistoryStore
}

// Elector runs lead while this replica holds the notification lock
// (storage/postgres/leader.Elector with leader.KeyNotify): lead's context
// ends when the lock is lost. Run returns nil once ctx ends.
type Elector interface {
	Run(ctx context.Context, lead func(ctx context.Context) error) error
}
