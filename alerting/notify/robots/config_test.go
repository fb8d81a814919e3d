package robots

import (
	"encoding/json"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const receiverYAML = `
feishu_configs:
  - webhook_url: https://open.feishu.cn/open-apis/bot/v2/hook/feishu-tok-1
    secret: feishu-sec-1
    http_config:
      basic_auth:
        username: u
        password: basic-pass-1
dingtalk_configs:
  - webhook_url: https://oapi.dingtalk.com/robot/send?access_token=ding-tok-1
    secret: ding-sec-1
    send_resolved: false
wecom_robot_configs:
  - webhook_url: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=wecom-tok-1
    max_alerts: 3
`

func decodeReceiver(t *testing.T, s string) Receiver {
	t.Helper()
	var r Receiver
	dec := yaml.NewDecoder(strings.NewReader(s))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReceiverMarshalHidesSecrets(t *testing.T) {
	r := decodeReceiver(t, receiverYAML)
	y, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json writes < and > as \u003c and \u003e.
	js := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(string(j))
	for format, out := range map[string]string{"yaml": string(y), "json": js} {
		for _, secret := range []string{"feishu-tok-1", "feishu-sec-1", "basic-pass-1", "ding-tok-1", "ding-sec-1", "wecom-tok-1"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s shows %q:\n%s", format, secret, out)
			}
		}
		if n := strings.Count(out, "<secret>"); n != 6 {
			t.Errorf("%s has %d <secret>, want 6:\n%s", format, n, out)
		}
		for _, key := range []string{"feishu_configs", "dingtalk_configs", "wecom_robot_configs", "webhook_url", "send_resolved", "max_alerts"} {
			if !strings.Contains(out, key) {
				t.Errorf("%s lacks %s:\n%s", format, key, out)
			}
		}
	}
	// What was printed reads back (secrets stay hidden).
	back := decodeReceiver(t, string(y))
	if back.Len() != 3 || back.WeCom[0].MaxAlerts != 3 || back.DingTalk[0].SendResolved() {
		t.Errorf("read back %+v", back)
	}
}

func TestConfigDefaults(t *testing.T) {
	r := decodeReceiver(t, receiverYAML)
	f := r.Feishu[0]
	if !f.SendResolved() || f.Title != DefaultTitle || f.Message != DefaultMessage || f.MaxAlerts != 0 {
		t.Errorf("feishu defaults: send_resolved %v, title %q, max_alerts %d", f.SendResolved(), f.Title, f.MaxAlerts)
	}
	if r.DingTalk[0].SendResolved() {
		t.Error("send_resolved: false was not kept")
	}
	if got := string(f.Secret); got != "feishu-sec-1" {
		t.Errorf("secret %q", got)
	}
	if got := r.WeCom[0].WebhookURL.String(); got != "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=wecom-tok-1" {
		t.Errorf("webhook_url %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, s := range []string{
		"feishu_configs: [{secret: x}]",
		"feishu_configs: [{webhook_url: 'https://a.example/x', webhook_url_file: /f}]",
		"dingtalk_configs: [{webhook_url: 'https://a.example/x', secret: a, secret_file: /f}]",
		"wecom_robot_configs: [{webhook_url: 'https://a.example/x', max_alerts: -2}]",
		"wecom_robot_configs: [{webhook_url: 'ftp://a.example/x'}]",
		"wecom_robot_configs: [{webhook_url: 'https://a.example/x', secret: s}]",
	} {
		var r Receiver
		dec := yaml.NewDecoder(strings.NewReader(s))
		dec.KnownFields(true)
		if err := dec.Decode(&r); err == nil {
			t.Errorf("%s: no error", s)
		}
	}
}
