package robots

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/notify"
)

// TestLimiterSharedPerURL drives the clock by hand: no test waits.
func TestLimiterSharedPerURL(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"errcode":0,"errmsg":"ok"}`))
	clk := newClock()
	limiters := NewLimiters(clk.Now)
	opts := Options{Limiter: limiters, Now: clk.Now}
	url := srv.URL + "/cgi-bin/webhook/send?key=shared"
	a := build(t, robotReceiver(t, "wecom", url, ""), opts)
	b := build(t, robotReceiver(t, "wecom", url, ""), opts) // another receiver, same robot
	other := build(t, robotReceiver(t, "wecom", srv.URL+"/cgi-bin/webhook/send?key=other", ""), opts)

	send := func(in notify.Integration, ctx context.Context) notify.NotifyVerdict {
		return in.Notify(notifyContext(ctx), firing("s", "alertname", "A"))
	}
	soon := func() (context.Context, context.CancelFunc) {
		// A deadline well before the next token (4 s) is due.
		return context.WithTimeout(context.Background(), time.Second)
	}

	// The burst: five messages at once.
	for i := range 5 {
		if err := send(a, context.Background()).Err(); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	// The sixth, from another notifier of the same robot, would wait 4 s
	// past its deadline: a retryable error, and nothing is posted.
	ctx, cancel := soon()
	v := send(b, ctx)
	cancel()
	if v.Err() == nil || !v.ShouldRetry() || v.Reason() != notify.RateLimitedReason || !errors.Is(v.Err(), errRateLimited) {
		t.Fatalf("verdict %v retry %v reason %v, want a retryable rate limit", v.Err(), v.ShouldRetry(), v.Reason())
	}
	if v.Delay() != 4*time.Second {
		t.Errorf("retry delay %s, want 4s", v.Delay())
	}
	if n := len(srv.Requests()); n != 5 {
		t.Fatalf("robot got %d requests, want 5", n)
	}

	// Another robot has its own bucket.
	if err := send(other, context.Background()).Err(); err != nil {
		t.Fatalf("other robot: %v", err)
	}

	// A context that ends while waiting gives the token back.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	v = send(a, cancelled)
	if v.Err() == nil || !v.ShouldRetry() || !errors.Is(v.Err(), context.Canceled) {
		t.Fatalf("verdict %v retry %v, want a retryable cancellation", v.Err(), v.ShouldRetry())
	}

	// One token is due 4 s later: exactly one message goes, the next waits.
	clk.Advance(4 * time.Second)
	if err := send(b, context.Background()).Err(); err != nil {
		t.Fatalf("after 4s: %v", err)
	}
	ctx, cancel = soon()
	v = send(a, ctx)
	cancel()
	if !errors.Is(v.Err(), errRateLimited) || v.Delay() != 4*time.Second {
		t.Fatalf("verdict %v delay %s, want a rate limit for 4s", v.Err(), v.Delay())
	}
	if n := len(srv.Requests()); n != 7 {
		t.Errorf("robot got %d requests, want 7", n)
	}
}

// TestRatesKeepPublishedLimits checks every bucket shape against the
// robots' published limits: however fast messages are asked for, no window
// of the published length holds more than the published number.
func TestRatesKeepPublishedLimits(t *testing.T) {
	type limit struct {
		n      int
		window time.Duration
	}
	for name, tc := range map[string]struct {
		rates  []rate
		limits []limit
	}{
		"feishu":          {feishuRates, []limit{{5, time.Second}, {100, time.Minute}}},
		"dingtalk, wecom": {perMinute20, []limit{{20, time.Minute}}},
	} {
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			l := NewLimiters(clk.Now).get("k", tc.rates)
			var sent []time.Time
			for range 2000 {
				// Ask again as soon as allowed, with the clock where the
				// reservation said the token is due.
				d := l.reserve()
				clk.Advance(d)
				sent = append(sent, clk.Now())
			}
			for _, lim := range tc.limits {
				for i := range sent {
					j := i
					for j < len(sent) && sent[j].Sub(sent[i]) < lim.window {
						j++
					}
					if j-i > lim.n {
						t.Fatalf("%d messages within %s from message %d, limit %d", j-i, lim.window, i, lim.n)
					}
				}
			}
			// And the limiter is not needlessly slow: over the long run it
			// sends at its refill rate.
			span := sent[len(sent)-1].Sub(sent[0])
			slowest := tc.rates[0].every
			for _, r := range tc.rates {
				slowest = max(slowest, r.every)
			}
			if want := time.Duration(len(sent)-1-tc.rates[0].burst) * slowest; span > want+slowest {
				t.Errorf("2000 messages took %s, want about %s", span, want)
			}
		})
	}
}

func TestLimiterRefillsToBurstOnly(t *testing.T) {
	clk := newClock()
	l := NewLimiters(clk.Now).get("k", perMinute20)
	clk.Advance(time.Hour)
	for i := range 5 {
		if d := l.reserve(); d != 0 {
			t.Fatalf("message %d after an idle hour waits %s", i, d)
		}
	}
	if d := l.reserve(); d != 4*time.Second {
		t.Errorf("sixth message waits %s, want 4s", d)
	}
}
