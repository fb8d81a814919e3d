package scrapeapi

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/scrape"

	"github.com/vigil-obs/vigil/web/api"
)

// Source is what the handlers read; *ingest/scrape.Manager implements
// it. Its methods must be safe for concurrent use; the maps they return
// are the handler's to keep, the targets are live.
type Source interface {
	// TargetsActive returns the targets being scraped, by job.
	TargetsActive() map[string][]*scrape.Target
	// TargetsDropped returns the targets relabelling dropped, by job.
	TargetsDropped() map[string][]*scrape.Target
	// TargetsDroppedCounts returns how many targets relabelling
	// dropped, by job.
	TargetsDroppedCounts() map[string]int
	// Leader reports whether this replica scrapes; one that does not
	// has no targets.
	Leader() bool
}

// Routes served by Register.
const (
	PathTargets  = "/api/v1/targets"
	PathMetadata = "/api/v1/targets/metadata"
)

// HeaderLeader is set on every answer to "true" when this replica
// scrapes the targets and "false" when another one does (its lists are
// then empty).
const HeaderLeader = "X-Vigil-Scrape-Leader"

// Options are the API's settings and dependencies.
type Options struct {
	// Logger receives failures; nil discards.
	Logger *slog.Logger
	// ExternalURL is the URL Vigil is reached at; with ListenAddress it
	// turns the URLs of targets on localhost into globalUrl, as
	// Prometheus does. Nil: globalUrl is the scrape URL.
	ExternalURL *url.URL
	// ListenAddress is Vigil's HTTP address (host:port): a target on
	// localhost at its port is Vigil itself.
	ListenAddress string
}

// API serves a Source over HTTP. It implements web.Mounter. Safe for
// concurrent use.
type API struct {
	src    Source
	opts   Options
	logger *slog.Logger
	parser parser.Parser
}

// New returns the API over src.
func New(src Source, opts Options) *API {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{src: src, opts: opts, logger: logger.With("component", "scrape_api"), parser: parser.NewParser(parser.Options{})}
}

// Register serves PathTargets and PathMetadata on mux as Prometheus's
// HTTP API does (same parameters, same JSON), GET only.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathTargets, a.targets)
	mux.HandleFunc("GET "+PathMetadata, a.metadata)
}

// response is Prometheus's envelope.
type response struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

// The JSON of Prometheus's web/api/v1 (TargetDiscovery and
// metricMetadata).
type (
	targetDiscovery struct {
		ActiveTargets       []*activeTarget  `json:"activeTargets"`
		DroppedTargets      []*droppedTarget `json:"droppedTargets"`
		DroppedTargetCounts map[string]int   `json:"droppedTargetCounts"`
	}
	activeTarget struct {
		DiscoveredLabels   labels.Labels       `json:"discoveredLabels"`
		Labels             labels.Labels       `json:"labels"`
		ScrapePool         string              `json:"scrapePool"`
		ScrapeURL          string              `json:"scrapeUrl"`
		GlobalURL          string              `json:"globalUrl"`
		LastError          string              `json:"lastError"`
		LastScrape         time.Time           `json:"lastScrape"`
		LastScrapeDuration float64             `json:"lastScrapeDuration"`
		Health             scrape.TargetHealth `json:"health"`
		ScrapeInterval     string              `json:"scrapeInterval"`
		ScrapeTimeout      string              `json:"scrapeTimeout"`
	}
	droppedTarget struct {
		DiscoveredLabels labels.Labels `json:"discoveredLabels"`
		ScrapePool       string        `json:"scrapePool"`
	}
	metricMetadata struct {
		Target       labels.Labels    `json:"target"`
		MetricFamily string           `json:"metric,omitempty"`
		Type         model.MetricType `json:"type"`
		Help         string           `json:"help"`
		Unit         string           `json:"unit"`
	}
)

// badData is a request Prometheus answers with bad_data (400); its text
// is shown.
type badData struct{ msg string }

func (e *badData) Error() string { return e.msg }

// parse reads the query (and form) and checks every parameter with
// api.CheckParams.
func parse(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return &badData{fmt.Sprintf("invalid form: %v", err)}
	}
	if b := api.CheckParams(r.Form, api.AnyParam); b != nil {
		return &badData{fmt.Sprintf("invalid parameter %q: %v", b.Param(), b.Reason())}
	}
	return nil
}

