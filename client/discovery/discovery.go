package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Instance is one reachable copy of a service.
type Instance struct {
	// Addr is host:port; it identifies the instance.
	Addr string
	// Weight is its relative capacity (at least 1).
	Weight int
	// Meta holds source-specific labels (Consul service meta, SRV priority,
	// Kubernetes zone). Resolvers must not modify it after returning it.
	Meta map[string]string
}

// Snapshot is one answer of a Resolver.
type Snapshot struct {
	// Instances is the set, sorted by Addr. Callers must not modify it.
	Instances []Instance
	// Version identifies the answer for blocking resolvers (a Consul index,
	// a Kubernetes resourceVersion); empty when the source has none.
	Version string
	// TTL is how long the answer may be used before asking again. Zero means
	// ask again at once: the resolver blocks by itself until something
	// changes.
	TTL time.Duration
}

// Resolver finds a service's instances.
//
// Resolve returns the current set. prev is the previous successful answer
// (the zero Snapshot on the first call): a resolver whose source can notify
// changes blocks until the set differs from prev.Version or ctx ends; a
// polling resolver answers at once and sets TTL. Resolve must return promptly
// with ctx.Err() once ctx is done. A Resolver is used by one goroutine at a
// time.
type Resolver interface {
	Resolve(ctx context.Context, prev Snapshot) (Snapshot, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ctx context.Context, prev Snapshot) (Snapshot, error)

// Resolve calls f.
func (f ResolverFunc) Resolve(ctx context.Context, prev Snapshot) (Snapshot, error) {
	return f(ctx, prev)
}

// ErrNoInstances is returned when a source answers with an empty set.
var ErrNoInstances = errors.New("no instances")

// Target is a parsed service target URL: scheme://authority/endpoint?query.
type Target struct {
	// Scheme selects the resolver: "static", "dns", "dns+srv", "consul",
	// or one of the Builders given to Build.
	Scheme string
	// Authority is scheme-specific; for DNS it is the name server to ask
	// (host:port), empty for the system's; for Consul the agent's address.
	Authority string
	// Endpoint is the part after the authority's slash: the address list,
	// host name or SRV name.
	Endpoint string
	// Query holds options such as refresh bounds.
	Query url.Values
}

// String formats t as a URL.
func (t Target) String() string {
	s := t.Scheme + "://" + t.Authority + "/" + t.Endpoint
	if len(t.Query) > 0 {
		s += "?" + t.Query.Encode()
	}
	return s
}

// maxTargetLen bounds what ParseTarget accepts.
const maxTargetLen = 4096

// ParseTarget parses a target such as
//
//	static:///10.0.0.1:8080,10.0.0.2:8080=3
//	dns:///user-service.prod.svc.cluster.local:8080
//	dns://10.0.0.53:53/user-service.internal:8080?min_ttl=5s
//	dns+srv:///_http._tcp.user-service.prod.svc.cluster.local
//	consul:///user-service?tag=v1
//
// A bare host:port (no scheme) means dns:///host:port.
func ParseTarget(s string) (Target, error) {
	if len(s) > maxTargetLen {
		return Target{}, fmt.Errorf("target: longer than %d bytes", maxTargetLen)
	}
	if s == "" {
		return Target{}, errors.New("target: empty")
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		if strings.Contains(s, "/") {
			return Target{}, fmt.Errorf("target %q: missing scheme", s)
		}
		scheme, rest = "dns", "/"+s
	}
	if scheme == "" || strings.IndexFunc(scheme, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '+' && r != '-' && r != '.'
	}) >= 0 {
		return Target{}, fmt.Errorf("target %q: invalid scheme %q", s, scheme)
	}
	authority, pathQuery, ok := strings.Cut(rest, "/")
	if !ok {
		return Target{}, fmt.Errorf("target %q: want %s://[authority]/endpoint", s, scheme)
	}
	endpoint, rawQuery, _ := strings.Cut(pathQuery, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: query: %w", s, err)
	}
	if endpoint == "" {
		return Target{}, fmt.Errorf("target %q: empty endpoint", s)
	}
	return Target{Scheme: scheme, Authority: authority, Endpoint: endpoint, Query: q}, nil
}

