package robots

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

func TestWeComMarkdown(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"errcode":0,"errmsg":"ok"}`))
	cfg := &WeComConfig{BaseConfig: defaultBase()}
	cfg.WebhookURL = mustURL(t, srv.URL+"/cgi-bin/webhook/send?key=693a91f6-7xxx")
	in := build(t, Receiver{WeCom: []*WeComConfig{cfg}}, Options{})

	v := in.Notify(notifyContext(context.Background()),
		firing("Redis 内存使用率超过 90%", "alertname", "RedisMemory", "severity", "warning", "instance", "redis-1:6379"))
	if err := v.Err(); err != nil {
		t.Fatalf("notify: %v", err)
	}
	r := srv.Requests()[0]
	if r.URL.Path != "/cgi-bin/webhook/send" || r.URL.Query().Get("key") != "693a91f6-7xxx" {
		t.Errorf("posted to %s", r.URL)
	}
	body := decodeBody(t, r.Body)
	if got, want := keysOf(body), []string{"markdown", "msgtype"}; !sameKeys(got, want) {
		t.Errorf("body keys %v, want %v", got, want)
	}
	if got := stringField(t, body, "msgtype"); got != "markdown" {
		t.Errorf("msgtype %q", got)
	}
	if got := keysOf(field(t, body, "markdown").(map[string]any)); !sameKeys(got, []string{"content"}) {
		t.Errorf("markdown keys %v", got)
	}
	content := stringField(t, body, "markdown.content")
	want := "<font color=\"warning\">**[FIRING:1] RedisMemory**</font>\n" +
		"**[FIRING] RedisMemory** (warning)\nRedis 内存使用率超过 90%\nLabels: instance=redis-1:6379\nStarted: 2026-03-14 09:00:00 UTC\n\n" +
		"[View in Vigil](https://vigil.example.com/alerts)"
	if content != want {
		t.Errorf("content\n%q\nwant\n%q", content, want)
	}
}

func TestWeComResolvedColour(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"errcode":0,"errmsg":"ok"}`))
	cfg := &WeComConfig{BaseConfig: defaultBase()}
	cfg.WebhookURL = mustURL(t, srv.URL+"/cgi-bin/webhook/send?key=k")
	in := build(t, Receiver{WeCom: []*WeComConfig{cfg}}, Options{})
	if err := in.Notify(notifyContext(context.Background()), resolved("ok", "alertname", "A")).Err(); err != nil {
		t.Fatal(err)
	}
	content := stringField(t, decodeBody(t, srv.Requests()[0].Body), "markdown.content")
	if !strings.HasPrefix(content, `<font color="info">**[RESOLVED] A**</font>`) {
		t.Errorf("content %q", content)
	}
}
