package rules

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
)

const everySecond = `
groups:
  - name: fast
    interval: 1s
    rules:
      - alert: AlwaysOn
        expr: vector(1) > 0
        labels:
          severity: info
        annotations:
          summary: "value {{ $value }}"
`

// TestRunEvaluatesOnItsOwn runs the production path: Run leads, and
// Prometheus's own group loop evaluates through Vigil's engine and sends
// the alert. It waits for the notification, not for time to pass.
func TestRunEvaluatesOnItsOwn(t *testing.T) {
	st := newStore(t)
	got := make(chan []*notifier.Alert, 16)
	m, err := New(testConfig(writeRules(t, t.TempDir(), "fast.yml", everySecond)), Options{
		Engine: st.engine, Appendable: st.metrics,
		Notify: func(_ context.Context, alerts []*notifier.Alert) {
			select {
			case got <- alerts:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	select {
	case alerts := <-got:
		if len(alerts) != 1 {
			t.Fatalf("alerts: %v", alerts)
		}
		a := alerts[0]
		if a.Labels.Get(labels.AlertName) != "AlwaysOn" || a.Annotations.Get("summary") != "value 1" || a.StartsAt.IsZero() || !a.EndsAt.After(a.StartsAt) {
			t.Errorf("alert: %+v", a)
		}
		checkGeneratorURL(t, a.GeneratorURL)
	case <-time.After(time.Minute):
		t.Fatal("no alert sent within a minute of evaluations every second")
	}
	// The rule's health is set before its alerts are sent; its
	// evaluation time only once the evaluation is over.
	if gs, _ := m.RuleGroups(context.Background()); len(gs) != 1 || gs[0].Rules[0].Health != "ok" {
		t.Errorf("groups after an evaluation: %+v", gs)
	}
}
