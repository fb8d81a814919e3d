package robots

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/client_golang/prometheus"
)

// TestAlertmanagerRetryStage runs the robots' verdicts through
// Alertmanager's own retry stage: a refused key stops at once, a busy
// server is retried until the robot takes the message, and a rate limit
// holds every message to the robot back for its throttle (a minute for
// WeCom), so the retries within the deadline never reach it.
func TestAlertmanagerRetryStage(t *testing.T) {
	for name, tc := range map[string]struct {
		answers  []string
		wantErr  bool
		attempts int
		deadline time.Duration
	}{
		"bad key is not retried":          {[]string{`{"errcode":93000,"errmsg":"invalid webhook url"}`}, true, 1, time.Minute},
		"rate limit holds the robot back": {[]string{`{"errcode":45009,"errmsg":"api freq out of limit"}`, `{"errcode":0,"errmsg":"ok"}`}, true, 1, 2 * time.Second},
		"busy server is retried":          {[]string{`{"errcode":-1,"errmsg":"system busy"}`, `{"errcode":0,"errmsg":"ok"}`}, false, 2, time.Minute},
		"delivered the first time":        {[]string{`{"errcode":0,"errmsg":"ok"}`}, false, 1, time.Minute},
	} {
		t.Run(name, func(t *testing.T) {
			var n atomic.Int32
			srv := newRobotServer(t, func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				answer(http.StatusOK, tc.answers[min(i, len(tc.answers)-1)])(w, r)
			})
			in := build(t, robotReceiver(t, "wecom", srv.URL+robotPaths["wecom"], ""), Options{})
			stage := notify.NewRetryStage(in, "oncall-cn", notify.NewMetrics(prometheus.NewRegistry(), featurecontrol.NoopFlags{}), eventrecorder.NopRecorder())

			// The deadline bounds a broken test, and the wait of the
			// rate-limited case; otherwise the stage returns as soon as
			// the robot's answer settles the outcome.
			ctx, cancel := context.WithTimeout(notifyContext(context.Background()), tc.deadline)
			defer cancel()
			_, _, err := stage.Exec(ctx, slog.New(slog.DiscardHandler), firing("s", "alertname", "A"))
			if (err != nil) != tc.wantErr {
				t.Errorf("error %v, want error %v", err, tc.wantErr)
			}
			if got := len(srv.Requests()); got != tc.attempts {
				t.Errorf("%d attempts, want %d", got, tc.attempts)
			}
		})
	}
}

// TestThrottleHoldsTheURL: once a robot answers that its limit was
// passed, every notifier posting to that URL waits for the robot's
// throttle (DingTalk's ten minutes) before its next message, and sends
// again once it is over.
func TestThrottleHoldsTheURL(t *testing.T) {
	clk := newClock()
	var n atomic.Int32
	srv := newRobotServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			answer(http.StatusOK, `{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}`)(w, r)
			return
		}
		answer(http.StatusOK, `{"errcode":0,"errmsg":"ok"}`)(w, r)
	})
	opts := Options{Now: clk.Now, Limiter: NewLimiters(clk.Now)}
	first := build(t, robotReceiver(t, "dingtalk", srv.URL+robotPaths["dingtalk"], ""), opts)
	second := build(t, robotReceiver(t, "dingtalk", srv.URL+robotPaths["dingtalk"], ""), opts)
	send := func(in notify.Integration) notify.NotifyVerdict {
		ctx, cancel := context.WithTimeout(notifyContext(context.Background()), 5*time.Second)
		defer cancel()
		return in.Notify(ctx, firing("s", "alertname", "A"))
	}
	if v := send(first); v.Err() == nil || !v.ShouldRetry() {
		t.Fatalf("throttled answer: retry %v, err %v", v.ShouldRetry(), v.Err())
	}
	clk.Advance(9 * time.Minute)
	if v := send(second); v.Err() == nil || !v.ShouldRetry() || !errors.Is(v.Err(), errRateLimited) {
		t.Fatalf("within the throttle: retry %v, err %v", v.ShouldRetry(), v.Err())
	}
	if got := len(srv.Requests()); got != 1 {
		t.Fatalf("the robot got %d requests within its throttle, want 1", got)
	}
	clk.Advance(time.Minute)
	if v := send(second); v.Err() != nil {
		t.Fatalf("after the throttle: %v", v.Err())
	}
	if got := len(srv.Requests()); got != 2 {
		t.Fatalf("the robot got %d requests, want 2", got)
	}
}
