package notify_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/alerting/notify"
	"github.com/vigil-obs/vigil/storage/postgres/alertstore"
)

// TestMaintenance checks that maintenance folds the silences into a
// snapshot (dropping the deltas it covers) that a fresh replica loads, and
// deletes history past its retention.
func TestMaintenance(t *testing.T) {
	pool := newDB(t)
	cfg := notify.Config{
		GroupWait:           10 * time.Millisecond,
		MaintenanceInterval: 50 * time.Millisecond,
		HistoryRetention:    time.Hour,
	}
	first := start(t, pool, cfg, nil)
	srv := httptest.NewServer(first.n.APIHandler())
	postJSON(t, srv.URL+"/api/v2/silences", map[string]any{
		"matchers":  []map[string]any{{"name": "service", "value": "db", "isRegex": false}},
		"startsAt":  time.Now().Add(-time.Minute),
		"endsAt":    time.Now().Add(time.Hour),
		"createdBy": "test",
		"comment":   "from the snapshot",
	})
	srv.Close()
	ctx := context.Background()
	waitFor(t, "silences snapshot without covered deltas", func() bool {
		st, err := first.store.ReadState(ctx, "silences", 0)
		return err == nil && st.Snapshot != nil && len(st.Deltas) == 0
	})

	// History older than the retention goes at the next maintenance.
	now := time.Now()
	if err := first.store.RecordNotifications(ctx, []alertstore.Notification{
		{Time: now.Add(-2 * time.Hour), Receiver: "r", Integration: "webhook", Message: "old"},
		{Time: now, Receiver: "r", Integration: "webhook", Message: "recent"},
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "old history deleted", func() bool { return len(history(t, first.n, "r")) == 1 })
	if h := history(t, first.n, "r"); h[0].Message != "recent" {
		t.Fatalf("history kept %+v", h)
	}
	first.stop()

	second := start(t, pool, notify.Config{}, nil)
	srv = httptest.NewServer(second.n.APIHandler())
	t.Cleanup(srv.Close)
	var sils []apiSilence
	waitFor(t, "silence loaded from the snapshot", func() bool {
		getJSON(t, srv.URL+"/api/v2/silences", &sils)
		return len(sils) == 1
	})
	if sils[0].Comment != "from the snapshot" || sils[0].Status.State != "active" {
		t.Fatalf("silence = %+v", sils[0])
	}
}
