package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/query/metrics"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type bundle struct {
	store *metricstore.Store
	now   time.Time
}

// setup returns a metric store on a fresh database holding: up for
// instances a and b of job api over the last hour, up for instance c of
// job db three days ago, and http_requests_total of job api for codes 200
// and 500 over the last hour; with the metadata of http_requests_total
// (counter) and of up (help only).
func setup(t *testing.T) bundle {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		t.Fatalf("partitions: %v", err)
	}
	store := metricstore.New(pool, parts, metricstore.Options{})
	now := time.Now().Truncate(time.Minute)
	app := store.AppenderV2(ctx)
	add := func(ls labels.Labels, from, to time.Time) {
		for ts := from; !ts.After(to); ts = ts.Add(15 * time.Minute) {
			if _, err := app.Append(0, ls, 0, ts.UnixMilli(), 1, nil, nil, promstorage.AOptions{}); err != nil {
				t.Fatalf("append %s: %v", ls, err)
			}
		}
	}
	hour := now.Add(-time.Hour)
	add(labels.FromStrings("__name__", "up", "job", "api", "instance", "a"), hour, now)
	add(labels.FromStrings("__name__", "up", "job", "api", "instance", "b"), hour, now)
	add(labels.FromStrings("__name__", "up", "job", "db", "instance", "c"), now.Add(-72*time.Hour), now.Add(-71*time.Hour))
	add(labels.FromStrings("__name__", "http_requests_total", "job", "api", "code", "200"), hour, now)
	add(labels.FromStrings("__name__", "http_requests_total", "job", "api", "code", "500"), hour, now)
	if err := app.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := store.UpdateMetadata(ctx, map[string]metadata.Metadata{
		"http_requests_total": {Type: "counter", Help: "Requests served."},
		"up":                  {Help: "Whether the target answers."},
		// Not a family name: skipped, the rest recorded.
		"scrape_\xff": {Type: "gauge", Help: "sentinel"},
	}); err != nil {
		t.Fatalf("metadata: %v", err)
	}
	return bundle{store: store, now: now}
}

func sel(limit int, exprs ...string) metrics.Selection {
	s := metrics.Selection{Limit: limit}
	for _, e := range exprs {
		var ms []*labels.Matcher
		name, rest, _ := strings.Cut(e, "{")
		if name != "" {
			ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
		}
		for _, pair := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
			if k, v, ok := strings.Cut(pair, "="); ok {
				ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, k, strings.Trim(v, `"`)))
			}
		}
		s.Matchers = append(s.Matchers, ms)
	}
	return s
}

var truncated = []string{metrics.TruncatedWarning}

func TestSeries(t *testing.T) {
	b := setup(t)
	s := metrics.New(b.store, b.store, metrics.Config{})
	tests := []struct {
		name     string
		sel      metrics.Selection
		want     []string
		warnings []string
	}{
		{name: "one selector, sorted", sel: sel(0, `{job="api"}`), want: []string{
			`{__name__="http_requests_total", code="200", job="api"}`, `{__name__="http_requests_total", code="500", job="api"}`,
			`{__name__="up", instance="a", job="api"}`, `{__name__="up", instance="b", job="api"}`,
		}},
		{name: "selectors merged without duplicates", sel: sel(0, `up`, `{job="api"}`, `up{instance="a"}`), want: []string{
			`{__name__="http_requests_total", code="200", job="api"}`, `{__name__="http_requests_total", code="500", job="api"}`,
			`{__name__="up", instance="a", job="api"}`, `{__name__="up", instance="b", job="api"}`, `{__name__="up", instance="c", job="db"}`,
		}},
		{name: "limit", sel: sel(2, `up`, `{job="api"}`), want: []string{
			`{__name__="http_requests_total", code="200", job="api"}`, `{__name__="http_requests_total", code="500", job="api"}`,
		}, warnings: truncated},
		{name: "limit not reached", sel: sel(3, `up`), want: []string{
			`{__name__="up", instance="a", job="api"}`, `{__name__="up", instance="b", job="api"}`, `{__name__="up", instance="c", job="db"}`,
		}},
		{name: "window", sel: func() metrics.Selection {
			s := sel(0, `up`)
			s.Start = b.now.Add(-2 * time.Hour)
			return s
		}(), want: []string{`{__name__="up", instance="a", job="api"}`, `{__name__="up", instance="b", job="api"}`}},
		{name: "window in the past", sel: func() metrics.Selection {
			s := sel(0, `up`)
			s.End = b.now.Add(-48 * time.Hour)
			return s
		}(), want: []string{`{__name__="up", instance="c", job="db"}`}},
		{name: "no selector", sel: metrics.Selection{}, want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings, err := s.Series(context.Background(), tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("nil series")
			}
			strs := make([]string, len(got))
			for i, ls := range got {
				strs[i] = ls.String()
			}
			if !slices.Equal(strs, tt.want) || !slices.Equal(warnings, tt.warnings) {
				t.Errorf("series = %q, warnings %q; want %q, %q", strs, warnings, tt.want, tt.warnings)
			}
		})
	}
}

