package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-obs/vigil/alerting/notify"
	"github.com/vigil-obs/vigil/storage/postgres/leader"
)

func postJSON(t *testing.T, url string, v any) {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

type apiSilence struct {
	ID      string `json:"id"`
	Comment string `json:"comment"`
	Status  struct {
		State string `json:"state"`
	} `json:"status"`
}

// hookConfig writes an Alertmanager configuration sending every group by
// alertname to h, quickly (group_wait 10ms, group_interval 50ms) and once
// an hour at most.
func hookConfig(t *testing.T, h *hook) string {
	return writeConfig(t, fmt.Sprintf(`
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 10ms
  group_interval: 50ms
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: %s
`, h.srv.URL))
}

// notifyElector is the notification lock of storage/postgres/leader over
// pool, tried every 20ms.
func notifyElector(t *testing.T, pool *pgxpool.Pool) notify.Elector {
	return leader.New(pool, leader.KeyNotify, leader.Options{Interval: 20 * time.Millisecond, Logger: testLogger(t)})
}

// failOver stops lead, waits until follow leads and has flushed twice,
// and checks that h received one notification in all.
func failOver(t *testing.T, lead, follow *bundle, h *hook) {
	t.Helper()
	lead.stop()
	waitFor(t, "follower leads", func() bool { return follow.n.Status().Leader })
	waitFor(t, "two flushes of the new leader", func() bool {
		return counter(t, follow.reg, "alertmanager_nflog_queries_total") >= 2
	})
	if n := h.count(); n != 1 {
		t.Fatalf("delivered %d times across the failover, want 1", n)
	}
}

// TestRestart checks that silences and the notification log survive a
// restart: a new notifier over the same database still has the silence
// and does not notify again before repeat_interval.
func TestRestart(t *testing.T) {
	pool := newDB(t)
	h := newHook(t, 200, "")
	path := hookConfig(t, h)
	cfg := notify.Config{AlertmanagerConfig: path}
	first := start(t, pool, cfg, nil)
	srv := httptest.NewServer(first.n.APIHandler())
	postJSON(t, srv.URL+"/api/v2/silences", map[string]any{
		"matchers":  []map[string]any{{"name": "alertname", "value": "Muted", "isRegex": false}},
		"startsAt":  time.Now().Add(-time.Minute),
		"endsAt":    time.Now().Add(time.Hour),
		"createdBy": "test",
		"comment":   "kept across restarts",
	})
	srv.Close()
	alert := notify.Alert{Labels: labelsOf("alertname", "Once", "instance", "a")}
	if err := first.n.Send(context.Background(), alert); err != nil {
		t.Fatal(err)
	}
	if m := h.nextMessage(t); len(m.Alerts) != 1 || m.Alerts[0].Labels["alertname"] != "Once" {
		t.Fatalf("notification = %+v", m)
	}
	// Wait for the notification log entry: it is written after delivery.
	waitFor(t, "notification log written", func() bool {
		st, err := first.store.ReadState(context.Background(), "nflog", 0)
		return err == nil && (len(st.Deltas) > 0 || st.Snapshot != nil)
	})
	first.stop()

	second := start(t, pool, cfg, nil)
	srv = httptest.NewServer(second.n.APIHandler())
	t.Cleanup(srv.Close)
	// Run loads the state in the background: wait for it.
	var sils []apiSilence
	waitFor(t, "silences loaded", func() bool {
		getJSON(t, srv.URL+"/api/v2/silences", &sils)
		return len(sils) > 0
	})
	if len(sils) != 1 || sils[0].Comment != "kept across restarts" || sils[0].Status.State != "active" {
		t.Fatalf("silences after restart = %+v", sils)
	}
	// The alert is back from the database (the rule engine would send it
	// again too): the group flushes every group_interval, and each flush
	// queries the notification log once, after the previous flush ended.
	// Two queries mean the first flush decided, and it sent nothing.
	if err := second.n.Send(context.Background(), alert); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two flushes", func() bool { return counter(t, second.reg, "alertmanager_nflog_queries_total") >= 2 })
	if n := h.count(); n != 1 {
		t.Fatalf("notified %d times across the restart, want 1", n)
	}
	if hs := history(t, second.n, "hook"); len(hs) != 1 {
		t.Fatalf("history = %+v", hs)
	}
}

// TestReplicas runs two notifiers over one database with the leader
// election of storage/postgres/leader: an alert posted to the follower's
// API is delivered exactly once, by the leader, and every replica lists it.
func TestReplicas(t *testing.T) {
	pool := newDB(t)
	h := newHook(t, 200, "")
	path := hookConfig(t, h)
	cfg := notify.Config{AlertmanagerConfig: path}
	elect := func() notify.Elector { return notifyElector(t, pool) }
	replicas := []*bundle{start(t, pool, cfg, elect()), start(t, pool, cfg, elect())}
	var lead, follow *bundle
	waitFor(t, "a leader", func() bool {
		for i, r := range replicas {
			if r.n.Status().Leader {
				lead, follow = r, replicas[1-i]
				return true
			}
		}
		return false
	})
	if follow.n.Status().Leader {
		t.Fatal("two leaders")
	}
	fsrv := httptest.NewServer(follow.n.APIHandler())
	t.Cleanup(fsrv.Close)
	lsrv := httptest.NewServer(lead.n.APIHandler())
	t.Cleanup(lsrv.Close)
	postJSON(t, fsrv.URL+"/api/v2/alerts", []map[string]any{{
		"labels":      map[string]string{"alertname": "Replicated", "service": "api"},
		"annotations": map[string]string{"summary": "posted to the follower"},
	}})
	m := h.nextMessage(t)
	if len(m.Alerts) != 1 || m.Alerts[0].Labels["alertname"] != "Replicated" || m.Alerts[0].Annotations["summary"] != "posted to the follower" {
		t.Fatalf("notification = %+v", m)
	}
	// Two more flushes of the leader decide nothing new; the follower
	// never dispatches.
	base := counter(t, lead.reg, "alertmanager_nflog_queries_total")
	waitFor(t, "two more flushes", func() bool { return counter(t, lead.reg, "alertmanager_nflog_queries_total") >= base+2 })
	if n := h.count(); n != 1 {
		t.Fatalf("delivered %d times, want 1", n)
	}
	if n := counter(t, follow.reg, "alertmanager_notifications_total"); n != 0 {
		t.Fatalf("follower sent %v notifications", n)
	}
	// Both replicas list the alert.
	for _, url := range []string{fsrv.URL, lsrv.URL} {
		waitFor(t, "alert listed by "+url, func() bool {
			var alerts []map[string]any
			getJSON(t, url+"/api/v2/alerts", &alerts)
			return len(alerts) == 1
		})
	}
	// Both replicas serve the alert groups, alike: the follower groups
	// the alerts as the leader does, without sending.
	var groups [2][]map[string]any
	for i, url := range []string{lsrv.URL, fsrv.URL} {
		waitFor(t, "alert group on "+url, func() bool {
			groups[i] = nil
			getJSON(t, url+"/api/v2/alerts/groups", &groups[i])
			return len(groups[i]) == 1
		})
	}
	if !reflect.DeepEqual(groups[0][0]["labels"], groups[1][0]["labels"]) || !reflect.DeepEqual(groups[0][0]["receiver"], groups[1][0]["receiver"]) {
		t.Fatalf("leader's groups %+v, follower's %+v", groups[0], groups[1])
	}

	// Failover: the leader stops, the follower takes over and, reading
	// the shared notification log, does not send the group again.
	failOver(t, lead, follow, h)
}

// TestTakeoverCatchesUp fails over to a replica that has not merged the
// notification log since the leader sent a notification (its periodic
// sync is an hour apart): on taking the lead it catches up before it
// dispatches, and does not send the group again.
func TestTakeoverCatchesUp(t *testing.T) {
	pool := newDB(t)
	h := newHook(t, 200, "")
	path := hookConfig(t, h)
	elect := func() notify.Elector { return notifyElector(t, pool) }
	lead := start(t, pool, notify.Config{AlertmanagerConfig: path}, elect())
	waitFor(t, "the first replica leads", func() bool { return lead.n.Status().Leader })
	follow := start(t, pool, notify.Config{AlertmanagerConfig: path, SyncInterval: time.Hour}, elect())
	// Posted to the follower, which holds the alert from then on; the
	// leader reads it from the store and sends it.
	fsrv := httptest.NewServer(follow.n.APIHandler())
	t.Cleanup(fsrv.Close)
	postJSON(t, fsrv.URL+"/api/v2/alerts", []map[string]any{{"labels": map[string]string{"alertname": "CaughtUp"}}})
	h.nextMessage(t)
	// The notification log entry is written once the leader has sent.
	waitFor(t, "the leader's notification log written", func() bool {
		st, err := lead.store.ReadState(context.Background(), "nflog", 0)
		return err == nil && (len(st.Deltas) > 0 || st.Snapshot != nil)
	})
	failOver(t, lead, follow, h)
}
