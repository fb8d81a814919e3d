package rules

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/vigil-obs/vigil/storage/postgres/alertstore"
	"github.com/vigil-obs/vigil/storage/postgres/leader"
)

// TestOneReplicaEvaluates: two managers over one database with
// storage/postgres/leader's elector: one evaluates, the other serves
// the loaded rules; when the first stops, the second takes over.
func TestOneReplicaEvaluates(t *testing.T) {
	st := newStore(t)
	file := writeRules(t, t.TempDir(), "slow.yml", slowDownRule)
	type replica struct {
		m       *Manager
		leading chan bool
		cancel  context.CancelFunc
		done    chan error
	}
	var replicas [2]*replica
	for i := range replicas {
		m := newManager(t, st, testConfig(file), Options{Elector: leader.New(st.pool, leader.KeyRules, leader.Options{})})
		r := &replica{m: m, leading: make(chan bool, 4), done: make(chan error, 1)}
		m.onLeader = func(l bool) { r.leading <- l }
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		go func() { r.done <- m.Run(ctx) }()
		replicas[i] = r
		t.Cleanup(func() {
			cancel()
			if err := <-r.done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	var first, second *replica
	select {
	case <-replicas[0].leading:
		first, second = replicas[0], replicas[1]
	case <-replicas[1].leading:
		first, second = replicas[1], replicas[0]
	}
	if !first.m.Status().Leader || second.m.Status().Leader {
		t.Fatalf("leaders: %v and %v", first.m.Status().Leader, second.m.Status().Leader)
	}
	if gs, err := second.m.RuleGroups(context.Background()); err != nil || len(gs) != 1 || gs[0].Rules[0].Health != "unknown" {
		t.Errorf("follower's groups: %+v", gs)
	}

	first.cancel()
	if <-first.leading {
		t.Fatal("the first replica led again")
	}
	if err := <-first.done; err != nil {
		t.Fatal(err)
	}
	first.done <- nil // for the cleanup
	if !<-second.leading || !second.m.Status().Leader {
		t.Fatal("the second replica did not take over")
	}
}

const sharedStateRule = `
groups:
  - name: shared
    rules:
      - alert: Down
        expr: up == 0
        for: 1m
        labels:
          severity: critical
        annotations:
          summary: '{{ $labels.instance }} is down ({{ $value }})'
      - record: job:up:sum
        expr: sum by (job) (up)
`

// TestFollowerAnswersFromSharedState: a replica that does not evaluate
// answers /api/v1/rules and /api/v1/alerts with the evaluating replica's
// state (health, state, alerts with their annotations and values), shared
// through PostgreSQL, and falls back to the ALERTS series once that state
// is stale.
func TestFollowerAnswersFromSharedState(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	file := writeRules(t, t.TempDir(), "shared.yml", sharedStateRule)
	states := alertstore.New(st.pool)
	ts := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	st.load(t, []sample{
		{series("__name__", "up", "job", "api", "instance", "a:1"), ts, 0},
		{series("__name__", "up", "job", "api", "instance", "a:1"), ts.Add(time.Minute), 0},
		{series("__name__", "up", "job", "api", "instance", "a:2"), ts.Add(time.Minute), 1},
	})

	lead := newManager(t, st, testConfig(file), Options{States: states})
	lead.iterate = promrules.DefaultEvalIterationFunc
	r := start(t, lead)
	follower := newManager(t, st, testConfig(file), Options{States: states})
	before, err := follower.RuleGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h := before[0].Rules[0].Health; h != "unknown" {
		t.Fatalf("before any evaluation the follower shows health %q", h)
	}
	r.m.mu.RLock()
	groups := r.m.prom.RuleGroups()
	r.m.mu.RUnlock()
	for _, at := range []time.Time{ts, ts.Add(time.Minute)} {
		for _, g := range groups {
			lead.evaluate(ctx, g, at)
		}
	}

	want, err := lead.RuleGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := follower.RuleGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Rules) != 2 {
		t.Fatalf("follower's groups: %+v", got)
	}
	alert := got[0].Rules[0]
	if alert.Health != "ok" || alert.State != "firing" || len(alert.Alerts) != 1 ||
		alert.Alerts[0].Annotations.Get("summary") != "a:1 is down (0)" || alert.Alerts[0].Value != 0 {
		t.Fatalf("follower's alerting rule: %+v", alert)
	}
	if rec := got[0].Rules[1]; rec.Health != "ok" || rec.LastEvaluation.IsZero() {
		t.Fatalf("follower's recording rule: %+v", rec)
	}
	if !got[0].LastEvaluation.Equal(want[0].LastEvaluation) || got[0].EvaluationTime != want[0].EvaluationTime {
		t.Fatalf("group times: follower %v %v, leader %v %v", got[0].LastEvaluation, got[0].EvaluationTime, want[0].LastEvaluation, want[0].EvaluationTime)
	}
	active, err := follower.ActiveAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaderActive, err := lead.ActiveAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 1 || len(leaderActive) != 1 || !sameAlert(active[0], leaderActive[0]) {
		t.Fatalf("follower's alerts %+v, leader's %+v", active, leaderActive)
	}

	// Three intervals later without a new state, the follower no longer
	// trusts it and reads the ALERTS series (nothing that far ahead).
	follower.opts.Now = func() time.Time { return time.Now().Add(4 * 24 * time.Hour) }
	if active, err := follower.ActiveAlerts(ctx); err != nil || len(active) != 0 {
		t.Fatalf("with a stale state: %+v, %v", active, err)
	}
}

func sameAlert(a, b Alert) bool {
	return labels.Equal(a.Labels, b.Labels) && labels.Equal(a.Annotations, b.Annotations) && a.State == b.State &&
		a.ActiveAt.Equal(b.ActiveAt) && a.KeepFiringSince.Equal(b.KeepFiringSince) && a.Value == b.Value
}
