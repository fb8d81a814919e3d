package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-obs/vigil/alerting/notify"
)

// TestWebhookV4 checks the one-flag path (--alert-webhook URL): the body
// Alertmanager's webhook sends, field by field, for a firing then a
// resolved notification, and the grouping by alertname and service.
func TestWebhookV4(t *testing.T) {
	pool := newDB(t)
	h := newHook(t, 200, "")
	b := start(t, pool, notify.Config{
		Webhooks:      []string{h.srv.URL + "/hook"},
		GroupWait:     50 * time.Millisecond,
		GroupInterval: 100 * time.Millisecond,
	}, nil)
	ctx := context.Background()
	startsAt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := notify.Alert{
		Labels:       labelsOf("alertname", "HighLatency", "service", "checkout", "severity", "page"),
		Annotations:  labelsOf("summary", "p99 above 1s"),
		StartsAt:     startsAt,
		GeneratorURL: "http://vigil.example:8080/graph?g0.expr=x",
	}
	if err := b.n.Send(ctx, a); err != nil {
		t.Fatal(err)
	}
	m := h.nextMessage(t)
	fp := model.LabelSet{"alertname": "HighLatency", "service": "checkout", "severity": "page"}.Fingerprint().String()
	for _, c := range []struct{ field, got, want string }{
		{"version", m.Version, "4"},
		{"groupKey", m.GroupKey, `{}:{alertname="HighLatency", service="checkout"}`},
		{"status", m.Status, "firing"},
		{"receiver", m.Receiver, "webhook"},
		{"externalURL", m.ExternalURL, "http://vigil.example:8080/"},
		{"groupLabels.alertname", m.GroupLabels["alertname"], "HighLatency"},
		{"groupLabels.service", m.GroupLabels["service"], "checkout"},
		{"commonLabels.severity", m.CommonLabels["severity"], "page"},
		{"commonAnnotations.summary", m.CommonAnnotations["summary"], "p99 above 1s"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if len(m.GroupLabels) != 2 || len(m.CommonLabels) != 3 {
		t.Errorf("groupLabels %v, commonLabels %v", m.GroupLabels, m.CommonLabels)
	}
	if len(m.Alerts) != 1 {
		t.Fatalf("alerts = %+v", m.Alerts)
	}
	got := m.Alerts[0]
	if got.Status != "firing" || got.Labels["service"] != "checkout" || got.Annotations["summary"] != "p99 above 1s" ||
		!got.StartsAt.Equal(startsAt) || got.GeneratorURL != a.GeneratorURL || got.Fingerprint != fp {
		t.Errorf("alert = %+v (fingerprint want %s)", got, fp)
	}
	// Without an end time, Alertmanager reports a firing alert as not
	// ended (zero time).
	if !got.EndsAt.IsZero() {
		t.Errorf("endsAt of a firing alert = %s", got.EndsAt)
	}

	// Resolved: the same alert with an end in the past.
	endsAt := time.Now().Add(-time.Second).UTC().Truncate(time.Second)
	a.EndsAt = endsAt
	if err := b.n.Send(ctx, a); err != nil {
		t.Fatal(err)
	}
	m = h.nextMessage(t)
	if m.Status != "resolved" || len(m.Alerts) != 1 || m.Alerts[0].Status != "resolved" || !m.Alerts[0].EndsAt.Equal(endsAt) {
		t.Fatalf("resolved notification = %+v", m)
	}

	// An alert without service is grouped by alertname alone.
	if err := b.n.Send(ctx, notify.Alert{Labels: labelsOf("alertname", "DiskFull", "instance", "db1")}); err != nil {
		t.Fatal(err)
	}
	m = h.nextMessage(t)
	if m.GroupKey != `{}:{alertname="DiskFull"}` || len(m.GroupLabels) != 1 || m.GroupLabels["alertname"] != "DiskFull" {
		t.Fatalf("group of an alert without service: key %q labels %v", m.GroupKey, m.GroupLabels)
	}

	// Every attempt is in the history, with no URL in it.
	waitFor(t, "three history entries", func() bool { return len(history(t, b.n, "webhook")) >= 3 })
	for _, e := range history(t, b.n, "webhook") {
		if !e.OK || e.Integration != "webhook" || e.Index != 0 || e.Test {
			t.Errorf("history entry %+v", e)
		}
	}
}

// TestLogReceiver checks that without a file or webhooks notifications
// are logged and recorded in the history.
func TestLogReceiver(t *testing.T) {
	pool := newDB(t)
	b := start(t, pool, notify.Config{GroupWait: 10 * time.Millisecond}, nil)
	if err := b.n.Send(context.Background(), notify.Alert{Labels: labelsOf("alertname", "Up", "service", "api")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "log notification in history", func() bool { return len(history(t, b.n, notify.LogReceiver)) > 0 })
	e := history(t, b.n, notify.LogReceiver)[0]
	if !e.OK || e.Integration != "log" || e.Firing != 1 || e.GroupKey != `{}:{alertname="Up", service="api"}` {
		t.Fatalf("history entry %+v", e)
	}
	rs := b.n.Receivers()
	if len(rs) != 1 || rs[0].Name != notify.LogReceiver || len(rs[0].Integrations) != 1 || rs[0].Integrations[0].Type != "log" {
		t.Fatalf("receivers = %+v", rs)
	}
}

// TestSendRejectsInvalidAlerts checks that an alert Alertmanager would
// refuse is an error, not a panic or a silent drop.
func TestSendRejectsInvalidAlerts(t *testing.T) {
	pool := newDB(t)
	b := start(t, pool, notify.Config{}, nil)
	for _, a := range []notify.Alert{
		{},
		{Labels: labelsOf("", "x")},
		{Labels: labelsOf("alertname", "X"), StartsAt: time.Now(), EndsAt: time.Now().Add(-time.Hour)},
	} {
		if err := b.n.Send(context.Background(), a); err == nil {
			t.Errorf("Send(%+v) accepted", a)
		}
	}
}
