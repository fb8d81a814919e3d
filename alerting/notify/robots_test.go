package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/vigil-obs/vigil/alerting/notify"
)

// TestRobotReceivers checks that the robot configs Vigil adds to an
// Alertmanager file (here a WeCom group robot) become integrations of the
// receiver, after Alertmanager's own, and deliver.
func TestRobotReceivers(t *testing.T) {
	pool := newDB(t)
	hook := newHook(t, 200, "")
	robot := newHook(t, 200, `{"errcode":0,"errmsg":"ok"}`)
	path := writeConfig(t, fmt.Sprintf(`
route:
  receiver: oncall
  group_wait: 10ms
receivers:
- name: oncall
  webhook_configs:
  - url: %s
  wecom_robot_configs:
  - webhook_url: %s/cgi-bin/webhook/send?key=secret-key
`, hook.srv.URL, robot.srv.URL))
	b := start(t, pool, notify.Config{AlertmanagerConfig: path}, nil)
	rs := b.n.Receivers()
	if len(rs) != 1 || len(rs[0].Integrations) != 2 || rs[0].Integrations[0].Type != "webhook" ||
		rs[0].Integrations[1].Type != "wecom" || rs[0].Integrations[1].Index != 1 {
		t.Fatalf("receivers = %+v", rs)
	}
	if strings.Contains(rs[0].Config, "secret-key") {
		t.Fatalf("receiver config leaks the robot key:\n%s", rs[0].Config)
	}
	if err := b.n.Send(context.Background(), notify.Alert{Labels: labelsOf("alertname", "PaymentsDown", "service", "pay")}); err != nil {
		t.Fatal(err)
	}
	var msg struct {
		MsgType  string `json:"msgtype"`
		Markdown struct {
			Content string `json:"content"`
		} `json:"markdown"`
	}
	if err := json.Unmarshal(robot.next(t), &msg); err != nil {
		t.Fatal(err)
	}
	if msg.MsgType != "markdown" || !strings.Contains(msg.Markdown.Content, "PaymentsDown") {
		t.Fatalf("robot body = %+v", msg)
	}
	hook.next(t)
	waitFor(t, "both integrations in history", func() bool { return len(history(t, b.n, "oncall")) >= 2 })
	for _, e := range history(t, b.n, "oncall") {
		if !e.OK || strings.Contains(e.Message, "secret-key") {
			t.Fatalf("history entry %+v", e)
		}
	}
}
