package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/alert"
	amnotify "github.com/prometheus/alertmanager/notify"

	"github.com/vigil-obs/vigil/storage/postgres/alertstore"
)

// historyWriteTimeout bounds the write of one history entry.
const historyWriteTimeout = 5 * time.Second

// maxMessageBytes bounds the error text kept in one history entry.
const maxMessageBytes = 1024

// urlPattern finds URLs in error texts: a receiver's URL can carry a
// token, so history never keeps one.
var urlPattern = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"']+`)

// testKey marks the context of a receiver test.
type testKey struct{}

// recorder wraps one integration: each attempt is cut after the
// integration timeout and written to the history.
type recorder struct {
	inner    *amnotify.Integration
	receiver string
	timeout  time.Duration
	history  HistoryStore
	now      func() time.Time
	logger   *slog.Logger
	metrics  *metrics
}

// wrap returns integrations that record their attempts in the history.
func (n *Notifier) wrap(receiver string, in []amnotify.Integration) []amnotify.Integration {
	out := make([]amnotify.Integration, len(in))
	for i := range in {
		inner := &in[i]
		r := &recorder{inner: inner, receiver: receiver, timeout: n.cfg.IntegrationTimeout,
			history: n.store, now: n.now, logger: n.logger, metrics: n.metrics}
		out[i] = amnotify.NewIntegration(r, inner, inner.Name(), inner.Index(), receiver)
	}
	return out
}

// Notify implements Alertmanager's notify.Notifier.
func (r *recorder) Notify(ctx context.Context, alerts ...*alert.Alert) amnotify.NotifyVerdict {
	start := r.now()
	actx, cancel := context.WithTimeoutCause(ctx, r.timeout, fmt.Errorf("integration timeout %s reached", r.timeout))
	v := r.inner.Notify(actx, alerts...)
	if err := v.Err(); err != nil && actx.Err() != nil && ctx.Err() == nil {
		// The attempt was cut by the integration timeout: retryable.
		v = amnotify.Retry(0, fmt.Errorf("%w: %w", context.Cause(actx), err), amnotify.ContextDeadlineExceededReason)
	}
	cancel()
	firing, resolved := countAlerts(alerts, start)
	key, _ := amnotify.GroupKey(ctx)
	_, test := ctx.Value(testKey{}).(bool)
	e := alertstore.Notification{
		Time:        start,
		Receiver:    r.receiver,
		Integration: r.inner.Name(),
		Index:       r.inner.Index(),
		GroupKey:    key,
		Firing:      firing,
		Resolved:    resolved,
		Duration:    r.now().Sub(start),
		Test:        test,
	}
	e.OK, e.Retry, e.Message = describe(v)
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), historyWriteTimeout)
	defer wcancel()
	if err := r.history.RecordNotifications(wctx, []alertstore.Notification{e}); err != nil {
		r.metrics.historyWriteFailures.Inc()
		r.logger.WarnContext(ctx, "record notification", "receiver", r.receiver, "integration", r.inner.String(), "err", err)
	}
	return v
}

func countAlerts(alerts []*alert.Alert, at time.Time) (firing, resolved int) {
	for _, a := range alerts {
		if a.ResolvedAt(at) {
			resolved++
		} else {
			firing++
		}
	}
	return firing, resolved
}

// describe turns a verdict into history fields: success, whether a failure
// is retried, and the error text without URLs, bounded.
func describe(v amnotify.NotifyVerdict) (ok, retry bool, msg string) {
	err := v.Err()
	if err == nil {
		return true, false, "delivered"
	}
	return false, v.ShouldRetry(), redact(err)
}

func redact(err error) string {
	msg := amnotify.RedactURL(err).Error()
	msg = urlPattern.ReplaceAllString(msg, "<url>")
	if len(msg) > maxMessageBytes {
		msg = strings.ToValidUTF8(msg[:maxMessageBytes], "") + "…"
	}
	return msg
}

// logNotifier is the built-in "log" receiver: it logs the notification;
// its recorder puts it in the history.
type logNotifier struct {
	logger *slog.Logger
	now    func() time.Time
}

func (l logNotifier) Notify(ctx context.Context, alerts ...*alert.Alert) amnotify.NotifyVerdict {
	key, _ := amnotify.GroupKey(ctx)
	firing, resolved := countAlerts(alerts, l.now())
	names := make([]string, 0, len(alerts))
	for _, a := range alerts {
		names = append(names, a.Labels.String())
	}
	l.logger.InfoContext(ctx, "notification", "receiver", LogReceiver, "group_key", key,
		"firing", firing, "resolved", resolved, "alerts", names)
	return amnotify.Success()
}

// sendResolved tells Alertmanager to pass resolved alerts to the log
// receiver too.
type sendResolved bool

func (s sendResolved) SendResolved() bool { return bool(s) }

// ErrUnknownReceiver is returned by TestReceiver for a name that is not a
// receiver of the current configuration.
var ErrUnknownReceiver = errors.New("unknown receiver")
