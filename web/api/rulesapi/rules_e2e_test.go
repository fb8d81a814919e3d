package rulesapi

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-obs/vigil/alerting/rules"
	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
)

// TestFollowerOverStore serves a rules.Manager that does not lead, over
// a real metric store holding the ALERTS series a leader wrote: the
// shipped rules, not evaluated here, and the alerts read from the store.
func TestFollowerOverStore(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour})
	store := metricstore.New(pool, parts, metricstore.Options{})
	eng, err := promql.New(store, promql.Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })

	app := store.AppenderV2(ctx)
	ts := t0.Add(-time.Minute).UnixMilli()
	for _, s := range []struct {
		ls labels.Labels
		v  float64
	}{
		{labels.FromStrings("__name__", "ALERTS", "alertname", "ServiceDown", "alertstate", "firing", "instance", "10.0.0.5:8080", "job", "user-service", "severity", "critical"), 1},
		{labels.FromStrings("__name__", "ALERTS_FOR_STATE", "alertname", "ServiceDown", "instance", "10.0.0.5:8080", "job", "user-service", "severity", "critical"), float64(t0.Add(-10 * time.Minute).Unix())},
		{labels.FromStrings("__name__", "ALERTS", "alertname", "HighMemoryUsage", "alertstate", "pending", "instance", "10.0.0.4:9100", "job", "api", "severity", "warning"), 1},
		{labels.FromStrings("__name__", "ALERTS_FOR_STATE", "alertname", "HighMemoryUsage", "instance", "10.0.0.4:9100", "job", "api", "severity", "warning"), float64(t0.Add(-2 * time.Minute).Unix())},
	} {
		if _, err := app.Append(0, s.ls, 0, ts, s.v, nil, nil, promstorage.AOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}

	m, err := rules.New(rules.Config{}, rules.Options{Engine: eng, Appendable: store, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, target string }{
		{"follower_rules", "/api/v1/rules"},
		{"follower_alerts", "/api/v1/alerts"},
		{"follower_status", "/api/vigil/rules/status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := serve(t, m, tc.target)
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			golden(t, tc.name, body)
		})
	}
}
