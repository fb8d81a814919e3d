package robots

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/alertmanager/template"
)

func TestIntegrationsOrderAndIndexes(t *testing.T) {
	b := func(sendResolved bool) BaseConfig {
		c := defaultBase()
		c.WebhookURL = mustURL(t, "http://127.0.0.1:1/hook")
		c.VSendResolved = sendResolved
		return c
	}
	r := Receiver{
		WeCom:    []*WeComConfig{{BaseConfig: b(true)}},
		DingTalk: []*DingTalkConfig{{BaseConfig: b(false)}},
		Feishu:   []*FeishuConfig{{BaseConfig: b(true)}, {BaseConfig: b(false)}},
	}
	ints, err := r.Integrations("oncall-cn", 3, newTemplate(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name         string
		idx          int
		sendResolved bool
	}{{"feishu", 3, true}, {"feishu", 4, false}, {"dingtalk", 5, false}, {"wecom", 6, true}}
	if len(ints) != len(want) {
		t.Fatalf("%d integrations, want %d", len(ints), len(want))
	}
	for i, w := range want {
		in := ints[i]
		if in.Name() != w.name || in.Index() != w.idx || in.SendResolved() != w.sendResolved {
			t.Errorf("integration %d: %s[%d] send_resolved %v, want %s[%d] %v", i, in.Name(), in.Index(), in.SendResolved(), w.name, w.idx, w.sendResolved)
		}
	}
}

func TestIntegrationsNeedATemplateWithExternalURL(t *testing.T) {
	r := robotReceiver(t, "wecom", "http://127.0.0.1:1/hook", "")
	noURL, err := template.FromGlobs(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, tmpl := range map[string]*template.Template{"nil": nil, "no external URL": noURL} {
		if _, err := r.Integrations("x", 0, tmpl, Options{}); err == nil {
			t.Errorf("%s template: no error", name)
		}
		if ints, err := (Receiver{}).Integrations("x", 0, tmpl, Options{}); err != nil || len(ints) != 0 {
			t.Errorf("%s template, no robots: %d integrations, error %v", name, len(ints), err)
		}
	}
}

func TestIntegrationsReadFilesAtBuild(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"errcode":0,"errmsg":"ok"}`))
	clk := newClock()
	urlFile := writeFile(t, "dingtalk.url", "  "+srv.URL+"/robot/send?access_token=from-file\n")
	secretFile := writeFile(t, "dingtalk.secret", "SECfromfile\n")
	c := &DingTalkConfig{BaseConfig: defaultBase(), SignedConfig: SignedConfig{SecretFile: secretFile}}
	c.WebhookURLFile = urlFile
	in := build(t, Receiver{DingTalk: []*DingTalkConfig{c}}, Options{Now: clk.Now})

	// Later changes are seen only by a rebuild (a reload).
	for _, p := range []string{urlFile, secretFile} {
		if err := os.WriteFile(p, []byte("changed"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Notify(notifyContext(context.Background()), firing("s", "alertname", "A")).Err(); err != nil {
		t.Fatal(err)
	}
	q := srv.Requests()[0].URL.Query()
	if q.Get("access_token") != "from-file" {
		t.Errorf("query %v", q)
	}
	mac := hmac.New(sha256.New, []byte("SECfromfile"))
	mac.Write([]byte(q.Get("timestamp") + "\nSECfromfile"))
	if got, want := q.Get("sign"), base64.StdEncoding.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("sign %q, want %q (secret from the file, trimmed)", got, want)
	}
}

func TestIntegrationsFeishuSecretFile(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"code":0}`))
	clk := newClock()
	c := &FeishuConfig{BaseConfig: defaultBase(), SignedConfig: SignedConfig{SecretFile: writeFile(t, "feishu.secret", "fs-secret\n")}}
	c.WebhookURLFile = writeFile(t, "feishu.url", srv.URL+"/open-apis/bot/v2/hook/file-token")
	in := build(t, Receiver{Feishu: []*FeishuConfig{c}}, Options{Now: clk.Now})
	if err := in.Notify(notifyContext(context.Background()), firing("s", "alertname", "A")).Err(); err != nil {
		t.Fatal(err)
	}
	r := srv.Requests()[0]
	if r.URL.Path != "/open-apis/bot/v2/hook/file-token" {
		t.Errorf("posted to %s", r.URL.Path)
	}
	body := decodeBody(t, r.Body)
	mac := hmac.New(sha256.New, []byte(stringField(t, body, "timestamp")+"\nfs-secret"))
	if got, want := stringField(t, body, "sign"), base64.StdEncoding.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("sign %q, want %q", got, want)
	}
}

