package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/alerting/notify"
)

// TestChatReceivers checks that Alertmanager's Slack, Discord and Teams
// (Workflows) receivers, built from an Alertmanager file, deliver their
// own payloads.
func TestChatReceivers(t *testing.T) {
	pool := newDB(t)
	slack := newHook(t, 200, "ok")
	discord := newHook(t, 204, "")
	teams := newHook(t, 202, "")
	path := writeConfig(t, fmt.Sprintf(`
route:
  receiver: chat
  group_by: [alertname]
  group_wait: 50ms
receivers:
- name: chat
  slack_configs:
  - api_url: %s/services/T0/B0/XXXX
    channel: '#alerts'
    title: '{{ .CommonLabels.alertname }} is {{ .Status }}'
  discord_configs:
  - webhook_url: %s/api/webhooks/1/token
  msteamsv2_configs:
  - webhook_url: %s/workflows/1
`, slack.srv.URL, discord.srv.URL, teams.srv.URL))
	b := start(t, pool, notify.Config{AlertmanagerConfig: path}, nil)
	if err := b.n.Send(context.Background(), notify.Alert{
		Labels:      labelsOf("alertname", "QueueBacklog", "service", "billing"),
		Annotations: labelsOf("summary", "backlog above 10k"),
	}); err != nil {
		t.Fatal(err)
	}

	var s struct {
		Channel     string `json:"channel"`
		Attachments []struct {
			Title string `json:"title"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(slack.next(t), &s); err != nil {
		t.Fatal(err)
	}
	if s.Channel != "#alerts" || len(s.Attachments) != 1 || s.Attachments[0].Title != "QueueBacklog is firing" {
		t.Errorf("slack body = %+v", s)
	}

	var d struct {
		Embeds []struct {
			Title       string `json:"title"`
			Description string `json:"description"`
			Color       int    `json:"color"`
		} `json:"embeds"`
	}
	if err := json.Unmarshal(discord.next(t), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Embeds) != 1 || !containsAll(d.Embeds[0].Title, "FIRING:1", "QueueBacklog") {
		t.Errorf("discord body = %+v", d)
	}

	var m struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string `json:"contentType"`
			Content     struct {
				Type string `json:"type"`
				Body []struct {
					Text string `json:"text"`
				} `json:"body"`
			} `json:"content"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(teams.next(t), &m); err != nil {
		t.Fatal(err)
	}
	if m.Type != "message" || len(m.Attachments) != 1 || m.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" ||
		m.Attachments[0].Content.Type != "AdaptiveCard" || len(m.Attachments[0].Content.Body) == 0 ||
		!strings.Contains(m.Attachments[0].Content.Body[0].Text, "QueueBacklog") {
		t.Errorf("teams body = %+v", m)
	}

	// The receiver's integrations, with their URLs (which carry tokens)
	// masked.
	rs := b.n.Receivers()
	if len(rs) != 1 || len(rs[0].Integrations) != 3 {
		t.Fatalf("receivers = %+v", rs)
	}
	types := map[string]bool{}
	for _, in := range rs[0].Integrations {
		types[in.Type] = true
	}
	if !types["slack"] || !types["discord"] || !types["msteamsv2"] {
		t.Errorf("integration types = %v", types)
	}
	if strings.Contains(rs[0].Config, "127.0.0.1") || strings.Contains(rs[0].Config, "XXXX") || !strings.Contains(rs[0].Config, "<secret>") {
		t.Errorf("receiver config leaks a secret:\n%s", rs[0].Config)
	}
	waitFor(t, "three history entries", func() bool { return len(history(t, b.n, "chat")) >= 3 })
}

// TestNonRetryableFailure checks that a receiver answering 4xx is not
// retried (Alertmanager's retry stage stops on it) and that the failure,
// with the receiver's answer but not its URL, is in the history.
func TestNonRetryableFailure(t *testing.T) {
	pool := newDB(t)
	h := newHook(t, http.StatusBadRequest, "bad payload")
	b := start(t, pool, notify.Config{
		Webhooks:      []string{h.srv.URL + "/secret-token"},
		GroupWait:     10 * time.Millisecond,
		GroupInterval: time.Hour,
	}, nil)
	if err := b.n.Send(context.Background(), notify.Alert{Labels: labelsOf("alertname", "X")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "failure in history", func() bool { return len(history(t, b.n, "webhook")) > 0 })
	// The flush that failed has ended once the dispatcher's failure
	// counter moved; a retrying stage would still be attempting.
	waitFor(t, "flush ended", func() bool { return counter(t, b.reg, "alertmanager_notifications_failed_total") > 0 })
	hs := history(t, b.n, "webhook")
	if len(hs) != 1 {
		t.Fatalf("%d attempts recorded, want 1: %+v", len(hs), hs)
	}
	e := hs[0]
	if e.OK || e.Retry || !containsAll(e.Message, "400", "bad payload") || strings.Contains(e.Message, "secret-token") || strings.Contains(e.Message, "127.0.0.1") {
		t.Fatalf("history entry %+v", e)
	}
	if h.count() != 1 {
		t.Fatalf("receiver called %d times, want 1", h.count())
	}
}

// TestHangingReceiver checks that an attempt on a receiver that does not
// answer is cut by the integration timeout, recorded as a retryable
// failure, and retried.
func TestHangingReceiver(t *testing.T) {
	pool := newDB(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	b := start(t, pool, notify.Config{
		Webhooks:           []string{srv.URL},
		GroupWait:          10 * time.Millisecond,
		IntegrationTimeout: 100 * time.Millisecond,
	}, nil)
	if err := b.n.Send(context.Background(), notify.Alert{Labels: labelsOf("alertname", "X")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two cut attempts in history", func() bool { return len(history(t, b.n, "webhook")) >= 2 })
	for _, e := range history(t, b.n, "webhook") {
		if e.OK || !e.Retry || !strings.Contains(e.Message, "integration timeout 100ms reached") {
			t.Fatalf("history entry %+v", e)
		}
	}
	b.stop()
}

// TestTestReceiver checks the receiver test: what each integration
// answered, and the history entries marked as tests.
func TestTestReceiver(t *testing.T) {
	pool := newDB(t)
	good := newHook(t, 200, "")
	bad := newHook(t, 500, "database locked")
	path := writeConfig(t, fmt.Sprintf(`
route:
  receiver: team
receivers:
- name: team
  webhook_configs:
  - url: %s/a
  - url: %s/b
`, good.srv.URL, bad.srv.URL))
	b := start(t, pool, notify.Config{AlertmanagerConfig: path}, nil)
	res, err := b.n.TestReceiver(context.Background(), "team")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Integrations) != 2 {
		t.Fatalf("result = %+v", res)
	}
	if r := res.Integrations[0]; !r.OK || r.Type != "webhook" || r.Index != 0 {
		t.Errorf("first integration = %+v", r)
	}
	if r := res.Integrations[1]; r.OK || !r.Retry || r.Index != 1 || !containsAll(r.Message, "500", "database locked") || strings.Contains(r.Message, "127.0.0.1") {
		t.Errorf("second integration = %+v", r)
	}
	var m webhookMessage
	if err := json.Unmarshal(good.next(t), &m); err != nil {
		t.Fatal(err)
	}
	if m.Receiver != "team" || len(m.Alerts) != 1 || m.Alerts[0].Labels["alertname"] != "VigilTestAlert" {
		t.Errorf("test notification = %+v", m)
	}
	hs := history(t, b.n, "team")
	if len(hs) != 2 || !hs[0].Test || !hs[1].Test {
		t.Fatalf("history = %+v", hs)
	}
	if _, err := b.n.TestReceiver(context.Background(), "nobody"); !errors.Is(err, notify.ErrUnknownReceiver) {
		t.Fatalf("unknown receiver: %v", err)
	}
}

// TestReload checks that an invalid configuration is refused with an
// error naming the file, line and receiver, and that the old one stays.
func TestReload(t *testing.T) {
	pool := newDB(t)
	h := newHook(t, 200, "")
	valid := fmt.Sprintf("route:\n  receiver: a\n  group_wait: 10ms\nreceivers:\n- name: a\n  webhook_configs:\n  - url: %s\n", h.srv.URL)
	path := writeConfig(t, valid)
	b := start(t, pool, notify.Config{AlertmanagerConfig: path}, nil)
	ctx := context.Background()

	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"yaml", "route:\n  receiver: a\n  group_wait: [\nreceivers: []\n", []string{path, "line"}},
		{"unknown key", "route:\n  receiver: a\nreceivers:\n- name: a\n  webhook_configz: []\n", []string{path, "line 5", "webhook_configz"}},
		{"undefined receiver", "route:\n  receiver: b\nreceivers:\n- name: a\n", []string{path, `"b"`}},
		{"bad client", "route:\n  receiver: a\nreceivers:\n- name: a\n  webhook_configs:\n  - url: http://127.0.0.1/x\n    http_config:\n      tls_config:\n        ca_file: /nonexistent/ca.pem\n", []string{path, "receiver", `"a"`, "ca.pem"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			err := b.n.Reload(ctx)
			if err == nil || !containsAll(err.Error(), c.want...) {
				t.Fatalf("reload error %v, want it to mention %q", err, c.want)
			}
			st := b.n.Status()
			if st.Error != err.Error() || st.Source != path {
				t.Fatalf("status = %+v", st)
			}
			if rs := b.n.Receivers(); len(rs) != 1 || rs[0].Name != "a" {
				t.Fatalf("old configuration not kept: %+v", rs)
			}
		})
	}
	if err := os.WriteFile(path, []byte(valid+"route:\n  receiver: a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.n.Reload(ctx); err == nil {
		t.Fatal("duplicate route key accepted")
	}
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(valid, ": a", ": b")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.n.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := b.n.Receivers(); len(rs) != 1 || rs[0].Name != "b" || b.n.Status().Error != "" {
		t.Fatalf("after a valid reload: %+v %+v", rs, b.n.Status())
	}
	// The new route is in force: an alert reaches receiver b.
	if err := b.n.Send(ctx, notify.Alert{Labels: labelsOf("alertname", "X")}); err != nil {
		t.Fatal(err)
	}
	if m := h.nextMessage(t); m.Receiver != "b" {
		t.Fatalf("notification for %q", m.Receiver)
	}
}

// TestNewRefusesInvalidConfig checks New's errors.
func TestNewRefusesInvalidConfig(t *testing.T) {
	pool := newDB(t)
	for _, c := range []struct {
		name string
		cfg  notify.Config
		want string
	}{
		{"missing file", notify.Config{AlertmanagerConfig: "/nonexistent/am.yml"}, "/nonexistent/am.yml"},
		{"bad webhook", notify.Config{Webhooks: []string{"ftp://x"}}, "webhooks[0]"},
		{"negative", notify.Config{ResolveTimeout: -time.Second}, "resolve_timeout"},
		{"no unit", notify.Config{GroupWait: 30}, "group_wait"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := notify.New(c.cfg, notify.Options{Store: alertstoreOf(pool)})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New error %v, want it to mention %q", err, c.want)
			}
		})
	}
	if _, err := notify.New(notify.Config{}, notify.Options{}); err == nil {
		t.Fatal("New without a store accepted")
	}
}
