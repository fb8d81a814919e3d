package liveness

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// capture is an AppendableV2 keeping committed samples by series.
type capture struct {
	mu   sync.Mutex
	fail bool
	got  map[string][]float64
}

func (c *capture) AppenderV2(context.Context) promstorage.AppenderV2 { return &captureApp{c: c} }

type captureApp struct {
	c       *capture
	pending map[string][]float64
}

func (a *captureApp) Append(_ promstorage.SeriesRef, ls labels.Labels, _, _ int64, v float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	if a.pending == nil {
		a.pending = map[string][]float64{}
	}
	a.pending[ls.String()] = append(a.pending[ls.String()], v)
	return 0, nil
}

func (a *captureApp) Commit() error {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	if a.c.fail {
		return errors.New("commit refused")
	}
	if a.c.got == nil {
		a.c.got = map[string][]float64{}
	}
	for k, v := range a.pending {
		a.c.got[k] = append(a.c.got[k], v...)
	}
	return nil
}

func (a *captureApp) Rollback() error { return nil }

func resources(kind string, services ...[2]string) any {
	switch kind {
	case "traces":
		td := ptrace.NewTraces()
		for _, s := range services {
			r := td.ResourceSpans().AppendEmpty().Resource().Attributes()
			r.PutStr("service.name", s[0])
			if s[1] != "" {
				r.PutStr("service.instance.id", s[1])
			}
		}
		return []ptrace.Traces{td}
	case "logs":
		ld := plog.NewLogs()
		for _, s := range services {
			ld.ResourceLogs().AppendEmpty().Resource().Attributes().PutStr("service.name", s[0])
		}
		return []plog.Logs{ld}
	default:
		md := pmetric.NewMetrics()
		for _, s := range services {
			md.ResourceMetrics().AppendEmpty().Resource().Attributes().PutStr("service.name", s[0])
		}
		return md
	}
}

func TestTrackerWritesLastSeenAndForgets(t *testing.T) {
	c := &capture{}
	now := time.Unix(1_800_000_000, 0)
	cfg := DefaultConfig()
	cfg.ForgetAfter = time.Hour
	cfg.Replica = "r1"
	tr, err := New(cfg, Options{Appendable: c, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tr.Traces(resources("traces", [2]string{"checkout", "pod-1"}, [2]string{"", "no-name"}).([]ptrace.Traces))
	tr.Logs(resources("logs", [2]string{"billing", ""}).([]plog.Logs))
	tr.Metrics(resources("metrics", [2]string{"stock", ""}).(pmetric.Metrics))
	seenAt := now
	now = now.Add(15 * time.Second)
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkout := `{__name__="vigil_service_last_seen_timestamp_seconds", service_instance_id="pod-1", service_name="checkout", vigil_replica="r1"}`
	billing := `{__name__="vigil_service_last_seen_timestamp_seconds", service_name="billing", vigil_replica="r1"}`
	if len(c.got) != 3 || c.got[checkout][0] != float64(seenAt.Unix()) || c.got[billing][0] != float64(seenAt.Unix()) {
		t.Fatalf("first flush: %v", c.got)
	}

	// Silent: the same value again; then forgotten with a stale marker.
	now = now.Add(30 * time.Minute)
	tr.Traces(resources("traces", [2]string{"billing", ""}).([]ptrace.Traces))
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if v := c.got[checkout]; len(v) != 2 || v[1] != float64(seenAt.Unix()) {
		t.Fatalf("silent service: %v", v)
	}
	if v := c.got[billing]; v[1] != float64(now.Unix()) {
		t.Fatalf("active service: %v", v)
	}
	now = now.Add(45 * time.Minute)
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if v := c.got[checkout]; len(v) != 3 || !value.IsStaleNaN(v[2]) {
		t.Fatalf("forgotten service: %v", v)
	}
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if v := c.got[checkout]; len(v) != 3 {
		t.Fatalf("a forgotten service is written again: %v", v)
	}
	if v := c.got[billing]; len(v) != 4 || math.IsNaN(v[3]) {
		t.Fatalf("billing: %v", v)
	}
}

func TestTrackerBounds(t *testing.T) {
	c := &capture{}
	cfg := DefaultConfig()
	cfg.MaxInstances = 2
	tr, err := New(cfg, Options{Appendable: c})
	if err != nil {
		t.Fatal(err)
	}
	tr.Traces(resources("traces", [2]string{"a", ""}, [2]string{"b", ""}, [2]string{"c", ""}).([]ptrace.Traces))
	c.fail = true
	if err := tr.Flush(context.Background()); err == nil {
		t.Fatal("a refused commit is not reported")
	}
	c.fail = false
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(c.got) != 2 {
		t.Fatalf("%d series, want 2 (the third instance dropped)", len(c.got))
	}
	if _, err := New(Config{}, Options{Appendable: c}); err == nil {
		t.Error("a zero config is accepted")
	}
	if _, err := New(DefaultConfig(), Options{}); err == nil {
		t.Error("no appendable is accepted")
	}
}
