package consulapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-obs/vigil/registry"
	"github.com/vigil-obs/vigil/storage"
)

// Blocking query waits, as Consul's.
const (
	defaultWait = 5 * time.Minute
	// MaxWait is the longest a blocking query waits: a server's
	// WriteTimeout must exceed it.
	MaxWait = 10 * time.Minute
)

// Options configure a Handler.
type Options struct {
	// Tokens, when not empty, are the tokens a request must carry (the
	// X-Consul-Token header, "Authorization: Bearer", or ?token=); GET
	// /v1/status/leader needs none, as on Consul.
	Tokens []string
	// Logger gets server-side failures; nil discards.
	Logger *slog.Logger
}

// Handler serves the Consul HTTP API subset over a Registry. It is an
// http.Handler, safe for concurrent use.
type Handler struct {
	reg    *registry.Registry
	tokens [][]byte
	logger *slog.Logger
	routes []route
}

// route is one endpoint: an exact path, or a prefix followed by one
// argument (an ID or a name).
type route struct {
	method string
	path   string
	prefix bool
	// public endpoints need no token.
	public bool
	h      func(w http.ResponseWriter, r *http.Request, arg string)
}

// New returns a Handler over reg.
func New(reg *registry.Registry, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{reg: reg, logger: opts.Logger.With("component", "consulapi")}
	for _, t := range opts.Tokens {
		if t != "" {
			h.tokens = append(h.tokens, []byte(t))
		}
	}
	put, get := http.MethodPut, http.MethodGet
	h.routes = []route{
		{method: put, path: "/v1/agent/service/register", h: h.register},
		{method: put, path: "/v1/agent/service/deregister/", prefix: true, h: h.deregister},
		{method: put, path: "/v1/agent/service/maintenance/", prefix: true, h: h.maintenance},
		{method: put, path: "/v1/agent/check/pass/", prefix: true, h: h.ttl(registry.StatusPassing)},
		{method: put, path: "/v1/agent/check/warn/", prefix: true, h: h.ttl(registry.StatusWarning)},
		{method: put, path: "/v1/agent/check/fail/", prefix: true, h: h.ttl(registry.StatusCritical)},
		{method: put, path: "/v1/agent/check/update/", prefix: true, h: h.checkUpdate},
		{method: get, path: "/v1/agent/services", h: h.agentServices},
		{method: get, path: "/v1/agent/service/", prefix: true, h: h.agentServiceByID},
		{method: get, path: "/v1/agent/checks", h: h.agentChecks},
		{method: get, path: "/v1/agent/self", h: h.agentSelf},
		{method: get, path: "/v1/health/service/", prefix: true, h: h.healthService},
		{method: get, path: "/v1/health/checks/", prefix: true, h: h.healthChecks},
		{method: get, path: "/v1/health/state/", prefix: true, h: h.healthState},
		{method: get, path: "/v1/catalog/services", h: h.catalogServices},
		{method: get, path: "/v1/catalog/service/", prefix: true, h: h.catalogServiceByName},
		{method: get, path: "/v1/catalog/nodes", h: h.catalogNodes},
		{method: get, path: "/v1/status/leader", public: true, h: h.statusLeader},
		{method: get, path: "/v1/vigil/checks/", prefix: true, h: h.checkHistory},
	}
	return h
}

// ServeHTTP routes a request: 404 for an unknown endpoint, 405 for a known
// one asked with another method, 403 without a valid token.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	// An exact path takes precedence over a prefix that also matches it
	// (/v1/agent/service/register over /v1/agent/service/:id).
	exact := slices.ContainsFunc(h.routes, func(rt route) bool { return !rt.prefix && rt.path == r.URL.Path })
	for _, rt := range h.routes {
		arg, ok := rt.match(r.URL.Path)
		if !ok || (exact && rt.prefix) {
			continue
		}
		if r.Method != rt.method {
			allowed = append(allowed, rt.method)
			continue
		}
		if !rt.public && !h.authorized(r) {
			plain(w, http.StatusForbidden, "ACL not found")
			return
		}
		rt.h(w, r, arg)
		return
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		plain(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed", r.Method))
		return
	}
	plain(w, http.StatusNotFound, fmt.Sprintf("Unknown endpoint %q", r.URL.Path))
}

