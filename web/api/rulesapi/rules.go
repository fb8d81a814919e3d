package rulesapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/vigil-obs/vigil/alerting/rules"
	"github.com/vigil-obs/vigil/storage"
)

// Source is what the handlers read; *rules.Manager implements it. Its
// methods must be safe for concurrent use and return values the handler
// may keep.
type Source interface {
	// RuleGroups returns the rule groups, sorted by file and name.
	RuleGroups(ctx context.Context) ([]rules.Group, error)
	// ActiveAlerts returns the pending and firing alerts.
	ActiveAlerts(ctx context.Context) ([]rules.Alert, error)
	// Status returns the outcome of the last reload.
	Status() rules.Status
}

// Routes served by Register.
const (
	PathRules  = "/api/v1/rules"
	PathAlerts = "/api/v1/alerts"
	PathStatus = "/api/vigil/rules/status"
)

// API serves a Source over HTTP. It implements web.Mounter. Safe for
// concurrent use.
type API struct {
	src    Source
	logger *slog.Logger
	parser parser.Parser
}

// New returns the API over src. A nil logger discards.
func New(src Source, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{src: src, logger: logger.With("component", "rules_api"), parser: parser.NewParser(parser.Options{})}
}

// Register serves the API on mux: PathRules and PathAlerts as
// Prometheus's HTTP API (same parameters, same JSON), and PathStatus for
// Vigil's UI, all GET only.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathRules, a.rules)
	mux.HandleFunc("GET "+PathAlerts, a.alerts)
	mux.HandleFunc("GET "+PathStatus, a.status)
}

// Prometheus's error types.
const (
	errBadData     = "bad_data"
	errInternal    = "internal"
	errUnavailable = "unavailable"
	errCanceled    = "canceled"
	errTimeout     = "timeout"
)

// response is Prometheus's envelope.
type response struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

// paramError is a bad request parameter; its text is shown.
type paramError struct {
	param string
	err   error
}

func (e *paramError) Error() string {
	return fmt.Sprintf("invalid parameter %q: %v", e.param, e.err)
}

// maxParamBytes bounds one parameter value.
const maxParamBytes = 4096

// param returns the values of one form parameter, refusing NUL bytes,
// invalid UTF-8 and over-long values.
func param(r *http.Request, name string) ([]string, error) {
	vs := r.Form[name]
	for _, v := range vs {
		switch {
		case len(v) > maxParamBytes:
			return nil, &paramError{name, fmt.Errorf("longer than %d bytes", maxParamBytes)}
		case !utf8.ValidString(v):
			return nil, &paramError{name, errors.New("not valid UTF-8")}
		case strings.IndexByte(v, 0) >= 0:
			return nil, &paramError{name, errors.New("contains a NUL byte")}
		}
	}
	return vs, nil
}

func (h *API) ok(w http.ResponseWriter, r *http.Request, data any) {
	h.write(w, r, http.StatusOK, response{Status: "success", Data: data})
}

// fail maps err to Prometheus's error type and status: parameter errors
// keep their text (400); the store's failures get a fixed message.
func (h *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var pe *paramError
	typ, status, msg := errInternal, http.StatusInternalServerError, "internal error"
	switch {
	case errors.As(err, &pe):
		typ, status, msg = errBadData, http.StatusBadRequest, pe.Error()
	case errors.Is(err, context.DeadlineExceeded):
		typ, status, msg = errTimeout, http.StatusServiceUnavailable, "query timed out"
	case errors.Is(err, context.Canceled):
		typ, status, msg = errCanceled, 499, "request canceled"
	case errors.Is(err, storage.ErrUnavailable):
		typ, status, msg = errUnavailable, http.StatusServiceUnavailable, "storage unavailable, retry later"
	}
	ctx := r.Context()
	if status >= 500 {
		h.logger.ErrorContext(ctx, "rules api request failed", "path", r.URL.Path, "status", status, "err", err)
	} else {
		h.logger.DebugContext(ctx, "rules api request rejected", "path", r.URL.Path, "status", status, "err", err)
	}
	h.write(w, r, status, response{Status: "error", ErrorType: typ, Error: msg})
}

