package consultest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Registration is the body of PUT /v1/agent/service/register
// (api.AgentServiceRegistration), as far as the client fills it.
type Registration struct {
	ID      string            `json:"ID"`
	Name    string            `json:"Name"`
	Tags    []string          `json:"Tags,omitempty"`
	Address string            `json:"Address,omitempty"`
	Port    int               `json:"Port,omitempty"`
	Meta    map[string]string `json:"Meta,omitempty"`
	Weights *struct {
		Passing int `json:"Passing"`
		Warning int `json:"Warning"`
	} `json:"Weights,omitempty"`
	Check  *CheckDef  `json:"Check,omitempty"`
	Checks []CheckDef `json:"Checks,omitempty"`
}

// CheckDef is a check in a registration (api.AgentServiceCheck).
type CheckDef struct {
	CheckID                        string `json:"CheckID,omitempty"`
	Name                           string `json:"Name,omitempty"`
	Notes                          string `json:"Notes,omitempty"`
	Status                         string `json:"Status,omitempty"`
	TTL                            string `json:"TTL,omitempty"`
	HTTP                           string `json:"HTTP,omitempty"`
	Method                         string `json:"Method,omitempty"`
	Interval                       string `json:"Interval,omitempty"`
	Timeout                        string `json:"Timeout,omitempty"`
	DeregisterCriticalServiceAfter string `json:"DeregisterCriticalServiceAfter,omitempty"`
}

// Check is a check's current state.
type Check struct {
	ID, ServiceID, Status, Output string
}

// Request is one request the server received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Token  string
	Body   []byte
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	index    uint64
	changed  chan struct{} // closed and replaced on every change
	services map[string]Registration
	checks   map[string]*Check
	requests []Request
	failWith int // status answered by the health endpoint; 0: none
}

// New starts a server; it is closed at the end of the test.
func New(t interface{ Cleanup(func()) }) *Server {
	s := &Server{index: 1, changed: make(chan struct{}), services: map[string]Registration{}, checks: map[string]*Check{}}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/agent/service/register", s.register)
	mux.HandleFunc("PUT /v1/agent/service/deregister/{id}", s.deregister)
	mux.HandleFunc("PUT /v1/agent/check/pass/{id}", s.pass)
	mux.HandleFunc("GET /v1/agent/service/{id}", s.service)
	mux.HandleFunc("GET /v1/health/service/{name}", s.health)
	s.Server = httptest.NewServer(s.record(mux))
	t.Cleanup(s.Close)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return strings.TrimPrefix(s.URL, "http://") }

func (s *Server) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Token: r.Header.Get("X-Consul-Token"), Body: body})
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// bump raises the index and wakes blocked queries. s.mu must be held.
func (s *Server) bump() {
	s.index++
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var reg Registration
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&reg); err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	if reg.Name == "" {
		http.Error(w, "Missing service name", http.StatusBadRequest)
		return
	}
	if reg.ID == "" {
		reg.ID = reg.Name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ch := range s.checks {
		if ch.ServiceID == reg.ID {
			delete(s.checks, id)
		}
	}
	defs := reg.Checks
	if reg.Check != nil {
		defs = append([]CheckDef{*reg.Check}, defs...)
	}
	for i, d := range defs {
		id := d.CheckID
		if id == "" {
			id = "service:" + reg.ID
			if len(defs) > 1 {
				id += ":" + strconv.Itoa(i+1)
			}
		}
		status := d.Status
		if status == "" {
			status = "critical"
		}
		s.checks[id] = &Check{ID: id, ServiceID: reg.ID, Status: status}
	}
	s.services[reg.ID] = reg
	s.bump()
}