// targets serves GET /api/v1/targets: state (active, dropped, any; empty
// is any) and scrapePool narrow the answer, as in Prometheus.
func (a *API) targets(w http.ResponseWriter, r *http.Request) {
	if err := parse(r); err != nil {
		a.fail(w, r, err)
		return
	}
	pool := r.Form.Get("scrapePool")
	state := strings.ToLower(r.Form.Get("state"))
	showActive := state == "" || state == "any" || state == "active"
	showDropped := state == "" || state == "any" || state == "dropped"
	res := &targetDiscovery{ActiveTargets: []*activeTarget{}, DroppedTargets: []*droppedTarget{}}
	b := labels.NewBuilder(labels.EmptyLabels())
	if showActive {
		active := a.src.TargetsActive()
		for _, p := range sortedKeys(active) {
			if pool != "" && p != pool {
				continue
			}
			for _, t := range sortTargets(active[p]) {
				res.ActiveTargets = append(res.ActiveTargets, a.activeTarget(p, t, b))
			}
		}
	}
	if showDropped {
		res.DroppedTargetCounts = a.src.TargetsDroppedCounts()
		dropped := a.src.TargetsDropped()
		for _, p := range sortedKeys(dropped) {
			if pool != "" && p != pool {
				continue
			}
			for _, t := range sortTargets(dropped[p]) {
				res.DroppedTargets = append(res.DroppedTargets, &droppedTarget{DiscoveredLabels: t.DiscoveredLabels(b), ScrapePool: p})
			}
		}
	}
	a.ok(w, r, res)
}

func (a *API) activeTarget(pool string, t *scrape.Target, b *labels.Builder) *activeTarget {
	lastErr := ""
	if err := t.LastError(); err != nil {
		lastErr = err.Error()
	}
	scrapeURL := t.URL().String()
	global, err := a.globalURL(t.URL())
	if err != nil {
		// As Prometheus: the reason is appended to the target's error.
		if lastErr == "" {
			lastErr = err.Error()
		} else {
			lastErr = lastErr + ": " + err.Error()
		}
	}
	return &activeTarget{
		DiscoveredLabels:   t.DiscoveredLabels(b),
		Labels:             t.Labels(b),
		ScrapePool:         pool,
		ScrapeURL:          scrapeURL,
		GlobalURL:          global.String(),
		LastError:          lastErr,
		LastScrape:         t.LastScrape(),
		LastScrapeDuration: t.LastScrapeDuration().Seconds(),
		Health:             t.Health(),
		ScrapeInterval:     t.GetValue(model.ScrapeIntervalLabel),
		ScrapeTimeout:      t.GetValue(model.ScrapeTimeoutLabel),
	}
}

// localhost are the names of a target on Vigil's own host.
var localhost = []string{"127.0.0.1", "localhost", "::1"}

// globalURL returns the URL of a target as seen from outside, following
// Prometheus: a target on localhost is reached at the external URL's
// host, with Vigil's external scheme and port when it is Vigil itself.
// It may modify u.
func (a *API) globalURL(u *url.URL) (*url.URL, error) {
	ext := a.opts.ExternalURL
	if ext == nil {
		return u, nil
	}
	host, port, err := splitHostPort(u.Host)
	if err != nil {
		return u, err
	}
	if !slices.Contains(localhost, host) {
		return u, nil
	}
	_, ownPort, err := net.SplitHostPort(a.opts.ListenAddress)
	if err != nil {
		return u, err
	}
	if port == ownPort {
		u.Scheme = ext.Scheme
		u.Host = ext.Host
		return u, nil
	}
	extHost, _, err := splitHostPort(ext.Host)
	if err != nil {
		return u, err
	}
	u.Host = extHost
	if port != "" {
		u.Host = net.JoinHostPort(extHost, port)
	}
	return u, nil
}

// splitHostPort is net.SplitHostPort that accepts a host without a port.
func splitHostPort(s string) (string, string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil && strings.HasSuffix(err.Error(), "missing port in address") {
		var err2 error
		if host, _, err2 = net.SplitHostPort(s + ":80"); err2 == nil {
			return host, "", nil
		}
	}
	return host, port, err
}

