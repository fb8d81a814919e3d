package robots

import (
	"context"
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
// Alertmanager's own retry stage: a refused key stops at once, a rate
// limit is retried until the robot takes the message.
func TestAlertmanagerRetryStage(t *testing.T) {
	for name, tc := range map[string]struct {
		answers  []string
		wantErr  bool
		attempts int
	}{
		"bad key is not retried":   {[]string{`{"errcode":93000,"errmsg":"invalid webhook url"}`}, true, 1},
		"rate limit is retried":    {[]string{`{"errcode":45009,"errmsg":"api freq out of limit"}`, `{"errcode":0,"errmsg":"ok"}`}, false, 2},
		"busy server is retried":   {[]string{`{"errcode":-1,"errmsg":"system busy"}`, `{"errcode":0,"errmsg":"ok"}`}, false, 2},
		"delivered the first time": {[]string{`{"errcode":0,"errmsg":"ok"}`}, false, 1},
	} {
		t.Run(name, func(t *testing.T) {
			var n atomic.Int32
			srv := newRobotServer(t, func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				answer(http.StatusOK, tc.answers[min(i, len(tc.answers)-1)])(w, r)
			})
			in := build(t, robotReceiver(t, "wecom", srv.URL+robotPaths["wecom"], ""), Options{})
			stage := notify.NewRetryStage(in, "oncall-cn", notify.NewMetrics(prometheus.NewRegistry(), featurecontrol.NoopFlags{}), eventrecorder.NopRecorder())

			// The deadline only bounds a broken test; the stage returns as
			// soon as the robot's answer settles the outcome.
			ctx, cancel := context.WithTimeout(notifyContext(context.Background()), time.Minute)
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
