package registryapi

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-obs/vigil/registry"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/web/api"
)

// Source is what the handlers read; *registry.Registry implements it.
// Its methods must be safe for concurrent use. The returned state may be
// shared: the API does not modify it.
type Source interface {
	// State returns the whole registry at one index.
	State(ctx context.Context) (*registry.State, error)
	// History returns the last limit status transitions of a check,
	// newest first, and none for an unknown check.
	History(ctx context.Context, checkID string, limit int) ([]registry.Transition, error)
}

// nodeSource is a Source that also reports the node every service is
// registered on (*registry.Registry does); without it the answer has no
// node.
type nodeSource interface {
	Config() registry.Config
}

// Routes served by Register.
const (
	PathRegistry = "/api/vigil/registry"
	PathHistory  = "/api/vigil/registry/checks/{id}/history"
)

// Parameters, and the bounds of limit.
const (
	paramID     = "id"
	paramLimit  = "limit"
	paramPretty = api.ParamPrettyPrint

	// DefaultHistoryLimit is the number of transitions answered without
	// a limit; MaxHistoryLimit the largest limit accepted.
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 1000
)

// API serves a Source over HTTP. It implements web.Mounter. Safe for
// concurrent use; it keeps no state between requests.
type API struct {
	src  Source // nil: the registry is off
	resp *api.Responder
}

// New returns the API over src. A nil src, or a nil *registry.Registry,
// means the registry is off: the routes answer 200 with "enabled":
// false. A nil logger discards logs.
func New(src Source, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// cmd/vigil holds a *registry.Registry that is nil when the registry
	// is off; in an interface it would not compare equal to nil.
	if r, ok := src.(*registry.Registry); ok && r == nil {
		src = nil
	}
	return &API{src: src, resp: api.NewResponder(logger.With("component", "registry_api"), "registry api")}
}

// Register adds the routes to mux, GET only:
//
//	GET /api/vigil/registry
//	GET /api/vigil/registry/checks/{id}/history?limit=
//
// Like http.ServeMux.HandleFunc it panics if a route is already
// registered.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathRegistry, a.state)
	mux.HandleFunc("GET "+PathHistory, a.history)
}

// envelope is the answer of every route: data, or errors.
type envelope struct {
	Data   any                 `json:"data"`
	Errors []api.EnvelopeError `json:"errors"`
}

// fail answers err in the error envelope, mapped by api.ErrorStatus.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := api.ErrorStatus(err, "check")
	a.resp.LogFailure(r, status, err)
	a.resp.WriteJSON(w, r, status, envelope{Errors: []api.EnvelopeError{{Code: status, Msg: msg}}})
}

// The JSON of PathRegistry.
type (
	stateJSON struct {
		Enabled  bool          `json:"enabled"`
		Index    int64         `json:"index"`
		Node     *nodeJSON     `json:"node"`
		Services []serviceJSON `json:"services"`
	}
	// nodeJSON is the node every service is on; Consul clients, and
	// Prometheus's consul_sd_configs, use its address for an instance
	// registered without one.
	nodeJSON struct {
		Name       string `json:"name"`
		Address    string `json:"address"`
		Datacenter string `json:"datacenter"`
	}
	// serviceJSON is the instances registered under one name; Status is
	// the worst of theirs.
	serviceJSON struct {
		Name      string         `json:"name"`
		Status    string         `json:"status"`
		Instances []instanceJSON `json:"instances"`
	}
	// instanceJSON is one registered service instance; Status is the
	// worst of its checks' (passing without checks).
	instanceJSON struct {
		ID      string            `json:"id"`
		Name    string            `json:"name"`
		Address string            `json:"address"`
		Port    int               `json:"port"`
		Tags    []string          `json:"tags"`
		Meta    map[string]string `json:"meta"`
		Status  string            `json:"status"`
		Checks  []checkJSON       `json:"checks"`
	}
	// checkJSON is one check. Times are null when they have not
	// happened; durations are Prometheus's ("10s", "1m"), empty when they
	// do not apply.
	checkJSON struct {
		ID          string     `json:"id"`
		Name        string     `json:"name"`
		Type        string     `json:"type"`
		Status      string     `json:"status"`
		Output      string     `json:"output"`
		Notes       string     `json:"notes"`
		Target      string     `json:"target"`
		LastCheck   *time.Time `json:"lastCheck"`
		StatusSince *time.Time `json:"statusSince"`
		Interval    string     `json:"interval"`
		Timeout     string     `json:"timeout"`
		TTL         string     `json:"ttl"`
	}
)

// The JSON of PathHistory.
type (
	historyJSON struct {
		Enabled     bool             `json:"enabled"`
		CheckID     string           `json:"checkID"`
		Transitions []transitionJSON `json:"transitions"`
	}
	transitionJSON struct {
		ServiceID string    `json:"serviceID"`
		Status    string    `json:"status"`
		Output    string    `json:"output"`
		At        time.Time `json:"at"`
	}
)

// state serves GET /api/vigil/registry.
func (a *API) state(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery, paramPretty); err != nil {
		a.fail(w, r, err)
		return
	}
	if a.src == nil {
		a.resp.WriteJSON(w, r, http.StatusOK, envelope{Data: stateJSON{Services: []serviceJSON{}}})
		return
	}
	st, err := a.src.State(r.Context())
	if err != nil {
		a.fail(w, r, fmt.Errorf("read registry state: %w", err))
		return
	}
	out := toStateJSON(st)
	if ns, ok := a.src.(nodeSource); ok {
		cfg := ns.Config()
		out.Node = &nodeJSON{Name: cfg.NodeName, Address: cfg.NodeAddress, Datacenter: cfg.Datacenter}
	}
	a.resp.WriteJSON(w, r, http.StatusOK, envelope{Data: out})
}

