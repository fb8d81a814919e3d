package robots

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	commoncfg "github.com/prometheus/common/config"
)

func TestFeishuSignedCard(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"code":0,"msg":"success","data":{}}`))
	clk := newClock()
	cfg := &FeishuConfig{BaseConfig: defaultBase()}
	cfg.WebhookURL = mustURL(t, srv.URL+"/open-apis/bot/v2/hook/0f1e2d3c-token")
	cfg.Secret = commoncfg.Secret("feishu-s3cret")
	in := build(t, Receiver{Feishu: []*FeishuConfig{cfg}}, Options{Now: clk.Now})

	v := in.Notify(notifyContext(context.Background()),
		firing("接口延迟过高", "alertname", "HighLatency", "severity", "critical", "service", "支付服务"),
		resolved("disk almost full", "alertname", "HighLatency", "severity", "warning", "service", "billing"),
	)
	if err := v.Err(); err != nil {
		t.Fatalf("notify: %v", err)
	}

	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("robot got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.URL.Path != "/open-apis/bot/v2/hook/0f1e2d3c-token" {
		t.Errorf("request %s %s", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	body := decodeBody(t, r.Body)
	if got, want := keysOf(body), []string{"card", "msg_type", "sign", "timestamp"}; !sameKeys(got, want) {
		t.Errorf("body keys %v, want %v", got, want)
	}
	if got := stringField(t, body, "msg_type"); got != "interactive" {
		t.Errorf("msg_type %q", got)
	}

	// The signature, computed here from the documentation: HMAC-SHA256
	// keyed with "<timestamp>\n<secret>" over an empty message, base64.
	ts := stringField(t, body, "timestamp")
	if want := strconv.FormatInt(clk.Now().Unix(), 10); ts != want {
		t.Errorf("timestamp %q, want %q", ts, want)
	}
	mac := hmac.New(sha256.New, []byte(ts+"\nfeishu-s3cret"))
	if got, want := stringField(t, body, "sign"), base64.StdEncoding.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("sign %q, want %q", got, want)
	}

	if got := field(t, body, "card.config.wide_screen_mode"); got != true {
		t.Errorf("wide_screen_mode %v", got)
	}
	if got := stringField(t, body, "card.header.template"); got != "red" {
		t.Errorf("header colour %q, want red for a firing group", got)
	}
	if got := stringField(t, body, "card.header.title.tag"); got != "plain_text" {
		t.Errorf("title tag %q", got)
	}
	if got, want := stringField(t, body, "card.header.title.content"), "[FIRING:1] HighLatency"; got != want {
		t.Errorf("title %q, want %q", got, want)
	}
	if n := len(field(t, body, "card.elements").([]any)); n != 1 {
		t.Fatalf("%d elements, want 1", n)
	}
	if got := stringField(t, body, "card.elements.0.tag"); got != "markdown" {
		t.Errorf("element tag %q", got)
	}
	content := stringField(t, body, "card.elements.0.content")
	for _, want := range []string{
		"**[FIRING] HighLatency** (critical)\n接口延迟过高\nLabels: service=支付服务\nStarted: 2026-03-14 09:00:00 UTC",
		"**[RESOLVED] HighLatency** (warning)\ndisk almost full\nLabels: service=billing\nStarted: 2026-03-14 09:00:00 UTC\nEnded: 2026-03-14 09:20:00 UTC",
		"[View in Vigil](https://vigil.example.com/alerts)",
	} {
		if !strings.Contains(content, want) {
			t.Errorf("content lacks %q:\n%s", want, content)
		}
	}
	if strings.Index(content, "[FIRING]") > strings.Index(content, "[RESOLVED]") {
		t.Errorf("firing alerts must come first:\n%s", content)
	}
}

func TestFeishuUnsignedResolvedAndCustomTemplates(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"StatusCode":0,"StatusMessage":"success"}`))
	cfg := &FeishuConfig{BaseConfig: defaultBase()}
	cfg.WebhookURL = mustURL(t, srv.URL+"/hook/abc")
	cfg.Title = `告警恢复：{{ .CommonLabels.alertname }}`
	cfg.Message = `{{ range .Alerts }}- {{ .Annotations.summary }}{{ "\n" }}{{ end }}`
	in := build(t, Receiver{Feishu: []*FeishuConfig{cfg}}, Options{})

	v := in.Notify(notifyContext(context.Background()), resolved("数据库连接数恢复正常", "alertname", "DBConnections"))
	if err := v.Err(); err != nil {
		t.Fatalf("notify: %v", err)
	}
	body := decodeBody(t, srv.Requests()[0].Body)
	if _, ok := body["sign"]; ok {
		t.Error("an unsigned bot got a sign field")
	}
	if _, ok := body["timestamp"]; ok {
		t.Error("an unsigned bot got a timestamp field")
	}
	if got := stringField(t, body, "card.header.template"); got != "green" {
		t.Errorf("header colour %q, want green for a resolved group", got)
	}
	if got, want := stringField(t, body, "card.header.title.content"), "告警恢复：DBConnections"; got != want {
		t.Errorf("title %q, want %q", got, want)
	}
	if got, want := stringField(t, body, "card.elements.0.content"), "- 数据库连接数恢复正常"; got != want {
		t.Errorf("content %q, want %q", got, want)
	}
}

func sameKeys(got, want []string) bool {
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(got, want)
}
