package robots

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/template"
)

// envelope is what a message carries besides its text.
type envelope struct {
	secret string
	title  string
	firing bool
	now    time.Time
}

// robot is what differs between the chat services: the wire format, the
// size limit, the signature, the reply and its error codes.
type robot interface {
	// kind names the robot in errors, logs and integration names.
	kind() string
	// rates are the token buckets of one webhook URL.
	rates() []rate
	// budget returns the room left for the message text and how to
	// measure a text against it.
	budget(e envelope) (limit int, measure func(string) int)
	// request returns the URL to post to and the JSON body.
	request(target *url.URL, e envelope, text string) (string, []byte, error)
	// answer reads the robot's reply: code 0 means delivered.
	answer(body []byte) (code int, msg string, err error)
	// classify tells whether a non-zero code is worth retrying.
	classify(code int) (retry bool, reason notify.Reason)
	// throttle is how long the robot refuses messages once it answered
	// that its limit was passed.
	throttle() time.Duration
}

const (
	// maxTitleBytes bounds a title; it is one line in a header.
	maxTitleBytes = 256
	// maxAnswerBytes bounds the reply read from a robot.
	maxAnswerBytes = 64 << 10
	// maxDetailBytes bounds the robot's words quoted in an error.
	maxDetailBytes = 256
)

// notifier delivers one robot config's messages. It implements
// Alertmanager's notify.Notifier and is safe for concurrent use.
type notifier struct {
	robot     robot
	target    *url.URL
	secret    string
	title     string
	message   string
	maxAlerts int
	tmpl      *template.Template
	client    *http.Client
	limiter   *limiter
	now       func() time.Time
	logger    *slog.Logger
	// redact are the strings that must not appear in errors: the secret
	// and the parts of the URL that hold the robot's token.
	redact []string
}

// Notify renders and posts one message for the alerts of a group. Template
// errors, refused signatures or keys and other client errors are
// unrecoverable; rate limits, server errors, timeouts and network errors
// are worth a retry. Errors quote the robot's code and message but never
// the URL or the secret.
func (n *notifier) Notify(ctx context.Context, as ...*alert.Alert) notify.NotifyVerdict {
	key, err := notify.ExtractGroupKey(ctx)
	if err != nil {
		return notify.Unrecoverable(err, notify.MissingContextReason)
	}
	logger := n.logger.With("group_key", key)

	data := notify.GetTemplateData(ctx, n.tmpl, as, logger)
	// Firing alerts first, so that a message cut short keeps them.
	slices.SortStableFunc(data.Alerts, func(a, b template.Alert) int {
		return firingFirst(a) - firingFirst(b)
	})

	title, err := n.tmpl.ExecuteTextString(n.title, data)
	if err != nil {
		return notify.Unrecoverable(fmt.Errorf("render title: %w", err), notify.TemplateErrorReason)
	}
	title, _ = notify.TruncateInBytes(strings.Join(strings.Fields(tidy(title)), " "), maxTitleBytes)
	e := envelope{secret: n.secret, title: title, firing: data.Status == "firing", now: n.now()}

	limit, measure := n.robot.budget(e)
	shown := len(data.Alerts)
	if n.maxAlerts > 0 {
		shown = min(shown, n.maxAlerts)
	}
	text, err := fit(func(k int) (string, error) {
		d := *data
		d.Alerts = data.Alerts[:k]
		return n.tmpl.ExecuteTextString(n.message, &d)
	}, shown, len(data.Alerts), limit, measure)
	if err != nil {
		return notify.Unrecoverable(fmt.Errorf("render message: %w", err), notify.TemplateErrorReason)
	}

	if delay, err := n.limiter.wait(ctx); err != nil {
		return notify.Retry(delay, err, notify.RateLimitedReason)
	}
	e.now = n.now() // sign with the time of sending
	target, body, err := n.robot.request(n.target, e, text)
	if err != nil {
		return notify.Unrecoverable(fmt.Errorf("encode message: %w", err), notify.EncodingErrorReason)
	}
	resp, err := notify.PostJSON(ctx, n.client, target, bytes.NewReader(body))
	if err != nil {
		return notify.Retry(0, n.scrub(notify.RedactURL(err)), contextReason(err))
	}
	defer notify.Drain(resp)
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return notify.Retry(0, n.scrub(fmt.Errorf("read answer: %w", err)), contextReason(err))
	}
	v := n.verdict(resp, answer)
	if v.Err() == nil {
		logger.DebugContext(ctx, "message sent", "alerts", len(as))
	}
	return v
}

