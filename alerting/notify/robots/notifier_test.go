package robots

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/notify"
	commoncfg "github.com/prometheus/common/config"
)

// robotReceiver returns a receiver with one config of the given robot
// posting to base+path.
func robotReceiver(t *testing.T, kind, url, secret string) Receiver {
	t.Helper()
	b := defaultBase()
	b.WebhookURL = mustURL(t, url)
	s := SignedConfig{Secret: commoncfg.Secret(secret)}
	switch kind {
	case "feishu":
		return Receiver{Feishu: []*FeishuConfig{{BaseConfig: b, SignedConfig: s}}}
	case "dingtalk":
		return Receiver{DingTalk: []*DingTalkConfig{{BaseConfig: b, SignedConfig: s}}}
	case "wecom":
		return Receiver{WeCom: []*WeComConfig{{BaseConfig: b}}}
	}
	t.Fatalf("unknown robot %q", kind)
	return Receiver{}
}

// robotPaths are webhook paths shaped like the real ones, with a token the
// errors must not show.
var robotPaths = map[string]string{
	"feishu":   "/open-apis/bot/v2/hook/tok-3c9e1f7a",
	"dingtalk": "/robot/send?access_token=tok-3c9e1f7a",
	"wecom":    "/cgi-bin/webhook/send?key=tok-3c9e1f7a",
}

func TestRobotAnswers(t *testing.T) {
	type want struct {
		ok     bool
		retry  bool
		reason notify.Reason
		text   string // in the error
	}
	cases := []struct {
		robot  string
		status int
		body   string
		want   want
	}{
		{"feishu", 200, `{"code":0,"msg":"success","data":{}}`, want{ok: true}},
		{"feishu", 200, `{"StatusCode":0,"StatusMessage":"success"}`, want{ok: true}},
		{"feishu", 200, `{"code":11232,"msg":"frequency limited psm[lark.oapi.app_platform_runtime]appID[1]"}`, want{retry: true, reason: notify.RateLimitedReason, text: "code 11232: frequency limited"}},
		{"feishu", 200, `{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}`, want{reason: notify.AuthErrorReason, text: "code 19021: sign match fail"}},
		{"feishu", 200, `{"StatusCode":19024,"StatusMessage":"Key Words Not Found"}`, want{reason: notify.AuthErrorReason, text: "code 19024: Key Words Not Found"}},
		{"feishu", 200, `{"code":9499,"msg":"Bad Request"}`, want{reason: notify.ClientErrorReason, text: "code 9499"}},
		{"feishu", 400, `{"code":9499,"msg":"Bad Request"}`, want{reason: notify.ClientErrorReason, text: "status 400: code 9499: Bad Request"}},
		{"feishu", 400, `{"code":11232,"msg":"frequency limited"}`, want{retry: true, reason: notify.RateLimitedReason, text: "code 11232"}},
		{"dingtalk", 200, `{"errcode":0,"errmsg":"ok"}`, want{ok: true}},
		{"dingtalk", 200, `{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}`, want{retry: true, reason: notify.RateLimitedReason, text: "code 130101: send too fast"}},
		{"dingtalk", 200, `{"errcode":310000,"errmsg":"keywords not in content"}`, want{reason: notify.AuthErrorReason, text: "code 310000: keywords not in content"}},
		{"dingtalk", 200, `{"errcode":-1,"errmsg":"系统繁忙"}`, want{retry: true, reason: notify.ServerErrorReason, text: "code -1: 系统繁忙"}},
		{"dingtalk", 200, `{"errcode":400013,"errmsg":"群已被解散"}`, want{reason: notify.ClientErrorReason, text: "群已被解散"}},
		{"wecom", 200, `{"errcode":0,"errmsg":"ok"}`, want{ok: true}},
		{"wecom", 200, `{"errcode":45009,"errmsg":"api freq out of limit"}`, want{retry: true, reason: notify.RateLimitedReason, text: "code 45009"}},
		{"wecom", 200, `{"errcode":93000,"errmsg":"invalid webhook url, hint: [1710000000_1], key=tok-3c9e1f7a"}`, want{reason: notify.AuthErrorReason, text: "code 93000: invalid webhook url"}},
		{"wecom", 200, `not json`, want{retry: true, reason: notify.DefaultReason, text: "unreadable body"}},
		{"wecom", 200, `{"errmsg":"ok"}`, want{retry: true, reason: notify.DefaultReason, text: "no errcode"}},
		{"wecom", 429, `slow down`, want{retry: true, reason: notify.RateLimitedReason, text: "status 429: slow down"}},
		{"wecom", 500, `<html>oops</html>`, want{retry: true, reason: notify.ServerErrorReason, text: "status 500"}},
		{"dingtalk", 503, ``, want{retry: true, reason: notify.ServerErrorReason, text: "status 503"}},
		{"dingtalk", 404, `not found`, want{reason: notify.ClientErrorReason, text: "status 404"}},
		{"feishu", 403, `{"code":19022,"msg":"Ip Not Allowed"}`, want{reason: notify.AuthErrorReason, text: "code 19022"}},
	}
	for _, tc := range cases {
		t.Run(tc.robot+"/"+tc.body, func(t *testing.T) {
			srv := newRobotServer(t, answer(tc.status, tc.body))
			in := build(t, robotReceiver(t, tc.robot, srv.URL+robotPaths[tc.robot], "the-signing-secret"), Options{})
			v := in.Notify(notifyContext(context.Background()), firing("s", "alertname", "A"))
			if len(srv.Requests()) != 1 {
				t.Fatalf("robot got %d requests", len(srv.Requests()))
			}
			err := v.Err()
			if tc.want.ok {
				if err != nil {
					t.Fatalf("notify: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("notify succeeded, want an error")
			}
			if v.ShouldRetry() != tc.want.retry {
				t.Errorf("retry %v, want %v (%v)", v.ShouldRetry(), tc.want.retry, err)
			}
			if v.Reason() != tc.want.reason {
				t.Errorf("reason %v, want %v", v.Reason(), tc.want.reason)
			}
			if !strings.Contains(err.Error(), tc.want.text) {
				t.Errorf("error %q lacks %q", err, tc.want.text)
			}
			if !strings.HasPrefix(err.Error(), tc.robot) {
				t.Errorf("error %q does not name the robot", err)
			}
			for _, s := range []string{"tok-3c9e1f7a", "the-signing-secret", srv.URL} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q shows %q", err, s)
				}
			}
		})
	}
}

