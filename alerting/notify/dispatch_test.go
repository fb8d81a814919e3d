package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/alerting/notify"
)

// instances returns the sorted instance labels of a notification.
func instances(m webhookMessage) []string {
	var out []string
	for _, a := range m.Alerts {
		out = append(out, a.Labels["instance"])
	}
	sort.Strings(out)
	return out
}

// TestDispatch drives Alertmanager's dispatcher through an Alertmanager
// file: grouping, group_wait/group_interval/repeat_interval, resolved
// notifications, inhibition and a silence muting the next notification.
// Durations are short; the test waits for arrivals, never for time.
func TestDispatch(t *testing.T) {
	pool := newDB(t)
	h := newHook(t, 200, "")
	path := writeConfig(t, fmt.Sprintf(`
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 150ms
  repeat_interval: 300ms
receivers:
- name: hook
  webhook_configs:
  - url: %s
    send_resolved: true
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [cluster]
`, h.srv.URL))
	b := start(t, pool, notify.Config{AlertmanagerConfig: path}, nil)
	ctx := context.Background()
	send := func(alerts ...notify.Alert) {
		t.Helper()
		if err := b.n.Send(ctx, alerts...); err != nil {
			t.Fatal(err)
		}
	}
	// nextOf returns the next notification of group alertname.
	nextOf := func(alertname string) webhookMessage {
		t.Helper()
		for {
			m := h.nextMessage(t)
			if m.GroupLabels["alertname"] == alertname {
				return m
			}
		}
	}
	a := func(instance string) notify.Alert {
		return notify.Alert{Labels: labelsOf("alertname", "Load", "instance", instance)}
	}

	// Grouping: two alerts sent together arrive in one notification.
	send(a("1"), a("2"))
	if got := instances(nextOf("Load")); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("first notification has %v", got)
	}
	// group_interval: a new alert in the group is notified with the rest.
	send(a("3"))
	for {
		if got := instances(nextOf("Load")); fmt.Sprint(got) == "[1 2 3]" {
			break
		}
	}
	// repeat_interval: with nothing new, the group is notified again.
	if got := instances(nextOf("Load")); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("repeated notification has %v", got)
	}

	// A silence on instance 1 mutes it from the next notification on: at
	// most the one notification already being sent may still carry it.
	sil := map[string]any{
		"matchers":  []map[string]any{{"name": "instance", "value": "1", "isRegex": false, "isEqual": true}},
		"startsAt":  time.Now().Add(-time.Minute),
		"endsAt":    time.Now().Add(time.Hour),
		"createdBy": "test",
		"comment":   "maintenance",
	}
	body, _ := json.Marshal(sil)
	srv := httptest.NewServer(b.n.APIHandler())
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL+"/api/v2/silences", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post silence: %s", resp.Status)
	}
	// The silence stops instance 1 at the latest in the notification
	// after the one in flight.
	for i := 0; ; i++ {
		got := fmt.Sprint(instances(nextOf("Load")))
		if got == "[2 3]" {
			break
		}
		if i >= 1 {
			t.Fatalf("notification %d after the silence still has %s", i+1, got)
		}
	}

	// Resolved: the group's alerts end; a resolved notification follows.
	past := time.Now().Add(-time.Second)
	r2, r3 := a("2"), a("3")
	r2.EndsAt, r3.EndsAt = past, past
	send(r2, r3)
	for {
		m := nextOf("Load")
		if m.Status == "resolved" {
			break
		}
	}

	// Inhibition: a critical alert on cluster c1 inhibits the warnings
	// of c1, not those of c2.
	send(notify.Alert{Labels: labelsOf("alertname", "ClusterDown", "cluster", "c1", "severity", "critical")})
	nextOf("ClusterDown")
	send(
		notify.Alert{Labels: labelsOf("alertname", "Slow", "cluster", "c1", "severity", "warning", "instance", "c1")},
		notify.Alert{Labels: labelsOf("alertname", "Slow", "cluster", "c2", "severity", "warning", "instance", "c2")},
	)
	if got := instances(nextOf("Slow")); fmt.Sprint(got) != "[c2]" {
		t.Fatalf("inhibited alert notified: %v", got)
	}
}