// metadata serves GET /api/v1/targets/metadata: match_target (a series
// selector over the targets' labels), metric and limit, as in
// Prometheus. Jobs and targets come in a stable order (Prometheus's is
// random), each target's metadata sorted by metric family.
func (a *API) metadata(w http.ResponseWriter, r *http.Request) {
	if err := parse(r); err != nil {
		a.fail(w, r, err)
		return
	}
	limit := -1
	if s := r.Form.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			a.fail(w, r, &badData{"limit must be a number"})
			return
		}
		limit = n
	}
	var matchers []*labels.Matcher
	if s := r.Form.Get("match_target"); s != "" {
		ms, err := a.parser.ParseMetricSelector(s)
		if err != nil {
			a.fail(w, r, &badData{fmt.Sprintf("invalid parameter %q: %v", "match_target", err)})
			return
		}
		matchers = ms
	}
	metric := r.Form.Get("metric")
	b := labels.NewBuilder(labels.EmptyLabels())
	res := []metricMetadata{}
	active := a.src.TargetsActive()
	for _, p := range sortedKeys(active) {
		for _, t := range sortTargets(active[p]) {
			if limit >= 0 && len(res) >= limit {
				break
			}
			ls := t.Labels(b)
			if !matches(ls, matchers) {
				continue
			}
			if metric == "" {
				mds := t.ListMetadata()
				slices.SortFunc(mds, func(x, y scrape.MetricMetadata) int { return strings.Compare(x.MetricFamily, y.MetricFamily) })
				for _, md := range mds {
					res = append(res, metricMetadata{Target: ls, MetricFamily: md.MetricFamily, Type: md.Type, Help: md.Help, Unit: md.Unit})
				}
				continue
			}
			if md, ok := t.GetMetadata(metric); ok {
				res = append(res, metricMetadata{Target: ls, Type: md.Type, Help: md.Help, Unit: md.Unit})
			}
		}
	}
	a.ok(w, r, res)
}

func matches(ls labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sortTargets orders a job's targets by scrape URL, then labels.
func sortTargets(ts []*scrape.Target) []*scrape.Target {
	ts = slices.Clone(ts)
	b := labels.NewBuilder(labels.EmptyLabels())
	type keyed struct {
		t   *scrape.Target
		url string
		ls  labels.Labels
	}
	ks := make([]keyed, len(ts))
	for i, t := range ts {
		ks[i] = keyed{t, t.URL().String(), t.DiscoveredLabels(b)}
	}
	slices.SortFunc(ks, func(x, y keyed) int {
		return cmp.Or(strings.Compare(x.url, y.url), labels.Compare(x.ls, y.ls))
	})
	for i := range ks {
		ts[i] = ks[i].t
	}
	return ts
}

func (a *API) ok(w http.ResponseWriter, r *http.Request, data any) {
	a.write(w, r, http.StatusOK, response{Status: "success", Data: data})
}

// fail answers a bad request with bad_data and 400, anything else with
// a logged internal error.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var bd *badData
	if errors.As(err, &bd) {
		a.logger.DebugContext(r.Context(), "scrape api request rejected", "path", r.URL.Path, "err", err)
		a.write(w, r, http.StatusBadRequest, response{Status: "error", ErrorType: "bad_data", Error: bd.msg})
		return
	}
	a.logger.ErrorContext(r.Context(), "scrape api request failed", "path", r.URL.Path, "err", err)
	a.write(w, r, http.StatusInternalServerError, response{Status: "error", ErrorType: "internal", Error: "internal error"})
}

// write encodes body before writing anything, so that an encoding
// failure can still be answered with a 500.
func (a *API) write(w http.ResponseWriter, r *http.Request, status int, body response) {
	out, err := json.Marshal(body)
	if err != nil {
		a.logger.ErrorContext(r.Context(), "scrape api encode failed", "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
		out, _ = json.Marshal(response{Status: "error", ErrorType: "internal", Error: "internal error"})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(HeaderLeader, strconv.FormatBool(a.src.Leader()))
	w.WriteHeader(status)
	// A failed write means the client went away; there is nobody to tell.
	_, _ = w.Write(out)
}
