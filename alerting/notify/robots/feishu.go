package robots

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/alertmanager/notify"
)

// feishu posts interactive cards to a Feishu (Lark) custom bot: the title
// in a header coloured by status, the message as one markdown element.
//
// Reference: open.feishu.cn "Custom bot usage guide". A request body may be
// at most 20 KB; a signed request carries timestamp (seconds) and sign,
// base64(HMAC-SHA256 keyed with "<timestamp>\n<secret>" over nothing).
type feishu struct{}

const feishuMaxBody = 20_000

type feishuMessage struct {
	Timestamp string     `json:"timestamp,omitempty"`
	Sign      string     `json:"sign,omitempty"`
	MsgType   string     `json:"msg_type"`
	Card      feishuCard `json:"card"`
}

type feishuCard struct {
	Config   feishuCardConfig `json:"config"`
	Header   feishuHeader     `json:"header"`
	Elements []feishuElement  `json:"elements"`
}

type feishuCardConfig struct {
	WideScreenMode bool `json:"wide_screen_mode"`
}

type feishuHeader struct {
	Title    feishuText `json:"title"`
	Template string     `json:"template"`
}

type feishuText struct {
	Tag     string `json:"tag"`
	Content string `json:"content"`
}

type feishuElement struct {
	Tag     string `json:"tag"`
	Content string `json:"content"`
}

// Feishu answers {"code":0,"msg":"success"}; older bots answer
// {"StatusCode":0,"StatusMessage":"success"}.
type feishuAnswer struct {
	Code          *int   `json:"code"`
	Msg           string `json:"msg"`
	StatusCode    *int   `json:"StatusCode"`
	StatusMessage string `json:"StatusMessage"`
}

// Feishu error codes.
const (
	feishuRateLimited  = 11232
	feishuBadSignature = 19021
	feishuIPNotAllowed = 19022
	feishuNoKeyword    = 19024
)

func (feishu) kind() string  { return "feishu" }
func (feishu) rates() []rate { return feishuRates }

// throttle: Feishu counts its limits per second and per minute; a
// minute clears both.
func (feishu) throttle() time.Duration { return time.Minute }

// feishuSign returns the signature of a request made at ts (Unix seconds).
func feishuSign(ts, secret string) string {
	h := hmac.New(sha256.New, []byte(ts+"\n"+secret))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func (feishu) message(e envelope, text string) feishuMessage {
	color := "green"
	if e.firing {
		color = "red"
	}
	m := feishuMessage{
		MsgType: "interactive",
		Card: feishuCard{
			Config:   feishuCardConfig{WideScreenMode: true},
			Header:   feishuHeader{Title: feishuText{Tag: "plain_text", Content: e.title}, Template: color},
			Elements: []feishuElement{{Tag: "markdown", Content: text}},
		},
	}
	if e.secret != "" {
		m.Timestamp = strconv.FormatInt(e.now.Unix(), 10)
		m.Sign = feishuSign(m.Timestamp, e.secret)
	}
	return m
}

// budget leaves room for the rest of the card within the body limit and
// measures the message as it will be encoded in JSON.
func (f feishu) budget(e envelope) (int, func(string) int) {
	empty, err := encodeJSON(f.message(e, ""))
	if err != nil {
		return 0, jsonLen
	}
	return feishuMaxBody - len(empty), jsonLen
}

func (f feishu) request(target *url.URL, e envelope, text string) (string, []byte, error) {
	body, err := encodeJSON(f.message(e, text))
	return target.String(), body, err
}

func (feishu) answer(body []byte) (int, string, error) {
	var a feishuAnswer
	if err := decodeJSON(body, &a); err != nil {
		return 0, "", err
	}
	switch {
	case a.Code != nil && *a.Code != 0:
		return *a.Code, a.Msg, nil
	case a.StatusCode != nil && *a.StatusCode != 0:
		return *a.StatusCode, a.StatusMessage, nil
	case a.Code == nil && a.StatusCode == nil:
		return 0, "", errors.New("no code in answer")
	}
	return 0, "", nil
}

func (feishu) classify(code int) (bool, notify.Reason) {
	switch code {
	case feishuRateLimited:
		return true, notify.RateLimitedReason
	case feishuBadSignature, feishuIPNotAllowed, feishuNoKeyword:
		return false, notify.AuthErrorReason
	}
	return false, notify.ClientErrorReason
}
