package metrics

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
)

// The widest times a selection covers, as Prometheus's API
// (web/api/v1.MinTime and MaxTime): a selection without a start or an end
// reaches them.
var (
	MinTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	MaxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()
)

// DefaultTimeout bounds each query when Config.Timeout is zero: the
// PromQL engine's default, so that every route of the Prometheus API has
// the same bound.
const DefaultTimeout = 2 * time.Minute

// TruncatedWarning is the warning of a result cut to its selection's
// limit, as Prometheus words it.
const TruncatedWarning = "results truncated due to limit"

// MetadataReader reads metric metadata (type, help, unit) by family.
// Implementations must be safe for concurrent use; the returned map is
// owned by the caller.
type MetadataReader interface {
	// Metadata returns the metadata of family metric alone when metric is
	// not empty, else of at most limit families (0 = all).
	Metadata(ctx context.Context, metric string, limit int) (map[string]metadata.Metadata, error)
}

// Config bounds metadata queries. Its zero value takes the defaults.
type Config struct {
	// Timeout bounds each query (default DefaultTimeout).
	Timeout time.Duration
}

// Service answers series, label and metadata queries. Safe for concurrent
// use. Its errors are the store's, wrapped with the operation; they wrap
// storage.ErrUnavailable or a context error where those apply.
type Service struct {
	q   promstorage.Queryable
	md  MetadataReader
	cfg Config
}

// New returns a Service over q, which must not be nil, and md, which may
// be nil: then every metadata query answers no family.
func New(q promstorage.Queryable, md MetadataReader, cfg Config) *Service {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Service{q: q, md: md, cfg: cfg}
}

// Selection picks the series that Series, LabelNames and LabelValues look
// at.
type Selection struct {
	// Matchers are the selectors (the API's match[]): a series is
	// selected when it matches every matcher of one of them. No selector
	// selects every series for LabelNames and LabelValues, and none for
	// Series.
	Matchers [][]*labels.Matcher
	// Start and End bound the time of the selected series' samples,
	// inclusive; zero means MinTime and MaxTime.
	Start, End time.Time
	// Limit is the most results returned (0 = all); a result cut to it
	// carries TruncatedWarning.
	Limit int
}

// bounds returns the selection's time range in milliseconds.
func (sel Selection) bounds() (mint, maxt int64) {
	start, end := sel.Start, sel.End
	if start.IsZero() {
		start = MinTime
	}
	if end.IsZero() {
		end = MaxTime
	}
	return start.UnixMilli(), end.UnixMilli()
}

// Series returns the label sets of the series sel selects, each once,
// sorted (labels.Compare), never nil, and the store's warnings.
func (s *Service) Series(ctx context.Context, sel Selection) ([]labels.Labels, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	mint, maxt := sel.bounds()
	q, err := s.q.Querier(mint, maxt)
	if err != nil {
		return nil, nil, fmt.Errorf("series: %w", err)
	}
	defer q.Close()
	hints := &promstorage.SelectHints{Start: mint, End: maxt, Func: "series", Limit: sel.Limit}
	out := []labels.Labels{}
	seen := map[uint64]bool{}
	var warnings []string
	for _, ms := range sel.Matchers {
		set := q.Select(ctx, true, hints, ms...)
		for set.Next() {
			ls := set.At().Labels()
			if h := ls.Hash(); !seen[h] {
				seen[h] = true
				out = append(out, ls)
			}
		}
		if err := set.Err(); err != nil {
			return nil, nil, fmt.Errorf("series: %w", err)
		}
		w, _ := set.Warnings().AsStrings("", 10, 0)
		warnings = append(warnings, w...)
	}
	slices.SortFunc(out, labels.Compare)
	out, warnings = truncate(out, sel.Limit, warnings)
	return out, warnings, nil
}

// LabelNames returns the label names of the series sel selects, each
// once, sorted, never nil, and the store's warnings.
func (s *Service) LabelNames(ctx context.Context, sel Selection) ([]string, []string, error) {
	out, warnings, err := s.labels(ctx, sel, func(ctx context.Context, q promstorage.Querier, ms []*labels.Matcher) ([]string, []string, error) {
		vals, ws, err := q.LabelNames(ctx, nil, ms...)
		w, _ := ws.AsStrings("", 10, 0)
		return vals, w, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("label names: %w", err)
	}
	return out, warnings, nil
}

// LabelValues returns the values of label name on the series sel
// selects, each once, sorted, never nil, and the store's warnings.
func (s *Service) LabelValues(ctx context.Context, name string, sel Selection) ([]string, []string, error) {
	out, warnings, err := s.labels(ctx, sel, func(ctx context.Context, q promstorage.Querier, ms []*labels.Matcher) ([]string, []string, error) {
		vals, ws, err := q.LabelValues(ctx, name, nil, ms...)
		w, _ := ws.AsStrings("", 10, 0)
		return vals, w, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("values of label %q: %w", name, err)
	}
	return out, warnings, nil
}

// labels merges what read returns for each selector of sel (or once for
// every series when sel has none).
func (s *Service) labels(ctx context.Context, sel Selection,
	read func(context.Context, promstorage.Querier, []*labels.Matcher) ([]string, []string, error),
) ([]string, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	q, err := s.q.Querier(sel.bounds())
	if err != nil {
		return nil, nil, err
	}
	defer q.Close()
	sets := sel.Matchers
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	out := []string{}
	var warnings []string
	for _, ms := range sets {
		vals, w, err := read(ctx, q, ms)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, vals...)
		warnings = append(warnings, w...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	out, warnings = truncate(out, sel.Limit, warnings)
	return out, warnings, nil
}

// truncate cuts out to limit (0 = no limit), adding TruncatedWarning when
// it does.
func truncate[T any](out []T, limit int, warnings []string) ([]T, []string) {
	if limit > 0 && len(out) > limit {
		return out[:limit], append(warnings, TruncatedWarning)
	}
	return out, warnings
}

// MetadataQuery selects metric metadata, as /api/v1/metadata.
type MetadataQuery struct {
	// Metric names one family; empty means every family.
	Metric string
	// Limit is the most families returned (0 = all).
	Limit int
	// LimitPerMetric is the most entries per family (0 = all). Vigil
	// keeps one entry per family (the last written), so it never cuts.
	LimitPerMetric int
}

// Metadata returns the metadata q selects by family, each family with one
// entry whose type is "unknown" when the store has none, as Prometheus
// answers; never nil.
func (s *Service) Metadata(ctx context.Context, q MetadataQuery) (map[string][]metadata.Metadata, error) {
	out := map[string][]metadata.Metadata{}
	if s.md == nil {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	md, err := s.md.Metadata(ctx, q.Metric, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	for fam, m := range md {
		if m.Type == "" {
			m.Type = model.MetricTypeUnknown
		}
		out[fam] = []metadata.Metadata{m}
	}
	return out, nil
}