func (rt route) match(path string) (string, bool) {
	if !rt.prefix {
		return "", path == rt.path
	}
	arg, ok := strings.CutPrefix(path, rt.path)
	return arg, ok && arg != ""
}

func (h *Handler) authorized(r *http.Request) bool {
	if len(h.tokens) == 0 {
		return true
	}
	tok := r.Header.Get("X-Consul-Token")
	if tok == "" {
		if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			tok = b
		}
	}
	if tok == "" {
		tok = r.URL.Query().Get("token")
	}
	ok := false
	for _, t := range h.tokens {
		ok = subtle.ConstantTimeCompare([]byte(tok), t) == 1 || ok
	}
	return ok
}

// plain writes a plain-text answer, as Consul answers errors.
func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}

// fail answers an error of the registry or the store.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, registry.ErrInvalid), errors.Is(err, errDecode), errors.Is(err, errFilter), errors.Is(err, errParam):
		plain(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, registry.ErrNotTTL):
		plain(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away.
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		h.logger.WarnContext(r.Context(), "registry unavailable", "path", r.URL.Path, "err", err)
		plain(w, http.StatusServiceUnavailable, "registry unavailable")
	default:
		h.logger.ErrorContext(r.Context(), "registry request failed", "path", r.URL.Path, "err", err)
		plain(w, http.StatusInternalServerError, "internal error")
	}
}

// errParam is wrapped by errors of query parameters.
var errParam = errors.New("invalid parameter")

// writeJSON writes v with the headers of a Consul read.
func writeJSON(w http.ResponseWriter, index int64, v any) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("X-Consul-Index", strconv.FormatInt(index, 10))
	hd.Set("X-Consul-KnownLeader", "true")
	hd.Set("X-Consul-LastContact", "0")
	_ = json.NewEncoder(w).Encode(v)
}

