package robots

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	amconfig "github.com/prometheus/alertmanager/config"
	"gopkg.in/yaml.v3"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// splitAndLoad splits raw and loads the rest with Alertmanager's loader.
func splitAndLoad(t *testing.T, raw []byte) (*amconfig.Config, []byte, map[string]Receiver) {
	t.Helper()
	rest, robots, err := Split(raw)
	if err != nil {
		t.Fatalf("Split: %v", err)
	}
	cfg, err := amconfig.Load(string(rest))
	if err != nil {
		t.Fatalf("Alertmanager cannot load the rest: %v\n%s", err, rest)
	}
	assertNoRobotKeys(t, rest)
	return cfg, rest, robots
}

// assertNoRobotKeys fails if any receiver of rest still has a robot key.
func assertNoRobotKeys(t *testing.T, rest []byte) {
	t.Helper()
	var doc struct {
		Receivers []map[string]any `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(rest, &doc); err != nil {
		t.Fatalf("rest is not YAML: %v", err)
	}
	for _, r := range doc.Receivers {
		for k := range r {
			if isRobotKey(k) {
				t.Errorf("receiver %v still has %s in the rest", r["name"], k)
			}
		}
	}
}

func TestSplitRealisticFile(t *testing.T) {
	cfg, _, robots := splitAndLoad(t, readTestdata(t, "alertmanager.good.yaml"))

	// Alertmanager's own receivers are intact.
	byName := map[string]amconfig.Receiver{}
	for _, r := range cfg.Receivers {
		byName[r.Name] = r
	}
	if len(byName) != 3 {
		t.Fatalf("receivers after the split: %v", cfg.Receivers)
	}
	if hooks := byName["default"].WebhookConfigs; len(hooks) != 1 || string(hooks[0].URL) != "http://127.0.0.1:9999/hook" {
		t.Errorf("default receiver's webhook: %+v", hooks)
	}
	if hooks := byName["oncall-cn"].WebhookConfigs; len(hooks) != 1 || string(hooks[0].URL) != "http://127.0.0.1:9999/oncall" {
		t.Errorf("oncall-cn's webhook next to the robots: %+v", hooks)
	}
	if len(cfg.InhibitRules) != 1 || len(cfg.Route.Routes) != 2 {
		t.Errorf("routes or inhibit rules lost: %d routes, %d inhibit rules", len(cfg.Route.Routes), len(cfg.InhibitRules))
	}

	if len(robots) != 2 {
		t.Fatalf("robots by receiver: %v", robots)
	}
	if _, ok := robots["default"]; ok {
		t.Error("a receiver without robots is in the map")
	}
	oncall := robots["oncall-cn"]
	if len(oncall.Feishu) != 1 || len(oncall.DingTalk) != 1 || len(oncall.WeCom) != 1 {
		t.Fatalf("oncall-cn robots: %+v", oncall)
	}

	fs := oncall.Feishu[0]
	if got := fs.WebhookURL.String(); got != "https://open.feishu.cn/open-apis/bot/v2/hook/0000-feishu-token" {
		t.Errorf("feishu webhook_url = %q", got)
	}
	if fs.Secret != "feishu-s3cret" || fs.MaxAlerts != 10 || !fs.SendResolved() {
		t.Errorf("feishu secret/max_alerts/send_resolved: %q %d %v", fs.Secret, fs.MaxAlerts, fs.SendResolved())
	}
	if fs.Title != "【{{ .Status | toUpper }}】{{ .CommonLabels.alertname }}" || fs.Message != DefaultMessage {
		t.Errorf("feishu title %q, message default %v", fs.Title, fs.Message == DefaultMessage)
	}
	// A robot without http_config takes global.http_config.
	if fs.HTTPConfig == nil || fs.HTTPConfig.FollowRedirects {
		t.Errorf("feishu http_config is not the global one: %+v", fs.HTTPConfig)
	}

	dt := oncall.DingTalk[0]
	if dt.SecretFile != "/etc/vigil/dingtalk.secret" || dt.Secret != "" || dt.SendResolved() {
		t.Errorf("dingtalk secret_file/send_resolved: %q %v", dt.SecretFile, dt.SendResolved())
	}
	if dt.HTTPConfig == nil || dt.HTTPConfig.ProxyURL.URL == nil || dt.HTTPConfig.ProxyURL.String() != "http://proxy.internal:3128" {
		t.Errorf("dingtalk http_config: %+v", dt.HTTPConfig)
	}
	if !dt.HTTPConfig.FollowRedirects {
		t.Error("an http_config of its own starts from the defaults, not from the global one")
	}
	if dt.Title != DefaultTitle {
		t.Errorf("dingtalk title %q is not the default", dt.Title)
	}

	wc := oncall.WeCom[0]
	if wc.WebhookURL != nil || wc.WebhookURLFile != "/etc/vigil/wecom.url" || !wc.SendResolved() {
		t.Errorf("wecom webhook_url_file: %+v", wc)
	}

	dev := robots["dev-wecom"]
	if len(dev.WeCom) != 2 || len(dev.Feishu) != 0 || len(dev.DingTalk) != 0 {
		t.Fatalf("dev-wecom robots: %+v", dev)
	}
	// http is allowed (test servers, proxies inside the network).
	if got := dev.WeCom[0].WebhookURL.String(); got != "http://127.0.0.1:8080/cgi-bin/webhook/send?key=wecom-key" {
		t.Errorf("dev-wecom[0] url = %q", got)
	}
	if dev.WeCom[1].Message != "{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}" {
		t.Errorf("dev-wecom[1] message = %q", dev.WeCom[1].Message)
	}
}

func TestSplitWithoutRobotsKeepsTheFile(t *testing.T) {
	for _, name := range []string{"plain.good.yaml"} {
		raw := readTestdata(t, name)
		rest, robots, err := Split(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rest, raw) {
			t.Errorf("%s: the rest differs from the file although it has no robots", name)
		}
		if len(robots) != 0 {
			t.Errorf("%s: robots %v", name, robots)
		}
	}
}

func TestSplitNotAConfig(t *testing.T) {
	for _, raw := range []string{"", "   \n", "- a\n- b\n", "receivers: 3\n", "{ not yaml", "receivers:\n  - 7\n  - [a]\n"} {
		rest, robots, err := Split([]byte(raw))
		if err != nil {
			t.Errorf("%q: %v", raw, err)
		}
		if string(rest) != raw || len(robots) != 0 {
			t.Errorf("%q: rest %q, robots %v; want the input back for Alertmanager to judge", raw, rest, robots)
		}
	}
}

func TestSplitAnchorsIntoRobotConfigs(t *testing.T) {
	cfg, _, robots := splitAndLoad(t, readTestdata(t, "anchors.good.yaml"))

	chat := robots["chat"]
	if len(chat.Feishu) != 2 {
		t.Fatalf("chat robots: %+v", chat)
	}
	second := chat.Feishu[1]
	if second.SendResolved() || second.MaxAlerts != 5 || second.WebhookURL.String() != "https://open.feishu.cn/open-apis/bot/v2/hook/def" {
		t.Errorf("merged feishu config: send_resolved %v, max_alerts %d, url %s", second.SendResolved(), second.MaxAlerts, second.WebhookURL)
	}
	if second.HTTPConfig == nil || second.HTTPConfig.ProxyURL.URL == nil {
		t.Errorf("merged http_config: %+v", second.HTTPConfig)
	}

	// The webhook's http_config was an alias into a removed robot config.
	var hooks *amconfig.Receiver
	for i := range cfg.Receivers {
		if cfg.Receivers[i].Name == "hooks" {
			hooks = &cfg.Receivers[i]
		}
	}
	if hooks == nil || len(hooks.WebhookConfigs) != 1 {
		t.Fatalf("hooks receiver: %+v", hooks)
	}
	hc := hooks.WebhookConfigs[0].HTTPConfig
	if hc == nil || hc.ProxyURL.URL == nil || hc.ProxyURL.String() != "http://proxy.internal:3128" {
		t.Errorf("webhook http_config from the alias: %+v", hc)
	}
}

func TestSplitChinese(t *testing.T) {
	_, _, robots := splitAndLoad(t, readTestdata(t, "chinese.good.yaml"))
	r, ok := robots["值班"]
	if !ok || len(r.DingTalk) != 1 {
		t.Fatalf("robots: %v", robots)
	}
	if r.DingTalk[0].Title != "{{ .CommonLabels.alertname }} 告警" || !strings.Contains(r.DingTalk[0].Message, "开始时间：") {
		t.Errorf("title %q message %q", r.DingTalk[0].Title, r.DingTalk[0].Message)
	}
}

func TestSplitBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // substrings of the error
	}{
		{"missing_url.bad.yaml", []string{`receiver "chat"`, "feishu_configs[0]", "line 6", "one of webhook_url or webhook_url_file"}},
		{"url_and_file.bad.yaml", []string{`receiver "chat"`, "wecom_robot_configs[0]", "line 6", "at most one of webhook_url and webhook_url_file"}},
		{"unknown_key.bad.yaml", []string{`receiver "chat"`, "dingtalk_configs[0]", "line 7", `unknown key "secrett"`}},
		{"unknown_http_key.bad.yaml", []string{`receiver "chat"`, "feishu_configs[0]", "line 10", `unknown key "proxy_ur"`}},
		{"secret_and_file.bad.yaml", []string{`receiver "chat"`, "dingtalk_configs[0]", "line 6", "at most one of secret and secret_file"}},
		{"negative_max.bad.yaml", []string{`receiver "chat"`, "wecom_robot_configs[0]", "line 6", "max_alerts"}},
		{"bad_scheme.bad.yaml", []string{`receiver "chat"`, "feishu_configs[0]", "line 6", "unsupported scheme"}},
		{"bad_url.bad.yaml", []string{`receiver "chat"`, "wecom_robot_configs[0]", "line 6", "invalid port"}},
		{"bad_type.bad.yaml", []string{`receiver "chat"`, "feishu_configs[0]", "line 7", "cannot unmarshal"}},
		{"not_list.bad.yaml", []string{`receiver "chat"`, "wecom_robot_configs", "line 5", "must be a list"}},
		{"not_mapping.bad.yaml", []string{`receiver "chat"`, "wecom_robot_configs[0]", "line 6", "must be a mapping"}},
		{"merged.bad.yaml", []string{`receiver "b"`, "feishu_configs", "line 8", "merge key"}},
		{"no_name.bad.yaml", []string{"receiver at line 4", "feishu_configs", "no name"}},
		{"duplicate_name.bad.yaml", []string{`receiver "chat"`, "line 4", "more than one receiver"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			raw := readTestdata(t, tc.file)
			rest, robots, err := Split(raw)
			if err == nil {
				t.Fatalf("no error; robots %v, rest:\n%s", robots, rest)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			// The error never shows a secret or a robot's token.
			for _, secret := range []string{"s3cret", "access_token=t", "key=k", "hook/abc", "wecom-secret-key"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows %q", err, secret)
				}
			}
		})
	}
}

func TestSplitSecretsHiddenWhenMarshalled(t *testing.T) {
	_, _, robots := splitAndLoad(t, readTestdata(t, "alertmanager.good.yaml"))
	r := robots["oncall-cn"]
	if r.WeCom[0].WebhookURLFile == "" {
		t.Fatal("test file changed")
	}

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
		for _, secret := range []string{"0000-feishu-token", "feishu-s3cret", "dingtalk-token"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s shows %q:\n%s", format, secret, out)
			}
		}
		if strings.Count(out, "<secret>") != 3 {
			t.Errorf("%s: want the two webhook URLs and the secret as <secret>:\n%s", format, out)
		}
		for _, key := range []string{"feishu_configs", "dingtalk_configs", "wecom_robot_configs", "webhook_url_file", "secret_file", "max_alerts"} {
			if !strings.Contains(out, key) {
				t.Errorf("%s lacks %s:\n%s", format, key, out)
			}
		}
	}
}

// TestSplitKeepsTheRest checks that the rest means what the file means
// without its robot keys.
func TestSplitKeepsTheRest(t *testing.T) {
	for _, name := range []string{"alertmanager.good.yaml", "anchors.good.yaml", "chinese.good.yaml"} {
		raw := readTestdata(t, name)
		rest, _, err := Split(raw)
		if err != nil {
			t.Fatal(err)
		}
		want, ok := valueWithoutRobots(raw)
		if !ok {
			t.Fatalf("%s does not decode", name)
		}
		got, ok := valueWithoutRobots(rest)
		if !ok || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: the rest differs:\n%v\nwant\n%v", name, got, want)
		}
	}
}

// TestSplitIsIdempotent checks that the rest of a split has nothing left
// to split and that Split leaves it byte for byte alone.
func TestSplitIsIdempotent(t *testing.T) {
	for _, name := range []string{"alertmanager.good.yaml", "anchors.good.yaml", "chinese.good.yaml"} {
		rest, _, err := Split(readTestdata(t, name))
		if err != nil {
			t.Fatal(err)
		}
		again, robots, err := Split(rest)
		if err != nil || len(robots) != 0 || !bytes.Equal(again, rest) {
			t.Errorf("%s: second split: err %v, robots %v, changed %v", name, err, robots, !bytes.Equal(again, rest))
		}
	}
}

func TestSplitAliasBomb(t *testing.T) {
	// Each level doubles the nodes an alias names: expanding it in full
	// would take 2^40 nodes. The anchors live in a robot config and the
	// rest refers to them.
	var b strings.Builder
	b.WriteString("route:\n  receiver: r\nreceivers:\n  - name: r\n    feishu_configs:\n      - webhook_url: https://open.feishu.cn/hook\n        title: &a0 x\n")
	b.WriteString("        message: &bomb [")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "&a%d [*a%d, *a%d], ", i, i-1, i-1)
	}
	b.WriteString("x]\n  - name: w\n    webhook_configs:\n      - url: https://hooks.example.com/\n        http_config: {http_headers: {X: {values: *bomb}}}\n")
	if _, _, err := Split([]byte(b.String())); err == nil {
		t.Fatal("no error for an alias bomb")
	}
}

func TestSplitEdgeCases(t *testing.T) {
	t.Run("empty robot key", func(t *testing.T) {
		_, rest, robots := splitAndLoad(t, []byte("route:\n  receiver: r\nreceivers:\n  - name: r\n    feishu_configs:\n"))
		if len(robots) != 0 {
			t.Errorf("robots %v from an empty key", robots)
		}
		if strings.Contains(string(rest), "feishu") {
			t.Errorf("rest keeps the empty key:\n%s", rest)
		}
	})
	t.Run("list shared by two receivers", func(t *testing.T) {
		_, _, robots := splitAndLoad(t, []byte(`route:
  receiver: a
receivers:
  - name: a
    wecom_robot_configs: &w
      - webhook_url: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k
  - name: b
    wecom_robot_configs: *w
`))
		if len(robots["a"].WeCom) != 1 || len(robots["b"].WeCom) != 1 {
			t.Errorf("robots %v", robots)
		}
	})
	t.Run("default http_config without a global one", func(t *testing.T) {
		_, _, robots := splitAndLoad(t, []byte(`route:
  receiver: a
receivers:
  - name: a
    dingtalk_configs:
      - webhook_url: https://oapi.dingtalk.com/robot/send?access_token=t
`))
		hc := robots["a"].DingTalk[0].HTTPConfig
		if hc == nil || !hc.FollowRedirects || !hc.EnableHTTP2 {
			t.Errorf("http_config %+v is not Prometheus's default", hc)
		}
	})
}
