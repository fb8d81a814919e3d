package rules

import (
	"context"
	"testing"

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
	if gs := second.m.RuleGroups(); len(gs) != 1 || gs[0].Rules[0].Health != "unknown" {
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
