package robots

import (
	"net/url"
	"time"

	"github.com/prometheus/alertmanager/notify"
)

// weCom posts markdown messages to a WeCom (WeChat Work) group robot; the
// robot's key is in its webhook URL. The content starts with the title,
// coloured by status with WeCom's font tag.
//
// Reference: developer.work.weixin.qq.com "Group robot configuration". The
// markdown content may be at most 4096 bytes.
type weCom struct{}

const weComMaxContent = 4096

type weComMessage struct {
	MsgType  string        `json:"msgtype"`
	Markdown weComMarkdown `json:"markdown"`
}

type weComMarkdown struct {
	Content string `json:"content"`
}

// WeCom error codes.
const (
	weComBusy        = -1
	weComRateLimited = 45009
	weComBadKey      = 93000
)

func (weCom) kind() string  { return "wecom" }
func (weCom) rates() []rate { return perMinute20 }

// throttle: WeCom counts 20 messages per minute; a minute clears it.
func (weCom) throttle() time.Duration { return time.Minute }

func (weCom) heading(e envelope) string {
	color := "info"
	if e.firing {
		color = "warning"
	}
	return `<font color="` + color + `">**` + e.title + "**</font>\n"
}

func (w weCom) budget(e envelope) (int, func(string) int) {
	return weComMaxContent - len(w.heading(e)), byteLen
}

func (w weCom) request(target *url.URL, e envelope, text string) (string, []byte, error) {
	body, err := encodeJSON(weComMessage{
		MsgType:  "markdown",
		Markdown: weComMarkdown{Content: w.heading(e) + text},
	})
	return target.String(), body, err
}

func (weCom) answer(body []byte) (int, string, error) {
	return errcode(body)
}

func (weCom) classify(code int) (bool, notify.Reason) {
	switch code {
	case weComRateLimited:
		return true, notify.RateLimitedReason
	case weComBusy:
		return true, notify.ServerErrorReason
	case weComBadKey:
		return false, notify.AuthErrorReason
	}
	return false, notify.ClientErrorReason
}
