package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/common/model"

	"github.com/vigil-obs/vigil/storage/postgres/alertstore"
)

// alertsPerRead bounds one read of changed alerts.
const alertsPerRead = 1000

// endedAlertsKept is how long an alert stays in the database after it
// ended, so that a replica starting meanwhile still sends its resolved
// notification.
const endedAlertsKept = time.Hour

// Alert is an alert handed to Send, as Prometheus's rule engine produces
// it (notifier.Alert): the labels identify it, a zero EndsAt means firing
// until ResolveTimeout passes without the alert being sent again.
type Alert struct {
	Labels       map[string]string
	Annotations  map[string]string
	StartsAt     time.Time
	EndsAt       time.Time
	GeneratorURL string
}

// storedAlert is an alert as the AlertStore keeps it.
type storedAlert struct {
	model.Alert
	UpdatedAt time.Time `json:"updatedAt"`
	Timeout   bool      `json:"timeout,omitempty"`
}

// sharedAlerts is the alert provider the API and Send write to: a local
// provider/mem that the dispatcher reads, whose changes are also written
// to the AlertStore for the other replicas, which copy them into their
// own local provider (syncAlerts).
type sharedAlerts struct {
	*mem.Alerts
	store AlertStore
	last  int64 // last revision copied; only the sync loop uses it
}

// Put stores alerts locally, then writes the merged result to the
// database; an error means other replicas may not see them yet.
func (s *sharedAlerts) Put(ctx context.Context, alerts ...*alert.Alert) error {
	if err := s.Alerts.Put(ctx, alerts...); err != nil {
		return err
	}
	rows := make([]alertstore.Alert, 0, len(alerts))
	for _, a := range alerts {
		if merged, err := s.Get(a.Fingerprint()); err == nil {
			a = merged
		}
		data, err := json.Marshal(storedAlert{Alert: a.Alert, UpdatedAt: a.UpdatedAt, Timeout: a.Timeout})
		if err != nil {
			return fmt.Errorf("encode alert: %w", err)
		}
		rows = append(rows, alertstore.Alert{Fingerprint: uint64(a.Fingerprint()), EndsAt: a.EndsAt, Data: data})
	}
	return s.store.PutAlerts(ctx, rows)
}

// sync copies into the local provider the alerts changed in the database
// since the last copy.
func (s *sharedAlerts) sync(ctx context.Context) error {
	for {
		rows, err := s.store.AlertsAfter(ctx, s.last, alertsPerRead)
		if err != nil {
			return err
		}
		alerts := make([]*alert.Alert, 0, len(rows))
		for _, r := range rows {
			var sa storedAlert
			if err := json.Unmarshal(r.Data, &sa); err != nil {
				return fmt.Errorf("decode alert %016x: %w", r.Fingerprint, err)
			}
			alerts = append(alerts, alert.New(sa.Alert, sa.UpdatedAt, sa.Timeout))
			s.last = r.Rev
		}
		if err := s.Alerts.Put(ctx, alerts...); err != nil {
			return err
		}
		if len(rows) < alertsPerRead {
			return nil
		}
	}
}

// toAlerts converts alerts handed to Send, with Alertmanager's API rules:
// a missing start is now, a missing end is now plus the resolve timeout
// (and marks the alert as timing out).
func toAlerts(in []Alert, now time.Time, resolveTimeout time.Duration) ([]*alert.Alert, error) {
	out := make([]*alert.Alert, 0, len(in))
	for i, a := range in {
		m := model.Alert{
			Labels:       make(model.LabelSet, len(a.Labels)),
			Annotations:  make(model.LabelSet, len(a.Annotations)),
			StartsAt:     a.StartsAt,
			EndsAt:       a.EndsAt,
			GeneratorURL: a.GeneratorURL,
		}
		for k, v := range a.Labels {
			m.Labels[model.LabelName(k)] = model.LabelValue(v)
		}
		for k, v := range a.Annotations {
			m.Annotations[model.LabelName(k)] = model.LabelValue(v)
		}
		if m.StartsAt.IsZero() {
			if m.EndsAt.IsZero() {
				m.StartsAt = now
			} else {
				m.StartsAt = m.EndsAt
			}
		}
		timeout := false
		if m.EndsAt.IsZero() {
			timeout = true
			m.EndsAt = now.Add(resolveTimeout)
		}
		na := alert.New(m, now, timeout)
		if err := na.Validate(); err != nil {
			return nil, fmt.Errorf("alert %d (%s): %w", i, m.Labels, err)
		}
		out = append(out, na)
	}
	return out, nil
}
