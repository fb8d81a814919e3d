package alertstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/alertstore"
)

func setup(t *testing.T) *alertstore.Store {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return alertstore.New(pool)
}

func TestStateDeltasAndSnapshots(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	var seqs []int64
	for _, d := range []string{"a", "b", "c"} {
		seq, err := s.AppendDelta(ctx, "silences", []byte(d))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	if _, err := s.AppendDelta(ctx, "nflog", []byte("other kind")); err != nil {
		t.Fatal(err)
	}
	st, err := s.ReadState(ctx, "silences", 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshot != nil || len(st.Deltas) != 3 || string(st.Deltas[0].Data) != "a" || string(st.Deltas[2].Data) != "c" {
		t.Fatalf("state from 0 = %+v", st)
	}
	if got := st.Last(0); got != seqs[2] {
		t.Fatalf("Last = %d, want %d", got, seqs[2])
	}
	st, err = s.ReadState(ctx, "silences", seqs[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Deltas) != 1 || string(st.Deltas[0].Data) != "c" {
		t.Fatalf("state after %d = %+v", seqs[1], st)
	}

	// A snapshot up to b removes a and b; a reader behind it gets it.
	if err := s.WriteSnapshot(ctx, "silences", seqs[1], []byte("ab")); err != nil {
		t.Fatal(err)
	}
	st, err = s.ReadState(ctx, "silences", 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(st.Snapshot) != "ab" || st.SnapshotSeq != seqs[1] || len(st.Deltas) != 1 || string(st.Deltas[0].Data) != "c" {
		t.Fatalf("state after snapshot = %+v", st)
	}
	// A reader at or past the snapshot does not get it again.
	st, err = s.ReadState(ctx, "silences", seqs[2])
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshot != nil || len(st.Deltas) != 0 || st.Last(seqs[2]) != seqs[2] {
		t.Fatalf("state at the end = %+v", st)
	}
	// An older snapshot does not replace a newer one.
	if err := s.WriteSnapshot(ctx, "silences", seqs[0], []byte("a")); err != nil {
		t.Fatal(err)
	}
	st, err = s.ReadState(ctx, "silences", 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(st.Snapshot) != "ab" {
		t.Fatalf("older snapshot replaced a newer one: %q", st.Snapshot)
	}
	// The other kind is untouched.
	st, err = s.ReadState(ctx, "nflog", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Deltas) != 1 || st.Snapshot != nil {
		t.Fatalf("nflog state = %+v", st)
	}
}

func TestAlerts(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.PutAlerts(ctx, []alertstore.Alert{
		{Fingerprint: 1, EndsAt: now.Add(time.Hour), Data: []byte(`{"v":1}`)},
		{Fingerprint: 1<<63 + 5, EndsAt: now.Add(-time.Hour), Data: []byte(`{"v":2}`)},
	}); err != nil {
		t.Fatal(err)
	}
	all, err := s.AlertsAfter(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[1].Fingerprint != 1<<63+5 || !all[0].EndsAt.Equal(now.Add(time.Hour)) || all[0].Rev >= all[1].Rev {
		t.Fatalf("alerts = %+v", all)
	}
	last := all[1].Rev
	if err := s.PutAlerts(ctx, []alertstore.Alert{{Fingerprint: 1, EndsAt: now, Data: []byte(`{"v": 3}`)}}); err != nil {
		t.Fatal(err)
	}
	changed, err := s.AlertsAfter(ctx, last, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].Fingerprint != 1 || string(changed[0].Data) != `{"v": 3}` {
		t.Fatalf("changed = %+v", changed)
	}
	n, err := s.DeleteAlertsEndedBefore(ctx, now.Add(-time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("deleted %d, %v", n, err)
	}
	if err := s.PutAlerts(ctx, []alertstore.Alert{{Fingerprint: 2, Data: []byte("not json")}}); err == nil {
		t.Fatal("invalid JSON was stored")
	} else if errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("invalid JSON reported as unavailability: %v", err)
	}
}

func TestNotifications(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	in := []alertstore.Notification{
		{Time: t0, Receiver: "team-a", Integration: "webhook", Index: 0, GroupKey: "{}:{}", Firing: 2, OK: true, Message: "200 OK", Duration: 1500 * time.Microsecond},
		{Time: t0.Add(time.Second), Receiver: "team-b", Integration: "slack", Index: 1, GroupKey: "{}:{a=\"b\"}", Resolved: 1, Retry: true, Message: "500"},
		{Time: t0.Add(2 * time.Second), Receiver: "team-a", Integration: "webhook", Test: true, Message: "ok", OK: true},
	}
	if err := s.RecordNotifications(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := s.Notifications(ctx, alertstore.NotificationFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[0].Test || got[2].Duration != 1500*time.Microsecond || got[1].Integration != "slack" || got[1].Index != 1 || !got[1].Retry || got[1].Resolved != 1 {
		t.Fatalf("all = %+v", got)
	}
	got, err = s.Notifications(ctx, alertstore.NotificationFilter{Receiver: "team-a", Before: t0.Add(2 * time.Second), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Firing != 2 || got[0].Message != "200 OK" || !got[0].Time.Equal(t0) {
		t.Fatalf("team-a before = %+v", got)
	}
	got, err = s.Notifications(ctx, alertstore.NotificationFilter{Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("limit 1: %v %v", got, err)
	}
	n, err := s.DeleteNotificationsBefore(ctx, t0.Add(time.Second))
	if err != nil || n != 1 {
		t.Fatalf("deleted %d, %v", n, err)
	}
}

func TestRuleGroupStates(t *testing.T) {
	s := setup(t)
	ctx := context.Background()
	if err := s.PutRuleGroupState(ctx, "a.yml", "g", []byte(`{"rules":[]}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRuleGroupState(ctx, "a.yml", "g", []byte(`{"rules":[{"name":"x"}]}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRuleGroupState(ctx, "b.yml", "g", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	states, err := s.RuleGroupStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, st := range states {
		if st.Updated.IsZero() {
			t.Errorf("%s/%s: no update time", st.File, st.Group)
		}
		got[st.File+"/"+st.Group] = string(st.State)
	}
	want := map[string]string{"a.yml/g": `{"rules": [{"name": "x"}]}`, "b.yml/g": `{}`}
	if len(got) != 2 || got["a.yml/g"] != want["a.yml/g"] || got["b.yml/g"] != want["b.yml/g"] {
		t.Fatalf("states %v, want %v", got, want)
	}
}