func TestRobotAnswerQuoteIsShort(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"errcode":40058,"errmsg":"`+strings.Repeat("长", 1000)+`"}`))
	in := build(t, robotReceiver(t, "wecom", srv.URL+robotPaths["wecom"], ""), Options{})
	err := in.Notify(notifyContext(context.Background()), firing("s", "alertname", "A")).Err()
	if err == nil {
		t.Fatal("want an error")
	}
	if len(err.Error()) > maxDetailBytes+100 {
		t.Errorf("error is %d bytes long", len(err.Error()))
	}
}

func TestRetryAfterOn429(t *testing.T) {
	srv := newRobotServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	in := build(t, robotReceiver(t, "feishu", srv.URL+robotPaths["feishu"], ""), Options{})
	v := in.Notify(notifyContext(context.Background()), firing("s", "alertname", "A"))
	if !v.ShouldRetry() || v.Delay() != 7*time.Second {
		t.Errorf("retry %v after %s, want a retry after 7s", v.ShouldRetry(), v.Delay())
	}
}

func TestNotifyHonoursContextDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := newRobotServer(t, func(w http.ResponseWriter, r *http.Request) {
		// Answer only once the client gave up (or the test ends).
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	in := build(t, robotReceiver(t, "dingtalk", srv.URL+robotPaths["dingtalk"], "the-signing-secret"), Options{})
	ctx, cancel := context.WithTimeout(notifyContext(context.Background()), 50*time.Millisecond)
	defer cancel()
	v := in.Notify(ctx, firing("s", "alertname", "A"))
	err := v.Err()
	if err == nil {
		t.Fatal("notify succeeded past its deadline")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap the deadline", err)
	}
	if !v.ShouldRetry() || v.Reason() != notify.ContextDeadlineExceededReason {
		t.Errorf("retry %v reason %v, want a retryable deadline", v.ShouldRetry(), v.Reason())
	}
	for _, s := range []string{"tok-3c9e1f7a", "the-signing-secret", "sign="} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q shows %q", err, s)
		}
	}
}

func TestNotifyTemplateErrors(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"errcode":0,"errmsg":"ok"}`))
	for name, mutate := range map[string]func(*BaseConfig){
		"title":   func(b *BaseConfig) { b.Title = "{{ .Nope.Deeper }" },
		"message": func(b *BaseConfig) { b.Message = `{{ template "no-such-template" . }}` },
	} {
		t.Run(name, func(t *testing.T) {
			r := robotReceiver(t, "wecom", srv.URL+robotPaths["wecom"], "")
			mutate(&r.WeCom[0].BaseConfig)
			in := build(t, r, Options{})
			v := in.Notify(notifyContext(context.Background()), firing("s", "alertname", "A"))
			if v.Err() == nil || v.ShouldRetry() || v.Reason() != notify.TemplateErrorReason {
				t.Errorf("verdict %v retry %v reason %v, want an unrecoverable template error", v.Err(), v.ShouldRetry(), v.Reason())
			}
		})
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("robot got %d requests for messages that failed to render", n)
	}
}

func TestNotifyWithoutGroupKey(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"errcode":0,"errmsg":"ok"}`))
	in := build(t, robotReceiver(t, "wecom", srv.URL+robotPaths["wecom"], ""), Options{})
	v := in.Notify(context.Background(), firing("s", "alertname", "A"))
	if v.Err() == nil || v.ShouldRetry() {
		t.Errorf("verdict %v retry %v, want an unrecoverable error", v.Err(), v.ShouldRetry())
	}
}