func (s *Server) deregister(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.services[id]; !ok {
		http.Error(w, fmt.Sprintf("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id), http.StatusNotFound)
		return
	}
	delete(s.services, id)
	for cid, ch := range s.checks {
		if ch.ServiceID == id {
			delete(s.checks, cid)
		}
	}
	s.bump()
}

func (s *Server) pass(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.checks[id]
	if !ok {
		http.Error(w, fmt.Sprintf("Unknown check ID %q. Ensure that the check ID is passed, not the check name.", id), http.StatusNotFound)
		return
	}
	note := r.URL.Query().Get("note")
	if ch.Status != "passing" || ch.Output != note {
		ch.Status, ch.Output = "passing", note
		s.bump()
	}
}

func (s *Server) service(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	reg, ok := s.services[r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		http.Error(w, "unknown service ID: "+r.PathValue("id"), http.StatusNotFound)
		return
	}
	writeJSON(w, reg)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// health answers /v1/health/service/<name>, holding the request while
// ?index= is at least the current index, until the index passes it, goes
// backwards, or ?wait= elapses.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	minIndex, _ := strconv.ParseUint(q.Get("index"), 10, 64)
	wait := 5 * time.Minute
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			http.Error(w, "Invalid wait time", http.StatusBadRequest)
			return
		}
		wait = d
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	s.mu.Lock()
hold:
	for s.failWith == 0 && minIndex != 0 && s.index <= minIndex {
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
			s.mu.Lock()
			if s.index < minIndex {
				// The index went backwards (Consul: a restored
				// snapshot abandons the state store): wake.
				break hold
			}
		case <-timer.C:
			s.mu.Lock()
			break hold
		case <-r.Context().Done():
			return
		}
	}
	if s.failWith != 0 {
		status := s.failWith
		s.mu.Unlock()
		http.Error(w, "injected failure", status)
		return
	}
	_, passing := q["passing"]
	if v := q.Get("passing"); v != "" {
		passing, _ = strconv.ParseBool(v)
	}
	tags := q["tag"]
	out := []map[string]any{}
	ids := make([]string, 0, len(s.services))
	for id := range s.services {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		reg := s.services[id]
		if reg.Name != r.PathValue("name") {
			continue
		}
		if slices.ContainsFunc(tags, func(t string) bool { return !slices.Contains(reg.Tags, t) }) {
			continue
		}
		var checks []map[string]any
		healthy := true
		for _, ch := range s.checks {
			if ch.ServiceID != id {
				continue
			}
			healthy = healthy && ch.Status == "passing"
			checks = append(checks, map[string]any{"Node": "vigil", "CheckID": ch.ID, "Status": ch.Status, "Output": ch.Output, "ServiceID": id, "ServiceName": reg.Name})
		}
		if passing && !healthy {
			continue
		}
		weights := map[string]int{"Passing": 1, "Warning": 1}
		if reg.Weights != nil {
			weights = map[string]int{"Passing": reg.Weights.Passing, "Warning": reg.Weights.Warning}
		}
		out = append(out, map[string]any{
			"Node": map[string]any{"ID": "0b2e6b1c", "Node": "vigil", "Address": "127.0.0.1", "Datacenter": "dc1"},
			"Service": map[string]any{"ID": id, "Service": reg.Name, "Tags": reg.Tags, "Address": reg.Address,
				"Port": reg.Port, "Meta": reg.Meta, "Weights": weights},
			"Checks": checks,
		})
	}
	w.Header().Set("X-Consul-Index", strconv.FormatUint(s.index, 10))
	s.mu.Unlock()
	writeJSON(w, out)
}

// SetIndex sets the index (lower to simulate Consul's index going
// backwards) and wakes blocked queries.
func (s *Server) SetIndex(i uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index = i - 1
	s.bump()
}

// Index returns the current index.
func (s *Server) Index() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index
}

// Fail makes the health endpoint answer status (0: answer normally) and
// wakes blocked queries so that they fail too.
func (s *Server) Fail(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failWith = status
	close(s.changed)
	s.changed = make(chan struct{})
}

// Forget drops every service and check, as an agent that lost its state.
func (s *Server) Forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services = map[string]Registration{}
	s.checks = map[string]*Check{}
	s.bump()
}

// Register adds a service as if registered through the API.
func (s *Server) Register(reg Registration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reg.ID == "" {
		reg.ID = reg.Name
	}
	s.services[reg.ID] = reg
	s.bump()
}

// SetCheck adds or changes a check's status.
func (s *Server) SetCheck(id, serviceID, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[id] = &Check{ID: id, ServiceID: serviceID, Status: status}
	s.bump()
}

// Deregister removes a service and its checks.
func (s *Server) Deregister(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.services, id)
	for cid, ch := range s.checks {
		if ch.ServiceID == id {
			delete(s.checks, cid)
		}
	}
	s.bump()
}

// Services returns the registered services by ID.
func (s *Server) Services() map[string]Registration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Registration, len(s.services))
	for k, v := range s.services {
		out[k] = v
	}
	return out
}

// Check returns a check's state and whether it exists.
func (s *Server) Check(id string) (Check, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.checks[id]
	if !ok {
		return Check{}, false
	}
	return *ch, true
}

// Requests returns the requests received so far whose path starts with
// prefix.
func (s *Server) Requests(prefix string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}
