package services_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/query/services"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/logstore"
	"github.com/vigil-obs/vigil/storage/postgres/servicestore"
	"github.com/vigil-obs/vigil/storage/postgres/spanstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestSummaries reads the catalogue of a real database: a service known
// by its spans and one known by its logs.
func TestSummaries(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		t.Fatalf("partitions: %v", err)
	}
	spans := spanstore.New(pool, parts)
	now := time.Now()

	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "order-service")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1, 2, 3})
	sp.SetSpanID(pcommon.SpanID{1})
	sp.SetName("GET /orders")
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
	if err := spans.WriteTraces(ctx, []ptrace.Traces{td}); err != nil {
		t.Fatalf("write traces: %v", err)
	}
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "inventory")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(now))
	lr.Body().SetStr("restocked")
	if err := logstore.New(pool, parts).WriteLogs(ctx, []plog.Logs{ld}); err != nil {
		t.Fatalf("write logs: %v", err)
	}

	got, err := services.New(servicestore.New(pool), services.Config{}).Summaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := "[inventory [logs]] [order-service [traces]]"
	if g := summaryString(got); g != want {
		t.Errorf("summaries = %s, want %s", g, want)
	}
	for _, s := range got {
		if s.FirstSeen.IsZero() || s.LastSeen.Before(s.FirstSeen) || s.LastSeen.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s: seen %s .. %s", s.Name, s.FirstSeen, s.LastSeen)
		}
	}
}

func summaryString(sums []storage.ServiceSummary) string {
	var out string
	for i, s := range sums {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("[%s %v]", s.Name, s.Signals)
	}
	return out
}

// lister answers fixed summaries, or err, and notes the deadline it was
// given.
type lister struct {
	sums        []storage.ServiceSummary
	err         error
	deadline    time.Time
	hasDeadline bool
}

func (l *lister) ServiceSummaries(ctx context.Context) ([]storage.ServiceSummary, error) {
	l.deadline, l.hasDeadline = ctx.Deadline()
	return l.sums, l.err
}

// TestSummariesContract: sorted by name and never a nil signal list,
// whatever order the store answers in; store errors come back wrapped;
// the query runs under Config.Timeout.
func TestSummariesContract(t *testing.T) {
	l := &lister{sums: []storage.ServiceSummary{{Name: "b", Signals: []string{"metrics"}}, {Name: "a"}}}
	got, err := services.New(l, services.Config{Timeout: time.Minute}).Summaries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if g := summaryString(got); g != "[a []] [b [metrics]]" || got[0].Signals == nil {
		t.Errorf("summaries = %s (signals of a nil: %v)", g, got[0].Signals == nil)
	}
	if !l.hasDeadline || time.Until(l.deadline) > time.Minute {
		t.Errorf("deadline %v (set: %v); want one within a minute", l.deadline, l.hasDeadline)
	}

	l.err = fmt.Errorf("acquire: %w", storage.ErrUnavailable)
	if _, err := services.New(l, services.Config{}).Summaries(context.Background()); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("err = %v, want storage.ErrUnavailable", err)
	}
}