// verdict reads the robot's reply. A 200 whose code is not zero is a
// failure; the code decides whether a retry may help. Without a code,
// 429 and 5xx are retried and other statuses are not.
func (n *notifier) verdict(resp *http.Response, body []byte) notify.NotifyVerdict {
	code, msg, aerr := n.robot.answer(body)
	status := resp.StatusCode
	if status/100 == 2 {
		if aerr != nil {
			return notify.Retry(0, fmt.Errorf("%s answered %d with an unreadable body: %w", n.robot.kind(), status, aerr), notify.DefaultReason)
		}
		if code == 0 {
			return notify.Success()
		}
		err := n.scrub(fmt.Errorf("%s refused the message: code %d: %s", n.robot.kind(), code, n.quote(msg)))
		if retry, reason := n.robot.classify(code); retry {
			return notify.Retry(n.throttled(reason, 0), err, reason)
		} else {
			return notify.Unrecoverable(err, reason)
		}
	}

	detail := n.quote(string(body))
	if aerr == nil && code != 0 {
		detail = fmt.Sprintf("code %d: %s", code, n.quote(msg))
	}
	err := n.scrub(fmt.Errorf("%s answered status %d: %s", n.robot.kind(), status, detail))
	if aerr == nil && code != 0 {
		if retry, reason := n.robot.classify(code); retry {
			return notify.Retry(n.throttled(reason, 0), err, reason)
		}
	}
	reason := notify.GetFailureReasonFromStatusCode(status)
	switch {
	case status == http.StatusTooManyRequests:
		return notify.Retry(n.throttled(notify.RateLimitedReason, notify.ParseRetryAfter(resp.Header, n.now())), err, reason)
	case status/100 == 5:
		return notify.Retry(0, err, reason)
	}
	return notify.Unrecoverable(err, reason)
}

// throttled holds back every message to this robot's URL, on every
// notifier sharing its limiter, once the robot said its limit was passed:
// for retryAfter when the robot gave one, else for the robot's own
// throttle. It returns that delay; other reasons hold nothing back.
func (n *notifier) throttled(reason notify.Reason, retryAfter time.Duration) time.Duration {
	if reason != notify.RateLimitedReason {
		return 0
	}
	d := retryAfter
	if d <= 0 {
		d = n.robot.throttle()
	}
	n.limiter.holdFor(d)
	n.logger.Warn("robot throttled the webhook; holding its messages back", "robot", n.robot.kind(), "for", d)
	return d
}

// quote shortens a robot's words for an error message.
func (n *notifier) quote(s string) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "\uFFFD")
	s, _ = notify.TruncateInBytes(s, maxDetailBytes)
	return s
}

// scrub removes the secret and the URL's tokens from an error.
func (n *notifier) scrub(err error) error {
	msg := err.Error()
	clean := msg
	for _, s := range n.redact {
		clean = strings.ReplaceAll(clean, s, "<secret>")
	}
	if clean == msg {
		return err
	}
	return scrubbed{msg: clean, err: err}
}

// scrubbed is an error whose text hides secrets while errors.Is still
// sees what it wraps (a deadline, a cancellation).
type scrubbed struct {
	msg string
	err error
}

func (s scrubbed) Error() string { return s.msg }
func (s scrubbed) Unwrap() error { return s.err }

// sensitive returns the strings of a webhook URL and secret that errors
// must not show.
func sensitive(u *url.URL, secret string) []string {
	var out []string
	add := func(s string) {
		// Short strings ("v2", "1") are not secret and would garble
		// messages.
		if len(s) >= 6 {
			out = append(out, s)
		}
	}
	add(u.String())
	add(u.RawQuery)
	for _, vs := range u.Query() {
		for _, v := range vs {
			add(v)
		}
	}
	if i := strings.LastIndexByte(u.Path, '/'); i >= 0 {
		add(u.Path[i+1:])
	}
	add(secret)
	// Longest first, so that a URL is replaced before the token inside it.
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

func firingFirst(a template.Alert) int {
	if a.Status == "firing" {
		return 0
	}
	return 1
}

// contextReason tells a timeout or a cancellation from other failures.
func contextReason(err error) notify.Reason {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return notify.ContextDeadlineExceededReason
	case errors.Is(err, context.Canceled):
		return notify.ContextCanceledReason
	}
	return notify.DefaultReason
}

// encodeJSON encodes v without escaping <, > and & (robots render them as
// markdown and the escapes would eat into size limits).
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func decodeJSON(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// jsonLen is how much s adds to a JSON body as a string value.
func jsonLen(s string) int {
	b, err := encodeJSON(s)
	if err != nil {
		return len(s) * 6
	}
	return len(b) - 2
}

func byteLen(s string) int { return len(s) }

// errcode reads the {"errcode":…,"errmsg":…} replies of DingTalk and WeCom.
func errcode(body []byte) (int, string, error) {
	var a errcodeAnswer
	if err := decodeJSON(body, &a); err != nil {
		return 0, "", err
	}
	if a.ErrCode == nil {
		return 0, "", errors.New("no errcode in answer")
	}
	return *a.ErrCode, a.ErrMsg, nil
}