// ParseStatic parses a comma-separated list of host:port[=weight].
// Duplicate addresses are an error; the result is sorted by address.
func ParseStatic(list string) ([]Instance, error) {
	var out []Instance
	seen := map[string]bool{}
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		addr, w, hasWeight := strings.Cut(item, "=")
		weight := 1
		if hasWeight {
			n, err := strconv.Atoi(w)
			if err != nil || n < 1 || n > 1000 {
				return nil, fmt.Errorf("instance %q: weight must be an integer in [1, 1000]", item)
			}
			weight = n
		}
		if err := checkHostPort(addr); err != nil {
			return nil, fmt.Errorf("instance %q: %w", item, err)
		}
		if seen[addr] {
			return nil, fmt.Errorf("instance %q: duplicate address", item)
		}
		seen[addr] = true
		out = append(out, Instance{Addr: addr, Weight: weight})
	}
	if len(out) == 0 {
		return nil, ErrNoInstances
	}
	sortInstances(out)
	return out, nil
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("empty host")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q out of range", port)
	}
	return nil
}

func sortInstances(in []Instance) {
	slices.SortFunc(in, func(a, b Instance) int { return strings.Compare(a.Addr, b.Addr) })
}

// Static is a fixed instance list.
type Static struct {
	instances []Instance
}

// NewStatic returns a resolver for instances. Weights below 1 become 1.
func NewStatic(instances []Instance) (*Static, error) {
	if len(instances) == 0 {
		return nil, ErrNoInstances
	}
	cp := slices.Clone(instances)
	for i := range cp {
		if err := checkHostPort(cp[i].Addr); err != nil {
			return nil, fmt.Errorf("instance %q: %w", cp[i].Addr, err)
		}
		cp[i].Weight = max(cp[i].Weight, 1)
	}
	sortInstances(cp)
	return &Static{instances: cp}, nil
}

// staticVersion marks a static answer; the second call blocks.
const staticVersion = "static"

// Resolve returns the list on the first call and then blocks until ctx ends.
func (s *Static) Resolve(ctx context.Context, prev Snapshot) (Snapshot, error) {
	if prev.Version == staticVersion {
		<-ctx.Done()
		return Snapshot{}, ctx.Err()
	}
	return Snapshot{Instances: s.instances, Version: staticVersion}, nil
}

// Builder makes a Resolver for a parsed target, for schemes beyond the built
// in ones (a Consul or Kubernetes resolver).
type Builder interface {
	Build(t Target) (Resolver, error)
}

// BuilderFunc adapts a function to Builder.
type BuilderFunc func(t Target) (Resolver, error)

// Build calls f.
func (f BuilderFunc) Build(t Target) (Resolver, error) { return f(t) }

// Build returns the resolver for t: builders[t.Scheme] when given, else
// Static for "static", DNS for "dns" and "dns+srv", and Consul with the
// default agent (DefaultConsulAgent, no token) for "consul"; register
// ConsulBuilder under "consul" to set the agent, token or timing.
func Build(t Target, builders map[string]Builder) (Resolver, error) {
	if b, ok := builders[t.Scheme]; ok {
		r, err := b.Build(t)
		if err != nil {
			return nil, fmt.Errorf("build %s resolver: %w", t.Scheme, err)
		}
		return r, nil
	}
	switch t.Scheme {
	case "static":
		in, err := ParseStatic(t.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("static target: %w", err)
		}
		return NewStatic(in)
	case "dns", "dns+srv":
		cfg, err := DNSConfigFromTarget(t)
		if err != nil {
			return nil, err
		}
		return NewDNS(cfg)
	case "consul":
		cfg, err := ConsulConfigFromTarget(t, ConsulConfig{})
		if err != nil {
			return nil, err
		}
		return NewConsul(cfg, ConsulOptions{})
	}
	return nil, fmt.Errorf("target %s: unknown scheme %q", t, t.Scheme)
}
