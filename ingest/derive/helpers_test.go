package derive_test

import (
	"context"
	"errors"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/derive"
)

// capture is an AppendableV2 keeping what was committed.
type capture struct {
	mu        sync.Mutex
	fail      bool // Commit fails
	refuse    int  // so many Commits fail with ingest.ErrQueueFull
	samples   []captured
	meta      map[string]metadata.Metadata
	commits   int
	rollbacks int
}

type captured struct {
	ls labels.Labels
	t  int64
	v  float64
}

func (c *capture) AppenderV2(context.Context) promstorage.AppenderV2 { return &captureApp{c: c} }

type captureApp struct {
	c   *capture
	buf []captured
	md  map[string]metadata.Metadata
}

func (a *captureApp) Append(_ promstorage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	if h != nil || fh != nil {
		return 0, errors.New("native histogram")
	}
	a.buf = append(a.buf, captured{ls, t, v})
	if opts.Metadata.Type != "" {
		if a.md == nil {
			a.md = map[string]metadata.Metadata{}
		}
		a.md[opts.MetricFamilyName] = opts.Metadata
	}
	return 0, nil
}

func (a *captureApp) Commit() error {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	if a.c.fail {
		return errors.New("database down")
	}
	if a.c.refuse > 0 {
		a.c.refuse--
		return ingest.ErrQueueFull
	}
	a.c.commits++
	a.c.samples = append(a.c.samples, a.buf...)
	if a.c.meta == nil {
		a.c.meta = map[string]metadata.Metadata{}
	}
	for k, v := range a.md {
		a.c.meta[k] = v
	}
	return nil
}

func (a *captureApp) Rollback() error {
	a.c.mu.Lock()
	a.c.rollbacks++
	a.c.mu.Unlock()
	return nil
}

// matches reports whether ls has __name__ name and every label of want
// ("" = the label is absent).
func matches(ls labels.Labels, name string, want map[string]string) bool {
	if ls.Get("__name__") != name {
		return false
	}
	for k, v := range want {
		if ls.Get(k) != v {
			return false
		}
	}
	return true
}

// series returns the samples of each series matching, by label string,
// in time order.
func (c *capture) series(name string, want map[string]string) map[string][]captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]captured{}
	for _, s := range c.samples {
		if matches(s.ls, name, want) {
			out[s.ls.String()] = append(out[s.ls.String()], s)
		}
	}
	for _, ss := range out {
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].t < ss[j].t })
	}
	return out
}

// last sums the latest non-stale values of the series matching.
func (c *capture) last(name string, want map[string]string) float64 {
	var sum float64
	for _, ss := range c.series(name, want) {
		v := ss[len(ss)-1].v
		if !value.IsStaleNaN(v) {
			sum += v
		}
	}
	return sum
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

type bundle struct {
	d     *derive.Deriver
	app   *capture
	clock *clock
}

// setup returns a Deriver over a capturing appendable and a clock at t0.
func setup(t *testing.T, edit func(*derive.Config)) bundle {
	t.Helper()
	cfg := derive.DefaultConfig()
	cfg.Replica = "r1"
	if edit != nil {
		edit(&cfg)
	}
	b := bundle{app: &capture{}, clock: &clock{t: t0}}
	d, err := derive.New(cfg, derive.Options{Appendable: b.app, Now: b.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	b.d = d
	return b
}

func (b bundle) flush(t *testing.T) {
	t.Helper()
	if err := b.d.Flush(context.Background()); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// span describes a test span.
type span struct {
	service string            // "" = no service.name
	res     map[string]string // more resource attributes
	name    string
	kind    ptrace.SpanKind
	trace   byte // trace id: 16 times this byte (0 = empty)
	id      byte // span id: 8 times this byte
	parent  byte
	err     bool
	dur     time.Duration
	attrs   map[string]string
}

func ids(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// traces builds one ptrace.Traces with a resource per span.
func traces(spans ...span) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, s := range spans {
		rs := td.ResourceSpans().AppendEmpty()
		if s.service != "" {
			rs.Resource().Attributes().PutStr("service.name", s.service)
		}
		for k, v := range s.res {
			rs.Resource().Attributes().PutStr(k, v)
		}
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetName(s.name)
		sp.SetKind(s.kind)
		if s.trace != 0 {
			sp.SetTraceID(pcommon.TraceID(ids(s.trace, 16)))
		}
		if s.id != 0 {
			sp.SetSpanID(pcommon.SpanID(ids(s.id, 8)))
		}
		if s.parent != 0 {
			sp.SetParentSpanID(pcommon.SpanID(ids(s.parent, 8)))
		}
		if s.err {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
		start := t0.Add(-time.Second)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(s.dur)))
		for k, v := range s.attrs {
			sp.Attributes().PutStr(k, v)
		}
	}
	return td
}

func (b bundle) commit(spans ...span) { b.d.Committed([]ptrace.Traces{traces(spans...)}) }

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

func labelsOf(ss map[string][]captured) string {
	keys := make([]string, 0, len(ss))
	for k := range ss {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, "\n")
}
