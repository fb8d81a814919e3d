package robots

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/alertmanager/notify"
)

// dingTalk posts markdown messages to a DingTalk custom robot. The text
// starts with the title as a heading: the title field itself only shows in
// the notification preview.
//
// Reference: open.dingtalk.com "Custom robot access". A signed request
// carries the query parameters timestamp (milliseconds) and sign,
// base64(HMAC-SHA256 keyed with the secret over "<timestamp>\n<secret>").
type dingTalk struct{}

// dingTalkMaxText bounds the markdown text of one message.
const dingTalkMaxText = 20_000

type dingTalkMessage struct {
	MsgType  string           `json:"msgtype"`
	Markdown dingTalkMarkdown `json:"markdown"`
}

type dingTalkMarkdown struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

// DingTalk and WeCom answer {"errcode":0,"errmsg":"ok"}.
type errcodeAnswer struct {
	ErrCode *int   `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// DingTalk error codes.
const (
	dingTalkBusy         = -1
	dingTalkTooFast      = 130101
	dingTalkTokenMissing = 300001
	dingTalkSecurity     = 310000 // keyword, signature or IP check failed
)

func (dingTalk) kind() string  { return "dingtalk" }
func (dingTalk) rates() []rate { return perMinute20 }

// throttle: DingTalk blocks a robot for ten minutes once it passed its
// limit of 20 messages a minute.
func (dingTalk) throttle() time.Duration { return 10 * time.Minute }

// dingTalkSign returns the signature of a request made at ts (Unix
// milliseconds), before URL encoding.
func dingTalkSign(ts, secret string) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts + "\n" + secret))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func (dingTalk) heading(title string) string {
	return "#### " + title + "\n\n"
}

func (d dingTalk) budget(e envelope) (int, func(string) int) {
	return dingTalkMaxText - len(d.heading(e.title)), byteLen
}

func (d dingTalk) request(target *url.URL, e envelope, text string) (string, []byte, error) {
	u := *target
	if e.secret != "" {
		ts := strconv.FormatInt(e.now.UnixMilli(), 10)
		q := u.Query()
		q.Set("timestamp", ts)
		q.Set("sign", dingTalkSign(ts, e.secret))
		u.RawQuery = q.Encode()
	}
	body, err := encodeJSON(dingTalkMessage{
		MsgType:  "markdown",
		Markdown: dingTalkMarkdown{Title: e.title, Text: d.heading(e.title) + text},
	})
	return u.String(), body, err
}

func (dingTalk) answer(body []byte) (int, string, error) {
	return errcode(body)
}

func (dingTalk) classify(code int) (bool, notify.Reason) {
	switch code {
	case dingTalkTooFast:
		return true, notify.RateLimitedReason
	case dingTalkBusy:
		return true, notify.ServerErrorReason
	case dingTalkSecurity, dingTalkTokenMissing:
		return false, notify.AuthErrorReason
	}
	return false, notify.ClientErrorReason
}