// write encodes body before writing anything, so that an encoding
// failure can still be answered with a 500.
func (h *API) write(w http.ResponseWriter, r *http.Request, status int, body response) {
	out, err := json.Marshal(body)
	if err != nil {
		h.logger.ErrorContext(r.Context(), "rules api encode failed", "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
		out, _ = json.Marshal(response{Status: "error", ErrorType: errInternal, Error: "internal error"})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// A failed write means the client went away; there is nobody to tell.
	_, _ = w.Write(out)
}

// The JSON of Prometheus's web/api/v1 (RuleDiscovery and its parts).
type (
	ruleDiscovery struct {
		RuleGroups     []*ruleGroup `json:"groups"`
		GroupNextToken string       `json:"groupNextToken,omitempty"`
	}
	ruleGroup struct {
		Name           string    `json:"name"`
		File           string    `json:"file"`
		Rules          []any     `json:"rules"`
		Interval       float64   `json:"interval"`
		Limit          int       `json:"limit"`
		EvaluationTime float64   `json:"evaluationTime"`
		LastEvaluation time.Time `json:"lastEvaluation"`
	}
	alertingRule struct {
		State          string        `json:"state"`
		Name           string        `json:"name"`
		Query          string        `json:"query"`
		Duration       float64       `json:"duration"`
		KeepFiringFor  float64       `json:"keepFiringFor"`
		Labels         labels.Labels `json:"labels"`
		Annotations    labels.Labels `json:"annotations"`
		Alerts         []*alert      `json:"alerts"`
		Health         string        `json:"health"`
		LastError      string        `json:"lastError,omitempty"`
		EvaluationTime float64       `json:"evaluationTime"`
		LastEvaluation time.Time     `json:"lastEvaluation"`
		Type           string        `json:"type"`
	}
	recordingRule struct {
		Name           string        `json:"name"`
		Query          string        `json:"query"`
		Labels         labels.Labels `json:"labels"`
		Health         string        `json:"health"`
		LastError      string        `json:"lastError,omitempty"`
		EvaluationTime float64       `json:"evaluationTime"`
		LastEvaluation time.Time     `json:"lastEvaluation"`
		Type           string        `json:"type"`
	}
	alertDiscovery struct {
		Alerts []*alert `json:"alerts"`
	}
	alert struct {
		Labels          labels.Labels `json:"labels"`
		Annotations     labels.Labels `json:"annotations"`
		State           string        `json:"state"`
		ActiveAt        *time.Time    `json:"activeAt,omitempty"`
		KeepFiringSince *time.Time    `json:"keepFiringSince,omitempty"`
		Value           string        `json:"value"`
	}
)

func toAlerts(in []rules.Alert) []*alert {
	out := make([]*alert, 0, len(in))
	for _, a := range in {
		x := &alert{
			Labels:      a.Labels,
			Annotations: a.Annotations,
			State:       a.State,
			Value:       strconv.FormatFloat(a.Value, 'e', -1, 64),
		}
		if !a.ActiveAt.IsZero() {
			at := a.ActiveAt
			x.ActiveAt = &at
		}
		if !a.KeepFiringSince.IsZero() {
			since := a.KeepFiringSince
			x.KeepFiringSince = &since
		}
		out = append(out, x)
	}
	return out
}

// alerts serves GET /api/v1/alerts.
func (h *API) alerts(w http.ResponseWriter, r *http.Request) {
	active, err := h.src.ActiveAlerts(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.ok(w, r, &alertDiscovery{Alerts: toAlerts(active)})
}

// rulesQuery is the parsed query of GET /api/v1/rules.
type rulesQuery struct {
	names, groups, files map[string]bool
	matchers             [][]*labels.Matcher
	alerting, recording  bool
	excludeAlerts        bool
	groupLimit           int
	nextToken            string
}

func (h *API) parseRulesQuery(r *http.Request) (rulesQuery, error) {
	q := rulesQuery{alerting: true, recording: true}
	if err := r.ParseForm(); err != nil {
		return q, &paramError{"form", err}
	}
	set := func(name string) (map[string]bool, error) {
		vs, err := param(r, name)
		if err != nil || len(vs) == 0 {
			return nil, err
		}
		m := make(map[string]bool, len(vs))
		for _, v := range vs {
			m[v] = true
		}
		return m, nil
	}
	var err error
	if q.names, err = set("rule_name[]"); err != nil {
		return q, err
	}
	if q.groups, err = set("rule_group[]"); err != nil {
		return q, err
	}
	if q.files, err = set("file[]"); err != nil {
		return q, err
	}
	matches, err := param(r, "match[]")
	if err != nil {
		return q, err
	}
	for _, s := range matches {
		ms, err := h.parser.ParseMetricSelector(s)
		if err != nil {
			return q, &paramError{"match[]", err}
		}
		q.matchers = append(q.matchers, ms)
	}
	one := func(name string) (string, error) {
		vs, err := param(r, name)
		if err != nil || len(vs) == 0 {
			return "", err
		}
		return vs[0], nil
	}
	typ, err := one("type")
	if err != nil {
		return q, err
	}
	switch strings.ToLower(typ) {
	case "":
	case "alert":
		q.recording = false
	case "record":
		q.alerting = false
	default:
		return q, &paramError{"type", fmt.Errorf("not supported value %q", typ)}
	}
	if s, err := one("exclude_alerts"); err != nil {
		return q, err
	} else if s != "" {
		if q.excludeAlerts, err = strconv.ParseBool(strings.ToLower(s)); err != nil {
			return q, &paramError{"exclude_alerts", err}
		}
	}
	limit, err := one("group_limit")
	if err != nil {
		return q, err
	}
	if q.nextToken, err = one("group_next_token"); err != nil {
		return q, err
	}
	if limit != "" {
		n, err := strconv.ParseInt(limit, 10, 32)
		if err != nil || n <= 0 {
			return q, &paramError{"group_limit", errors.New("must be a number greater than 0")}
		}
		q.groupLimit = int(n)
	} else if q.nextToken != "" {
		return q, &paramError{"group_next_token", errors.New("group_limit needs to be present in order to paginate over the groups")}
	}
	return q, nil
}

// matches reports whether a rule's labels match any of the matcher sets
// (all if there are none), as Prometheus's match[] for rules.
func (q rulesQuery) matches(ls labels.Labels) bool {
	if len(q.matchers) == 0 {
		return true
	}
	for _, set := range q.matchers {
		ok := true
		for _, m := range set {
			if !m.Matches(ls.Get(m.Name)) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// groupToken is the pagination token of a group, as Prometheus's.
func groupToken(file, group string) string {
	sum := sha256.Sum256([]byte(file + ";" + group))
	return hex.EncodeToString(sum[:])
}

// rules serves GET /api/v1/rules.
func (h *API) rules(w http.ResponseWriter, r *http.Request) {
	q, err := h.parseRulesQuery(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	groups, err := h.src.RuleGroups(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	res := &ruleDiscovery{RuleGroups: []*ruleGroup{}}
	foundToken := q.nextToken == ""
	for _, g := range groups {
		if !foundToken {
			if groupToken(g.File, g.Name) != q.nextToken {
				continue
			}
			foundToken = true
		}
		if q.groups != nil && !q.groups[g.Name] || q.files != nil && !q.files[g.File] {
			continue
		}
		rg := &ruleGroup{
			Name:           g.Name,
			File:           g.File,
			Rules:          []any{},
			Interval:       g.Interval.Seconds(),
			Limit:          g.Limit,
			EvaluationTime: g.EvaluationTime.Seconds(),
			LastEvaluation: g.LastEvaluation,
		}
		for _, rule := range g.Rules {
			if q.names != nil && !q.names[rule.Name] || !q.matches(rule.Labels) {
				continue
			}
			switch rule.Type {
			case rules.TypeAlerting:
				if !q.alerting {
					continue
				}
				var alerts []*alert
				if !q.excludeAlerts {
					alerts = toAlerts(rule.Alerts)
				}
				rg.Rules = append(rg.Rules, alertingRule{
					State:          rule.State,
					Name:           rule.Name,
					Query:          rule.Query,
					Duration:       rule.Duration.Seconds(),
					KeepFiringFor:  rule.KeepFiringFor.Seconds(),
					Labels:         rule.Labels,
					Annotations:    rule.Annotations,
					Alerts:         alerts,
					Health:         rule.Health,
					LastError:      rule.LastError,
					EvaluationTime: rule.EvaluationTime.Seconds(),
					LastEvaluation: rule.LastEvaluation,
					Type:           rules.TypeAlerting,
				})
			default:
				if !q.recording {
					continue
				}
				rg.Rules = append(rg.Rules, recordingRule{
					Name:           rule.Name,
					Query:          rule.Query,
					Labels:         rule.Labels,
					Health:         rule.Health,
					LastError:      rule.LastError,
					EvaluationTime: rule.EvaluationTime.Seconds(),
					LastEvaluation: rule.LastEvaluation,
					Type:           rules.TypeRecording,
				})
			}
		}
		// A group whose rules were all filtered out is left out, as in
		// Prometheus.
		if len(rg.Rules) == 0 {
			continue
		}
		if q.groupLimit > 0 && len(res.RuleGroups) == q.groupLimit {
			res.GroupNextToken = groupToken(g.File, g.Name)
			break
		}
		res.RuleGroups = append(res.RuleGroups, rg)
	}
	if !foundToken {
		h.fail(w, r, &paramError{"group_next_token", fmt.Errorf("invalid group_next_token %q, were rule groups changed?", q.nextToken)})
		return
	}
	h.ok(w, r, res)
}

// statusData is the JSON of PathStatus.
type statusData struct {
	LastReload time.Time `json:"lastReload"`
	Success    bool      `json:"success"`
	Error      string    `json:"error,omitempty"`
	Files      []string  `json:"files"`
	Leader     bool      `json:"leader"`
}

// status serves GET /api/vigil/rules/status.
func (h *API) status(w http.ResponseWriter, r *http.Request) {
	s := h.src.Status()
	files := slices.Clone(s.Files)
	if files == nil {
		files = []string{}
	}
	h.ok(w, r, statusData{LastReload: s.LastReload, Success: s.Success, Error: s.Error, Files: files, Leader: s.Leader})
}