// toStateJSON groups the instances of st by service name and the checks
// by instance, keeping the store's order (names, then IDs).
func toStateJSON(st *registry.State) stateJSON {
	checks := make(map[string][]checkJSON, len(st.Services))
	for _, c := range st.Checks {
		checks[c.ServiceID] = append(checks[c.ServiceID], toCheckJSON(c))
	}
	out := stateJSON{Enabled: true, Index: st.Index, Services: []serviceJSON{}}
	for _, s := range st.Services {
		inst := instanceJSON{ID: s.ID, Name: s.Name, Address: s.Address, Port: s.Port,
			Tags: s.Tags, Meta: s.Meta, Status: registry.StatusPassing, Checks: checks[s.ID]}
		if inst.Tags == nil {
			inst.Tags = []string{}
		}
		if inst.Meta == nil {
			inst.Meta = map[string]string{}
		}
		if inst.Checks == nil {
			inst.Checks = []checkJSON{}
		}
		for _, c := range inst.Checks {
			inst.Status = worse(inst.Status, c.Status)
		}
		n := len(out.Services)
		if n == 0 || out.Services[n-1].Name != s.Name {
			out.Services = append(out.Services, serviceJSON{Name: s.Name, Status: registry.StatusPassing})
			n++
		}
		svc := &out.Services[n-1]
		svc.Instances = append(svc.Instances, inst)
		svc.Status = worse(svc.Status, inst.Status)
	}
	return out
}

// statusRank orders statuses from best to worst as Consul aggregates
// them: maintenance outranks critical. An unknown status counts as
// critical.
func statusRank(s string) int {
	switch s {
	case registry.StatusPassing:
		return 0
	case registry.StatusWarning:
		return 1
	case registry.StatusMaintenance:
		return 3
	}
	return 2
}

// worse returns the worse of two statuses.
func worse(a, b string) string {
	if statusRank(b) > statusRank(a) {
		return b
	}
	return a
}

func toCheckJSON(c registry.Check) checkJSON {
	d := c.Definition
	out := checkJSON{ID: c.ID, Name: c.Name, Type: c.Kind, Status: checkStatus(c.ID, c.Status), Output: c.Output,
		Notes: c.Notes, LastCheck: timeOrNull(c.LastRun), StatusSince: timeOrNull(c.StatusSince),
		Interval: duration(d.Interval), Timeout: duration(d.Timeout), TTL: duration(d.TTL)}
	switch {
	case d.HTTP != "":
		out.Target = redactURL(d.HTTP)
	case d.TCP != "":
		out.Target = d.TCP
	case d.GRPC != "":
		out.Target = d.GRPC
	}
	return out
}

// checkStatus is the status shown for a check: "maintenance" for a
// service's maintenance check (stored as critical, as Consul does), as
// the registry's health series report it.
func checkStatus(id, status string) string {
	if strings.HasPrefix(id, registry.MaintenancePrefix) {
		return registry.StatusMaintenance
	}
	return status
}

// redactURL hides the password of a check URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	return u.Redacted()
}

func timeOrNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func duration(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return model.Duration(d).String()
}

// history serves GET /api/vigil/registry/checks/{id}/history: 404 for a
// check that is neither registered nor in the history.
func (a *API) history(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.RawQuery, paramLimit, paramPretty)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	id, err := api.PathValue(r, paramID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	limit := DefaultHistoryLimit
	if s := q.Get(paramLimit); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxHistoryLimit {
			a.fail(w, r, api.ParamError(paramLimit, fmt.Sprintf("must be an integer from 1 to %d", MaxHistoryLimit), nil))
			return
		}
		limit = n
	}
	out := historyJSON{CheckID: id, Transitions: []transitionJSON{}}
	if a.src == nil {
		a.resp.WriteJSON(w, r, http.StatusOK, envelope{Data: out})
		return
	}
	ctx := r.Context()
	ts, err := a.src.History(ctx, id, limit)
	if err != nil {
		a.fail(w, r, fmt.Errorf("read check history: %w", err))
		return
	}
	if len(ts) == 0 {
		st, err := a.src.State(ctx)
		if err != nil {
			a.fail(w, r, fmt.Errorf("read registry state: %w", err))
			return
		}
		if !hasCheck(st, id) {
			a.fail(w, r, storage.ErrNotFound)
			return
		}
	}
	out.Enabled = true
	for _, t := range ts {
		out.Transitions = append(out.Transitions, transitionJSON{ServiceID: t.ServiceID,
			Status: checkStatus(t.CheckID, t.Status), Output: t.Output, At: t.At.UTC()})
	}
	a.resp.WriteJSON(w, r, http.StatusOK, envelope{Data: out})
}

func hasCheck(st *registry.State, id string) bool {
	for _, c := range st.Checks {
		if c.ID == id {
			return true
		}
	}
	return false
}

// parseQuery parses a raw query string strictly (api.ParseQuery) and
// refuses parameters that are not in known, and repeated ones, naming
// the first in name order.
func parseQuery(raw string, known ...string) (url.Values, error) {
	q, err := api.ParseQuery(raw)
	if err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		vals := q[name]
		ok := false
		for _, k := range known {
			ok = ok || name == k
		}
		if !ok {
			return nil, api.ParamError(api.DisplayParam(name), "is unknown", nil)
		}
		if len(vals) > 1 {
			return nil, api.ParamError(api.DisplayParam(name), "must be given once", nil)
		}
	}
	return q, nil
}