func TestIntegrationsErrors(t *testing.T) {
	dir := t.TempDir()
	badURL := writeFile(t, "bad.url", "https://[qyapi.weixin.qq.com/cgi-bin/webhook/send?key=tok-secret")
	ftpURL := writeFile(t, "ftp.url", "ftp://qyapi.weixin.qq.com/send?key=tok-secret")
	empty := writeFile(t, "empty.secret", " \n")
	cases := map[string]struct {
		r    func() Receiver
		want string
	}{
		"missing url file": {func() Receiver {
			c := &WeComConfig{BaseConfig: defaultBase()}
			c.WebhookURLFile = dir + "/nope.url"
			return Receiver{WeCom: []*WeComConfig{c}}
		}, `receiver "r": wecom_robot_configs[0]: read webhook_url_file`},
		"bad url in file": {func() Receiver {
			c := &WeComConfig{BaseConfig: defaultBase()}
			c.WebhookURLFile = badURL
			return Receiver{WeCom: []*WeComConfig{c}}
		}, "invalid URL"},
		"ftp url in file": {func() Receiver {
			c := &WeComConfig{BaseConfig: defaultBase()}
			c.WebhookURLFile = ftpURL
			return Receiver{WeCom: []*WeComConfig{c}}
		}, `unsupported scheme "ftp"`},
		"missing secret file": {func() Receiver {
			c := &FeishuConfig{BaseConfig: defaultBase(), SignedConfig: SignedConfig{SecretFile: dir + "/nope.secret"}}
			c.WebhookURL = mustURL(t, "https://open.feishu.cn/open-apis/bot/v2/hook/x")
			return Receiver{Feishu: []*FeishuConfig{c}}
		}, `feishu_configs[0]: read secret_file`},
		"empty secret file": {func() Receiver {
			c := &DingTalkConfig{BaseConfig: defaultBase(), SignedConfig: SignedConfig{SecretFile: empty}}
			c.WebhookURL = mustURL(t, "https://oapi.dingtalk.com/robot/send?access_token=x")
			return Receiver{DingTalk: []*DingTalkConfig{c}}
		}, "is empty"},
		"no url": {func() Receiver {
			return Receiver{WeCom: []*WeComConfig{{BaseConfig: defaultBase()}}}
		}, "one of webhook_url or webhook_url_file"},
		"secret placeholder url": {func() Receiver {
			c := &WeComConfig{BaseConfig: defaultBase()}
			c.WebhookURL = mustURL(t, "http://x")
			c.WebhookURL.URL = &url.URL{}
			return Receiver{WeCom: []*WeComConfig{c}}
		}, "webhook_url is empty"},
		"nil config": {func() Receiver {
			return Receiver{DingTalk: []*DingTalkConfig{nil}}
		}, `dingtalk_configs[0]: empty config`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ints, err := tc.r().Integrations("r", 0, newTemplate(t), Options{})
			if err == nil {
				t.Fatalf("built %d integrations, want an error", len(ints))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "tok-secret") {
				t.Errorf("error %q shows the URL's token", err)
			}
		})
	}
}

func TestSetDirectory(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"code":0}`))
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/feishu.url", []byte(srv.URL+"/hook/rel"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/feishu.secret", []byte("rel-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/token", []byte("bearer-from-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	rest, robots, err := Split([]byte(`
route:
  receiver: r
receivers:
  - name: r
    feishu_configs:
      - webhook_url_file: feishu.url
        secret_file: feishu.secret
        http_config:
          bearer_token_file: token
    wecom_robot_configs:
      - webhook_url_file: /abs/wecom.url
`))
	if err != nil || len(rest) == 0 {
		t.Fatal(err)
	}
	r := robots["r"]
	r.SetDirectory(dir)
	f := r.Feishu[0]
	if f.WebhookURLFile != dir+"/feishu.url" || f.SecretFile != dir+"/feishu.secret" {
		t.Errorf("paths %q %q", f.WebhookURLFile, f.SecretFile)
	}
	if got := r.WeCom[0].WebhookURLFile; got != "/abs/wecom.url" {
		t.Errorf("absolute path changed to %q", got)
	}
	in := build(t, Receiver{Feishu: r.Feishu}, Options{})
	if err := in.Notify(notifyContext(context.Background()), firing("s", "alertname", "A")).Err(); err != nil {
		t.Fatal(err)
	}
	req := srv.Requests()[0]
	if req.URL.Path != "/hook/rel" {
		t.Errorf("posted to %s", req.URL.Path)
	}
	if got := req.Header.Get("Authorization"); got != "Bearer bearer-from-file" {
		t.Errorf("Authorization %q: http_config's file not found in the directory", got)
	}
}