// read runs a blocking read: it waits as index= and wait= ask, then reads
// the state.
func (h *Handler) read(w http.ResponseWriter, r *http.Request) (*registry.State, bool) {
	q := r.URL.Query()
	if s := q.Get("index"); s != "" {
		idx, err := strconv.ParseUint(s, 10, 63)
		if err != nil {
			plain(w, http.StatusBadRequest, "Invalid index")
			return nil, false
		}
		wait := defaultWait
		if ws := q.Get("wait"); ws != "" {
			d, err := time.ParseDuration(ws)
			if err != nil || d < 0 {
				plain(w, http.StatusBadRequest, "Invalid wait time")
				return nil, false
			}
			wait = min(d, MaxWait)
		}
		h.reg.Wait(r.Context(), int64(idx), wait)
		if r.Context().Err() != nil {
			return nil, false
		}
	}
	st, err := h.reg.State(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	return st, true
}

// filter parses the filter parameter against the selectors of an item
// kind; nil when there is none.
func filterOf(r *http.Request, known func(string) bool) (expr, error) {
	s := r.URL.Query().Get("filter")
	if s == "" {
		return nil, nil
	}
	return parseFilter(s, known)
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request, _ string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		plain(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	reg, err := decodeRegistration(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	reg.ReplaceExistingChecks = boolParam(r, "replace-existing-checks")
	reg.ForceStatus = true
	if _, err := h.reg.Register(r.Context(), reg); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// boolParam reads a flag parameter: present without a value, or a true
// value.
func boolParam(r *http.Request, name string) bool {
	q := r.URL.Query()
	if !q.Has(name) {
		return false
	}
	v := q.Get(name)
	if v == "" {
		return true
	}
	b, err := strconv.ParseBool(v)
	return err == nil && b
}

func (h *Handler) deregister(w http.ResponseWriter, r *http.Request, id string) {
	if _, err := h.reg.Deregister(r.Context(), id); errors.Is(err, storage.ErrNotFound) {
		plain(w, http.StatusNotFound, fmt.Sprintf("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id))
		return
	} else if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) maintenance(w http.ResponseWriter, r *http.Request, id string) {
	q := r.URL.Query()
	if !q.Has("enable") {
		plain(w, http.StatusBadRequest, "Missing value for enable")
		return
	}
	enable, err := strconv.ParseBool(q.Get("enable"))
	if err != nil {
		plain(w, http.StatusBadRequest, "Invalid value for enable: "+strconv.Quote(q.Get("enable")))
		return
	}
	if _, err := h.reg.SetMaintenance(r.Context(), id, enable, q.Get("reason")); errors.Is(err, storage.ErrNotFound) {
		plain(w, http.StatusNotFound, fmt.Sprintf("Unknown service ID %q", id))
		return
	} else if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) ttl(status string) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, r *http.Request, id string) {
		h.updateTTL(w, r, id, status, r.URL.Query().Get("note"))
	}
}

func (h *Handler) checkUpdate(w http.ResponseWriter, r *http.Request, id string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		plain(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	var u checkUpdate
	if err := json.Unmarshal(body, &u); err != nil {
		h.fail(w, r, decodeError(err))
		return
	}
	h.updateTTL(w, r, id, u.Status, u.Output)
}

func (h *Handler) updateTTL(w http.ResponseWriter, r *http.Request, id, status, output string) {
	if _, err := h.reg.UpdateTTL(r.Context(), id, status, output); errors.Is(err, storage.ErrNotFound) {
		plain(w, http.StatusNotFound, fmt.Sprintf("Unknown check ID %q. Ensure that the check ID is passed, not the check name.", id))
		return
	} else if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) agentServices(w http.ResponseWriter, r *http.Request, _ string) {
	f, err := filterOf(r, agentServiceKnown)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st, ok := h.read(w, r)
	if !ok {
		return
	}
	out := map[string]agentService{}
	for i := range st.Services {
		as := h.agentService(&st.Services[i])
		if f == nil || f.eval(agentServiceFields(&as, "")) {
			out[as.ID] = as
		}
	}
	writeJSON(w, st.Index, out)
}

func (h *Handler) agentServiceByID(w http.ResponseWriter, r *http.Request, id string) {
	st, ok := h.read(w, r)
	if !ok {
		return
	}
	s := registry.FindService(st, id)
	if s == nil {
		plain(w, http.StatusNotFound, fmt.Sprintf("unknown service ID: %s", id))
		return
	}
	writeJSON(w, st.Index, h.agentService(s))
}

func (h *Handler) agentChecks(w http.ResponseWriter, r *http.Request, _ string) {
	f, err := filterOf(r, checkKnown)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st, ok := h.read(w, r)
	if !ok {
		return
	}
	out := map[string]healthCheck{}
	for i := range st.Checks {
		c := h.healthCheck(&st.Checks[i], registry.FindService(st, st.Checks[i].ServiceID))
		if f == nil || f.eval(checkFields(&c, "")) {
			out[c.CheckID] = c
		}
	}
	writeJSON(w, st.Index, out)
}

func (h *Handler) agentSelf(w http.ResponseWriter, r *http.Request, _ string) {
	cfg := h.reg.Config()
	writeJSON(w, h.reg.Index(), map[string]any{
		"Config": map[string]any{"Datacenter": cfg.Datacenter, "PrimaryDatacenter": cfg.Datacenter, "NodeName": cfg.NodeName,
			"NodeID": nodeID, "Server": true, "Revision": "", "Version": "1.21.0"},
		"Member": map[string]any{"Name": cfg.NodeName, "Addr": cfg.NodeAddress, "Port": 8301,
			"Tags": map[string]string{"dc": cfg.Datacenter, "role": "consul", "id": nodeID}, "Status": 1},
		"Meta":  map[string]string{},
		"Stats": map[string]any{},
	})
}

func (h *Handler) statusLeader(w http.ResponseWriter, _ *http.Request, _ string) {
	writeJSON(w, h.reg.Index(), h.reg.Config().NodeAddress+":8300")
}

func (h *Handler) healthService(w http.ResponseWriter, r *http.Request, name string) {
	f, err := filterOf(r, entryKnown)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	tags := q["tag"]
	passing := boolParam(r, "passing")
	st, ok := h.read(w, r)
	if !ok {
		return
	}
	n := h.node()
	out := []serviceEntry{}
	for i := range st.Services {
		s := &st.Services[i]
		if s.Name != name || !hasTags(s, tags) || nodeMetaExcludes(r) {
			continue
		}
		e := serviceEntry{Node: n, Service: h.agentService(s), Checks: []healthCheck{}}
		healthy := true
		for j := range st.Checks {
			if c := &st.Checks[j]; c.ServiceID == s.ID {
				e.Checks = append(e.Checks, h.healthCheck(c, s))
				healthy = healthy && c.Status == registry.StatusPassing
			}
		}
		if passing && !healthy {
			continue
		}
		if f != nil && !f.eval(entryFields(&e)) {
			continue
		}
		out = append(out, e)
	}
	writeJSON(w, st.Index, out)
}

// nodeMetaExcludes reports whether the node-meta parameters exclude the
// one node, which has no metadata: any of them does.
func nodeMetaExcludes(r *http.Request) bool {
	return len(r.URL.Query()["node-meta"]) > 0
}

func hasTags(s *registry.Service, tags []string) bool {
	for _, t := range tags {
		if !slices.Contains(s.Tags, t) {
			return false
		}
	}
	return true
}

func (h *Handler) healthChecks(w http.ResponseWriter, r *http.Request, name string) {
	h.checks(w, r, func(c *registry.Check) bool { return c.ServiceName == name })
}

func (h *Handler) healthState(w http.ResponseWriter, r *http.Request, state string) {
	switch state {
	case "any":
		h.checks(w, r, func(*registry.Check) bool { return true })
	case registry.StatusPassing, registry.StatusWarning, registry.StatusCritical:
		h.checks(w, r, func(c *registry.Check) bool { return c.Status == state })
	default:
		plain(w, http.StatusBadRequest, "Invalid check state")
	}
}

func (h *Handler) checks(w http.ResponseWriter, r *http.Request, keep func(*registry.Check) bool) {
	f, err := filterOf(r, checkKnown)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st, ok := h.read(w, r)
	if !ok {
		return
	}
	out := []healthCheck{}
	for i := range st.Checks {
		if c := &st.Checks[i]; keep(c) {
			hc := h.healthCheck(c, registry.FindService(st, c.ServiceID))
			if f == nil || f.eval(checkFields(&hc, "")) {
				out = append(out, hc)
			}
		}
	}
	writeJSON(w, st.Index, out)
}

func (h *Handler) catalogServices(w http.ResponseWriter, r *http.Request, _ string) {
	f, err := filterOf(r, catalogKnown)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st, ok := h.read(w, r)
	if !ok {
		return
	}
	out := map[string][]string{}
	for i := range st.Services {
		s := &st.Services[i]
		if nodeMetaExcludes(r) {
			break
		}
		if f != nil {
			cs := h.catalogService(s)
			if !f.eval(catalogFields(&cs)) {
				continue
			}
		}
		tags := out[s.Name]
		if tags == nil {
			tags = []string{}
		}
		for _, t := range s.Tags {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
		out[s.Name] = tags
	}
	writeJSON(w, st.Index, out)
}

func (h *Handler) catalogServiceByName(w http.ResponseWriter, r *http.Request, name string) {
	f, err := filterOf(r, catalogKnown)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	tags := r.URL.Query()["tag"]
	st, ok := h.read(w, r)
	if !ok {
		return
	}
	out := []catalogService{}
	for i := range st.Services {
		s := &st.Services[i]
		if s.Name != name || !hasTags(s, tags) || nodeMetaExcludes(r) {
			continue
		}
		cs := h.catalogService(s)
		if f == nil || f.eval(catalogFields(&cs)) {
			out = append(out, cs)
		}
	}
	writeJSON(w, st.Index, out)
}

func (h *Handler) catalogNodes(w http.ResponseWriter, r *http.Request, _ string) {
	st, ok := h.read(w, r)
	if !ok {
		return
	}
	writeJSON(w, st.Index, []node{h.node()})
}

// checkHistory serves GET /v1/vigil/checks/:id/history?limit=, Vigil's
// own: a check's status transitions, newest first.
func (h *Handler) checkHistory(w http.ResponseWriter, r *http.Request, arg string) {
	id, ok := strings.CutSuffix(arg, "/history")
	if !ok || id == "" {
		plain(w, http.StatusNotFound, fmt.Sprintf("Unknown endpoint %q", r.URL.Path))
		return
	}
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > 1000 {
			plain(w, http.StatusBadRequest, "Invalid limit: must be 1 to 1000")
			return
		}
		limit = n
	}
	ts, err := h.reg.History(r.Context(), id, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]transition, 0, len(ts))
	for _, t := range ts {
		out = append(out, transition{CheckID: t.CheckID, ServiceID: t.ServiceID, Status: t.Status, Output: t.Output, At: timeString(t.At)})
	}
	writeJSON(w, h.reg.Index(), out)
}
