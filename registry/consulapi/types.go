package consulapi

import (
	"time"

	"github.com/vigil-obs/vigil/registry"
)

// The JSON shapes of Consul's API, field for field as github.com/hashicorp/consul/api
// decodes them (only the fields Vigil fills).

// node is Consul's Node (catalog) and the Node of a ServiceEntry.
type node struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     int64
	ModifyIndex     int64
}

// agentWeights is Consul's AgentWeights.
type agentWeights struct {
	Passing int
	Warning int
}

// agentService is Consul's AgentService.
type agentService struct {
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	Weights           agentWeights
	EnableTagOverride bool
	CreateIndex       int64  `json:",omitempty"`
	ModifyIndex       int64  `json:",omitempty"`
	Datacenter        string `json:",omitempty"`
}

// healthCheckDefinition is Consul's HealthCheckDefinition, durations as
// Go duration strings.
type healthCheckDefinition struct {
	HTTP                           string              `json:",omitempty"`
	Header                         map[string][]string `json:",omitempty"`
	Method                         string              `json:",omitempty"`
	Body                           string              `json:",omitempty"`
	TLSSkipVerify                  bool                `json:",omitempty"`
	TCP                            string              `json:",omitempty"`
	GRPC                           string              `json:",omitempty"`
	GRPCUseTLS                     bool                `json:",omitempty"`
	Interval                       string              `json:",omitempty"`
	Timeout                        string              `json:",omitempty"`
	DeregisterCriticalServiceAfter string              `json:",omitempty"`
}

// healthCheck is Consul's HealthCheck (and AgentCheck), with two fields
// of Vigil's own that Consul's clients ignore: when the check last ran
// and when its status last changed (RFC 3339, empty when never).
type healthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	Interval    string `json:",omitempty"`
	Timeout     string `json:",omitempty"`
	ExposedPort int
	Definition  healthCheckDefinition
	CreateIndex int64
	ModifyIndex int64

	LastCheck   string `json:",omitempty"`
	StatusSince string `json:",omitempty"`
}

// serviceEntry is Consul's ServiceEntry (GET /v1/health/service/:name).
type serviceEntry struct {
	Node    node
	Service agentService
	Checks  []healthCheck
}

// catalogService is Consul's CatalogService.
type catalogService struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceID                string
	ServiceName              string
	ServiceAddress           string
	ServiceTags              []string
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceWeights           agentWeights
	ServiceEnableTagOverride bool
	CreateIndex              int64
	ModifyIndex              int64
}

// transition is one entry of GET /v1/vigil/checks/:id/history (Vigil's
// own endpoint).
type transition struct {
	CheckID   string
	ServiceID string
	Status    string
	Output    string
	At        string
}

// nodeID is the fixed ID of the one node, in Consul's UUID form.
const nodeID = "76696769-6c00-4000-8000-000000000001"

func (h *Handler) node() node {
	cfg := h.reg.Config()
	return node{ID: nodeID, Node: cfg.NodeName, Address: cfg.NodeAddress, Datacenter: cfg.Datacenter,
		TaggedAddresses: map[string]string{"lan": cfg.NodeAddress, "lan_ipv4": cfg.NodeAddress, "wan": cfg.NodeAddress, "wan_ipv4": cfg.NodeAddress},
		Meta:            map[string]string{}, CreateIndex: 1, ModifyIndex: 1}
}

func (h *Handler) agentService(s *registry.Service) agentService {
	return agentService{ID: s.ID, Service: s.Name, Tags: nonNil(s.Tags), Meta: nonNilMap(s.Meta), Port: s.Port,
		Address: s.Address, Weights: agentWeights{Passing: 1, Warning: 1}, CreateIndex: s.CreateIndex,
		ModifyIndex: s.ModifyIndex, Datacenter: h.reg.Config().Datacenter}
}

func (h *Handler) catalogService(s *registry.Service) catalogService {
	n := h.node()
	return catalogService{ID: n.ID, Node: n.Node, Address: n.Address, Datacenter: n.Datacenter, TaggedAddresses: n.TaggedAddresses,
		NodeMeta: n.Meta, ServiceID: s.ID, ServiceName: s.Name, ServiceAddress: s.Address, ServiceTags: nonNil(s.Tags),
		ServiceMeta: nonNilMap(s.Meta), ServicePort: s.Port, ServiceWeights: agentWeights{Passing: 1, Warning: 1},
		CreateIndex: s.CreateIndex, ModifyIndex: s.ModifyIndex}
}

func (h *Handler) healthCheck(c *registry.Check, svc *registry.Service) healthCheck {
	d := c.Definition
	out := healthCheck{Node: h.reg.Config().NodeName, CheckID: c.ID, Name: c.Name, Status: c.Status, Notes: c.Notes,
		Output: c.Output, ServiceID: c.ServiceID, ServiceName: c.ServiceName, ServiceTags: []string{},
		CreateIndex: c.CreateIndex, ModifyIndex: c.ModifyIndex,
		Definition: healthCheckDefinition{HTTP: d.HTTP, Header: d.Header, Method: d.Method, Body: d.Body,
			TLSSkipVerify: d.TLSSkipVerify, TCP: d.TCP, GRPC: d.GRPC, GRPCUseTLS: d.GRPCUseTLS,
			Interval: durString(d.Interval), Timeout: durString(d.Timeout),
			DeregisterCriticalServiceAfter: durString(d.DeregisterCriticalServiceAfter)},
		StatusSince: timeString(c.StatusSince), LastCheck: timeString(c.LastRun)}
	if svc != nil {
		out.ServiceTags = nonNil(svc.Tags)
	}
	switch c.Kind {
	case registry.KindMaintenance:
		out.Type = "" // Consul gives its maintenance checks no type
	default:
		out.Type = c.Kind
	}
	if c.Kind != registry.KindTTL && c.Kind != registry.KindMaintenance {
		out.Interval, out.Timeout = durString(d.Interval), durString(d.Timeout)
	}
	return out
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