func TestLabels(t *testing.T) {
	b := setup(t)
	s := metrics.New(b.store, b.store, metrics.Config{})
	ctx := context.Background()
	tests := []struct {
		name     string
		get      func() ([]string, []string, error)
		want     []string
		warnings []string
	}{
		{name: "names of every series", get: func() ([]string, []string, error) { return s.LabelNames(ctx, metrics.Selection{}) },
			want: []string{"__name__", "code", "instance", "job"}},
		{name: "names of a selector", get: func() ([]string, []string, error) { return s.LabelNames(ctx, sel(0, `http_requests_total`)) },
			want: []string{"__name__", "code", "job"}},
		{name: "names merged", get: func() ([]string, []string, error) {
			return s.LabelNames(ctx, sel(0, `http_requests_total`, `up{job="db"}`))
		}, want: []string{"__name__", "code", "instance", "job"}},
		{name: "names limit", get: func() ([]string, []string, error) { return s.LabelNames(ctx, sel(2)) },
			want: []string{"__name__", "code"}, warnings: truncated},
		{name: "values of every series", get: func() ([]string, []string, error) { return s.LabelValues(ctx, "job", metrics.Selection{}) },
			want: []string{"api", "db"}},
		{name: "values merged", get: func() ([]string, []string, error) {
			return s.LabelValues(ctx, "instance", sel(0, `up{job="api"}`, `up{instance="a"}`, `up{job="db"}`))
		}, want: []string{"a", "b", "c"}},
		{name: "values limit", get: func() ([]string, []string, error) { return s.LabelValues(ctx, "instance", sel(1, `up`)) },
			want: []string{"a"}, warnings: truncated},
		{name: "values of no series", get: func() ([]string, []string, error) { return s.LabelValues(ctx, "instance", sel(0, `nothing`)) },
			want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings, err := tt.get()
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || !slices.Equal(got, tt.want) || !slices.Equal(warnings, tt.warnings) {
				t.Errorf("got %q, warnings %q; want %q, %q", got, warnings, tt.want, tt.warnings)
			}
		})
	}
}

func TestMetadata(t *testing.T) {
	b := setup(t)
	s := metrics.New(b.store, b.store, metrics.Config{})
	ctx := context.Background()
	requests := []metadata.Metadata{{Type: "counter", Help: "Requests served."}}
	up := []metadata.Metadata{{Type: "unknown", Help: "Whether the target answers."}}
	tests := []struct {
		name string
		q    metrics.MetadataQuery
		want map[string][]metadata.Metadata
	}{
		{name: "all", q: metrics.MetadataQuery{}, want: map[string][]metadata.Metadata{"http_requests_total": requests, "up": up}},
		{name: "one family", q: metrics.MetadataQuery{Metric: "up"}, want: map[string][]metadata.Metadata{"up": up}},
		{name: "limit", q: metrics.MetadataQuery{Limit: 1}, want: map[string][]metadata.Metadata{"http_requests_total": requests}},
		{name: "per metric", q: metrics.MetadataQuery{Metric: "up", LimitPerMetric: 1}, want: map[string][]metadata.Metadata{"up": up}},
		{name: "unknown family", q: metrics.MetadataQuery{Metric: "nothing"}, want: map[string][]metadata.Metadata{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Metadata(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("metadata = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("no reader", func(t *testing.T) {
		got, err := metrics.New(b.store, nil, metrics.Config{}).Metadata(ctx, metrics.MetadataQuery{})
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("metadata = %v, %v; want an empty map", got, err)
		}
	})
}

// failing is a store that cannot be reached.
type failing struct{}

func (failing) Querier(int64, int64) (promstorage.Querier, error) {
	return nil, fmt.Errorf("acquire: %w", storage.ErrUnavailable)
}

func (failing) Metadata(context.Context, string, int) (map[string]metadata.Metadata, error) {
	return nil, fmt.Errorf("acquire: %w", storage.ErrUnavailable)
}

// TestErrors: the store's errors come back wrapped, sentinels kept.
func TestErrors(t *testing.T) {
	s := metrics.New(failing{}, failing{}, metrics.Config{})
	ctx := context.Background()
	checks := map[string]func() error{
		"series":       func() error { _, _, err := s.Series(ctx, sel(0, "up")); return err },
		"label names":  func() error { _, _, err := s.LabelNames(ctx, metrics.Selection{}); return err },
		"label values": func() error { _, _, err := s.LabelValues(ctx, "job", metrics.Selection{}); return err },
		"metadata":     func() error { _, err := s.Metadata(ctx, metrics.MetadataQuery{}); return err },
	}
	for name, f := range checks {
		t.Run(name, func(t *testing.T) {
			if err := f(); !errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("err = %v, want storage.ErrUnavailable", err)
			}
		})
	}
}

// TestTimeout: every query runs under Config.Timeout.
func TestTimeout(t *testing.T) {
	b := setup(t)
	s := metrics.New(b.store, b.store, metrics.Config{Timeout: time.Nanosecond})
	ctx := context.Background()
	checks := map[string]func() error{
		"series":       func() error { _, _, err := s.Series(ctx, sel(0, "up")); return err },
		"label names":  func() error { _, _, err := s.LabelNames(ctx, sel(0, "up")); return err },
		"label values": func() error { _, _, err := s.LabelValues(ctx, "job", metrics.Selection{}); return err },
		"metadata":     func() error { _, err := s.Metadata(ctx, metrics.MetadataQuery{}); return err },
	}
	for name, f := range checks {
		t.Run(name, func(t *testing.T) {
			if err := f(); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", err)
			}
		})
	}
}
