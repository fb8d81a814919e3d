package servicestore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/logstore"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
	"github.com/vigil-obs/vigil/storage/postgres/spanstore"
)

// TestServiceSummaries writes each signal for a service of its own (and
// all three for one) and checks the signals each summary names.
func TestServiceSummaries(t *testing.T) {
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	spans := func(service string) ptrace.Traces {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", service)
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{1, byte(len(service))})
		sp.SetSpanID(pcommon.SpanID{1, byte(len(service))})
		sp.SetName("op")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
		return td
	}
	logs := func(service string) plog.Logs {
		ld := plog.NewLogs()
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", service)
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(now))
		lr.Body().SetStr("hello")
		return ld
	}
	if err := spanstore.New(pool, parts).WriteTraces(ctx, []ptrace.Traces{spans("api"), spans("all")}); err != nil {
		t.Fatal(err)
	}
	logStore := logstore.New(pool, parts)
	if err := logStore.WriteLogs(ctx, []plog.Logs{logs("worker"), logs("all")}); err != nil {
		t.Fatal(err)
	}
	// The worker's logs are compacted into blocks: it still has logs.
	if _, err := logStore.Compact(ctx, now.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := logStore.WriteLogs(ctx, []plog.Logs{logs("all")}); err != nil {
		t.Fatal(err)
	}
	app := metricstore.New(pool, parts, metricstore.Options{}).AppenderV2(ctx)
	for _, ls := range []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "all"),
		labels.FromStrings("__name__", "up", "job", "batch"), // not in the dictionary: not listed
	} {
		if _, err := app.Append(0, ls, 0, now.UnixMilli(), 1, nil, nil, promstorage.AOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}

	got, err := New(pool).ServiceSummaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"all": {"traces", "logs", "metrics"}, "api": {"traces"}, "worker": {"logs"}}
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
		if !slices.Equal(s.Signals, want[s.Name]) {
			t.Errorf("%s: signals %v, want %v", s.Name, s.Signals, want[s.Name])
		}
		if s.FirstSeen.IsZero() || s.LastSeen.Before(s.FirstSeen) || s.FirstSeen.Location() != time.UTC {
			t.Errorf("%s: first seen %v, last seen %v", s.Name, s.FirstSeen, s.LastSeen)
		}
	}
	if !slices.Equal(names, []string{"all", "api", "worker"}) {
		t.Fatalf("services %v", names)
	}
}
