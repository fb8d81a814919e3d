package robots

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	commoncfg "github.com/prometheus/common/config"
)

func TestDingTalkSignedMarkdown(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"errcode":0,"errmsg":"ok"}`))
	clk := newClock()
	cfg := &DingTalkConfig{BaseConfig: defaultBase()}
	cfg.WebhookURL = mustURL(t, srv.URL+"/robot/send?access_token=dd-token-42")
	cfg.Secret = commoncfg.Secret("SEC0123456789abcdef")
	in := build(t, Receiver{DingTalk: []*DingTalkConfig{cfg}}, Options{Now: clk.Now})

	v := in.Notify(notifyContext(context.Background()),
		firing("订单服务错误率 12%", "alertname", "HighErrorRate", "severity", "critical"),
		firing("order service 5xx", "alertname", "HighErrorRate", "severity", "critical", "pod", "order-7d9f"),
	)
	if err := v.Err(); err != nil {
		t.Fatalf("notify: %v", err)
	}
	r := srv.Requests()[0]
	if r.Method != http.MethodPost || r.URL.Path != "/robot/send" {
		t.Errorf("request %s %s", r.Method, r.URL.Path)
	}
	q := r.URL.Query()
	if got := q.Get("access_token"); got != "dd-token-42" {
		t.Errorf("access_token %q", got)
	}
	ts := q.Get("timestamp")
	if want := strconv.FormatInt(clk.Now().UnixMilli(), 10); ts != want {
		t.Errorf("timestamp %q, want %q (milliseconds)", ts, want)
	}
	// The signature, computed here from the documentation: HMAC-SHA256
	// keyed with the secret over "<timestamp>\n<secret>", base64, then
	// URL-encoded in the query.
	mac := hmac.New(sha256.New, []byte("SEC0123456789abcdef"))
	mac.Write([]byte(ts + "\nSEC0123456789abcdef"))
	wantSign := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if got := q.Get("sign"); got != wantSign {
		t.Errorf("sign %q, want %q", got, wantSign)
	}
	if !strings.Contains(r.URL.RawQuery, "sign="+url.QueryEscape(wantSign)) {
		t.Errorf("sign is not URL-encoded in %q", r.URL.RawQuery)
	}

	body := decodeBody(t, r.Body)
	if got, want := keysOf(body), []string{"markdown", "msgtype"}; !sameKeys(got, want) {
		t.Errorf("body keys %v, want %v", got, want)
	}
	if got := stringField(t, body, "msgtype"); got != "markdown" {
		t.Errorf("msgtype %q", got)
	}
	if got, want := stringField(t, body, "markdown.title"), "[FIRING:2] HighErrorRate"; got != want {
		t.Errorf("title %q, want %q", got, want)
	}
	text := stringField(t, body, "markdown.text")
	if want := "#### [FIRING:2] HighErrorRate\n\n**[FIRING] HighErrorRate** (critical)\n订单服务错误率 12%\nStarted: 2026-03-14 09:00:00 UTC"; !strings.HasPrefix(text, want) {
		t.Errorf("text does not start with %q:\n%s", want, text)
	}
	if !strings.Contains(text, "Labels: pod=order-7d9f") {
		t.Errorf("text lacks the second alert's labels:\n%s", text)
	}
}

func TestDingTalkUnsignedKeepsQuery(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"errcode":0,"errmsg":"ok"}`))
	cfg := &DingTalkConfig{BaseConfig: defaultBase()}
	cfg.WebhookURL = mustURL(t, srv.URL+"/robot/send?access_token=plain")
	in := build(t, Receiver{DingTalk: []*DingTalkConfig{cfg}}, Options{})
	if err := in.Notify(notifyContext(context.Background()), firing("x", "alertname", "A")).Err(); err != nil {
		t.Fatal(err)
	}
	if got := srv.Requests()[0].URL.RawQuery; got != "access_token=plain" {
		t.Errorf("query %q, want only the access token", got)
	}
}
