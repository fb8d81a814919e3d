package discovery

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-obs/vigil/client/retry"
)

// DefaultConsulAgent is the Consul HTTP API address used when none is given:
// a local agent, or Vigil's own Consul-compatible listener.
const DefaultConsulAgent = "127.0.0.1:8500"

// Meta keys a Consul resolver adds to every Instance besides the service's
// own meta. Consul meta keys may hold only letters, digits, '-' and '_', so
// these dotted keys never collide with them.
const (
	// MetaConsulServiceID is the registration's service ID.
	MetaConsulServiceID = "consul.service_id"
	// MetaConsulNode is the name of the node the service is registered on.
	MetaConsulNode = "consul.node"
	// MetaConsulTags is the service's tags joined by commas, in the order
	// Consul returns them; absent when it has none.
	MetaConsulTags = "consul.tags"
	// MetaConsulHealth is the worst status of the entry's checks: passing,
	// warning or critical.
	MetaConsulHealth = "consul.health"
)

// ConsulConfig configures a Consul resolver. Zero fields take the defaults
// listed on each field.
type ConsulConfig struct {
	// Service is the Consul service name. Required.
	Service string
	// Tags keeps only instances that carry every one of these tags.
	Tags []string
	// IncludeUnhealthy returns every registered instance, whatever its
	// checks say (?passing is not sent). By default only instances whose
	// checks all pass are returned; the client's own outlier detection and
	// breakers still apply to the rest.
	IncludeUnhealthy bool
	// Datacenter is sent as ?dc=; empty means the agent's.
	Datacenter string
	// Agent is the Consul HTTP API: host:port (plain HTTP) or an http:// or
	// https:// URL (default DefaultConsulAgent).
	Agent string
	// Token is sent as X-Consul-Token when set.
	Token string
	// Wait is how long one blocking query may be held by the server
	// (default 5m; Consul caps it at 10m).
	Wait time.Duration
	// MinInterval is the least time between the starts of two queries
	// (default 250ms): a server whose index moves constantly, or that does
	// not block, must not turn the resolver into a busy loop. A change that
	// arrives while a query is held is still seen at once.
	MinInterval time.Duration
	// RetryMin and RetryMax bound the pause after failed queries, which
	// doubles per consecutive failure, jittered (defaults 1s and 30s).
	RetryMin, RetryMax time.Duration
}

// ConsulConfigFromTarget maps a consul target onto base (which carries the
// agent, token and timing from the caller's options):
//
//	consul:///user-service?tag=v1&tag=eu&passing=true&dc=dc2&wait=1m
//	consul://10.0.0.5:8500/user-service
//
// The authority, when present, overrides base.Agent. passing defaults to
// true; passing=false sets IncludeUnhealthy. Unknown parameters are errors.
func ConsulConfigFromTarget(t Target, base ConsulConfig) (ConsulConfig, error) {
	cfg := base
	cfg.Service = t.Endpoint
	if t.Authority != "" {
		cfg.Agent = t.Authority
	}
	for key, vals := range t.Query {
		switch key {
		case "tag":
			cfg.Tags = append(slices.Clone(base.Tags), vals...)
		case "passing":
			v := vals[len(vals)-1]
			if v == "" { // ?passing alone, as in Consul's own API
				v = "true"
			}
			p, err := strconv.ParseBool(v)
			if err != nil {
				return ConsulConfig{}, fmt.Errorf("consul target: passing: %w", err)
			}
			cfg.IncludeUnhealthy = !p
		case "dc":
			cfg.Datacenter = vals[len(vals)-1]
		case "wait":
			d, err := time.ParseDuration(vals[len(vals)-1])
			if err != nil {
				return ConsulConfig{}, fmt.Errorf("consul target: wait: %w", err)
			}
			cfg.Wait = d
		default:
			return ConsulConfig{}, fmt.Errorf("consul target: unknown parameter %q (want tag, passing, dc or wait)", key)
		}
	}
	return cfg, cfg.Validate()
}

// WithDefaults returns c with zero fields set to their defaults.
func (c ConsulConfig) WithDefaults() ConsulConfig {
	if c.Agent == "" {
		c.Agent = DefaultConsulAgent
	}
	if c.Wait == 0 {
		c.Wait = 5 * time.Minute
	}
	if c.MinInterval == 0 {
		c.MinInterval = 250 * time.Millisecond
	}
	if c.RetryMin == 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(30*time.Second, c.RetryMin)
	}
	return c
}

// Validate reports the first invalid field after defaults are applied.
func (c ConsulConfig) Validate() error {
	c = c.WithDefaults()
	if c.Service == "" || len(c.Service) > 256 || strings.ContainsAny(c.Service, "/?#") {
		return fmt.Errorf("consul service %q: must have 1 to 256 characters and no '/', '?' or '#'", c.Service)
	}
	if _, err := consulBaseURL(c.Agent); err != nil {
		return err
	}
	if c.Wait < time.Second || c.Wait > 10*time.Minute {
		return fmt.Errorf("consul wait: must be in [1s, 10m], got %v", c.Wait)
	}
	if c.MinInterval < 0 {
		return fmt.Errorf("consul min interval: must not be negative, got %v", c.MinInterval)
	}
	if c.RetryMin < 0 || c.RetryMax < c.RetryMin {
		return fmt.Errorf("consul retry bounds: want 0 <= min <= max, got %v and %v", c.RetryMin, c.RetryMax)
	}
	return nil
}

// consulBaseURL turns an agent address into the API's base URL.
func consulBaseURL(agent string) (*url.URL, error) {
	raw := agent
	if !strings.Contains(agent, "://") {
		if _, _, err := net.SplitHostPort(agent); err != nil {
			return nil, fmt.Errorf("consul agent %q: want host:port or a URL: %w", agent, err)
		}
		raw = "http://" + agent
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("consul agent %q: %w", agent, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("consul agent %q: want an http or https URL with a host", agent)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// ConsulOptions carries a Consul resolver's dependencies.
type ConsulOptions struct {
	// HTTPClient performs the queries; nil means a client of its own. Its
	// Timeout, if any, must exceed ConsulConfig.Wait; the resolver bounds
	// every query by Wait plus a margin itself.
	HTTPClient *http.Client
	// Clock paces queries and failures; nil means the system clock.
	Clock Clock
}

// Consul resolves a service through the health endpoint of Consul's HTTP API
// (or Vigil's Consul-compatible one), with blocking queries: each query
// carries the X-Consul-Index of the previous answer in Snapshot.Version and
// is held by the server until the service's instances change or Wait
// elapses, so changes are seen at once without polling.
//
// It follows Consul's rules for blocking clients: an index that goes
// backwards restarts from zero, an index of zero is taken as one, query
// starts are rate limited (MinInterval), and failures pause the resolver,
// doubling up to RetryMax with jitter. A failure is returned, so that a
// Watcher keeps serving the last good set and reports it stale.
type Consul struct {
	cfg  ConsulConfig
	base *url.URL
	hc   *http.Client
	clk  Clock

	// Used by one goroutine at a time, as Resolver allows.
	failures  int
	notBefore time.Time
	// emptyIndex is the index of the last answer when it had no
	// instances (zero otherwise). A Watcher does not take an empty answer
	// as its prev, so the next query blocks on this index instead: the
	// instances' return is seen at once, not at the next retry.
	emptyIndex uint64
}

// NewConsul returns a Consul resolver for cfg.
func NewConsul(cfg ConsulConfig, opts ConsulOptions) (*Consul, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	base, _ := consulBaseURL(cfg.Agent) // checked by Validate
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	return &Consul{cfg: cfg, base: base, hc: opts.HTTPClient, clk: opts.Clock}, nil
}

// ConsulBuilder returns a Builder for consul targets (register it under
// "consul" in the client's Options.Resolvers). base carries what a target
// does not: the agent address, token, wait and retry bounds.
func ConsulBuilder(base ConsulConfig, opts ConsulOptions) Builder {
	return BuilderFunc(func(t Target) (Resolver, error) {
		cfg, err := ConsulConfigFromTarget(t, base)
		if err != nil {
			return nil, err
		}
		return NewConsul(cfg, opts)
	})
}

// Resolve returns the service's instances. With a prev.Version (an
// X-Consul-Index) it blocks until the index moves past it or ctx ends;
// answers whose index did not move (the server's wait elapsed) are not
// returned but asked again. The Snapshot's Version is the answer's index
// ("0" after the index went backwards, which makes the next query a fresh,
// non-blocking read); TTL is zero. An answer with no instances is returned
// as such (a Watcher keeps its last good set), and the next call blocks on
// its index whatever prev says. Errors wrap the HTTP status or transport
// error.
func (c *Consul) Resolve(ctx context.Context, prev Snapshot) (Snapshot, error) {
	index, _ := strconv.ParseUint(prev.Version, 10, 64)
	index = max(index, c.emptyIndex)
	for {
		if err := c.pace(ctx); err != nil {
			return Snapshot{}, err
		}
		start := c.clk.Now()
		in, got, err := c.query(ctx, index)
		if err != nil {
			if ctx.Err() != nil {
				return Snapshot{}, ctx.Err()
			}
			c.failures++
			c.notBefore = c.clk.Now().Add(c.retryDelay())
			return Snapshot{}, fmt.Errorf("consul service %s: %w", c.cfg.Service, err)
		}
		c.failures = 0
		c.notBefore = start.Add(c.cfg.MinInterval)
		switch {
		case got < index:
			// Consul's rule: an index that goes backwards (a restored
			// snapshot, a new cluster) restarts from zero.
			got = 0
		case got == 0:
			// Never block on zero, which returns at once: take one.
			got = 1
		case got == index:
			continue // the wait elapsed without a change
		}
		c.emptyIndex = 0
		if len(in) == 0 {
			c.emptyIndex = got
		}
		return Snapshot{Instances: in, Version: strconv.FormatUint(got, 10)}, nil
	}
}

// pace waits until the next query may start.
func (c *Consul) pace(ctx context.Context) error {
	d := c.notBefore.Sub(c.clk.Now())
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.clk.After(d):
		return nil
	}
}

// retryDelay is the pause after the n-th consecutive failure: the ceiling
// doubles from RetryMin up to RetryMax, and the pause is uniform in its
// upper half, so that clients that failed together spread out.
func (c *Consul) retryDelay() time.Duration {
	ceil := retry.Backoff{Base: c.cfg.RetryMin, Max: c.cfg.RetryMax}.Ceiling(c.failures)
	return ceil/2 + time.Duration(rand.Int64N(int64(ceil/2)+1))
}

// maxHealthBody bounds a health answer: tens of thousands of instances.
const maxHealthBody = 32 << 20

// query asks once and returns the instances and X-Consul-Index.
func (c *Consul) query(ctx context.Context, index uint64) ([]Instance, uint64, error) {
	q := url.Values{}
	if !c.cfg.IncludeUnhealthy {
		q.Set("passing", "true")
	}
	for _, tag := range c.cfg.Tags {
		q.Add("tag", tag)
	}
	if c.cfg.Datacenter != "" {
		q.Set("dc", c.cfg.Datacenter)
	}
	timeout := 10 * time.Second
	if index > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
		q.Set("wait", c.cfg.Wait.String())
		// Consul adds up to Wait/16 of jitter to the wait.
		timeout += c.cfg.Wait + c.cfg.Wait/16
	}
	u := *c.base
	u.Path += "/v1/health/service/" + c.cfg.Service
	u.RawPath = ""
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("health request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if c.cfg.Token != "" {
		req.Header.Set("X-Consul-Token", c.cfg.Token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("health query: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody+1))
	if err != nil {
		return nil, 0, fmt.Errorf("health answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("health query: %s: %s", resp.Status, snippet(body))
	}
	if len(body) > maxHealthBody {
		return nil, 0, fmt.Errorf("health answer: larger than %d bytes", maxHealthBody)
	}
	got, err := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("health answer: X-Consul-Index %q: not an index", resp.Header.Get("X-Consul-Index"))
	}
	in, err := DecodeConsulHealth(body, c.cfg.IncludeUnhealthy)
	if err != nil {
		return nil, 0, err
	}
	return in, got, nil
}

// snippet shortens an error body for a message.
func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// consulServiceEntry is one element of Consul's /v1/health/service answer
// (api.ServiceEntry), reduced to what the resolver reads.
type consulServiceEntry struct {
	Node struct {
		Node    string
		Address string
	}
	Service struct {
		ID      string
		Service string
		Tags    []string
		Address string
		Port    int
		Meta    map[string]string
		Weights struct {
			Passing int
			Warning int
		}
	}
	Checks []struct {
		CheckID   string
		Status    string
		ServiceID string
	}
}

// DecodeConsulHealth decodes the body of a /v1/health/service/<name> answer
// into instances sorted by address. The address is the service's, or the
// node's when the service has none; the weight is Weights.Passing (at least
// 1); Meta is the service's meta plus the MetaConsul keys. Entries without
// a usable host:port are skipped; of entries sharing an address the one
// with the smallest service ID wins. Unless includeUnhealthy, entries with
// a check that is not passing are dropped, whatever the server filtered.
// The result is nil, not an error, when no entry remains.
func DecodeConsulHealth(body []byte, includeUnhealthy bool) ([]Instance, error) {
	var entries []consulServiceEntry
	if err := json.Unmarshal(body, &entries); err != nil {
		return nil, fmt.Errorf("decode health answer: %w", err)
	}
	type keyed struct {
		in Instance
		id string
	}
	var out []keyed
	for _, e := range entries {
		health := "passing"
		for _, ch := range e.Checks {
			health = worseStatus(health, ch.Status)
		}
		if health != "passing" && !includeUnhealthy {
			continue
		}
		host := e.Service.Address
		if host == "" {
			host = e.Node.Address
		}
		if e.Service.Port < 1 || e.Service.Port > 65535 {
			continue
		}
		addr := net.JoinHostPort(host, strconv.Itoa(e.Service.Port))
		if checkHostPort(addr) != nil {
			continue
		}
		meta := make(map[string]string, len(e.Service.Meta)+4)
		for k, v := range e.Service.Meta {
			meta[k] = v
		}
		meta[MetaConsulServiceID] = e.Service.ID
		meta[MetaConsulNode] = e.Node.Node
		meta[MetaConsulHealth] = health
		if len(e.Service.Tags) > 0 {
			meta[MetaConsulTags] = strings.Join(e.Service.Tags, ",")
		}
		out = append(out, keyed{in: Instance{Addr: addr, Weight: max(e.Service.Weights.Passing, 1), Meta: meta}, id: e.Service.ID})
	}
	if len(out) == 0 {
		return nil, nil
	}
	slices.SortFunc(out, func(a, b keyed) int {
		return cmp.Or(strings.Compare(a.in.Addr, b.in.Addr), strings.Compare(a.id, b.id))
	})
	out = slices.CompactFunc(out, func(a, b keyed) bool { return a.in.Addr == b.in.Addr })
	in := make([]Instance, len(out))
	for i, k := range out {
		in[i] = k.in
	}
	return in, nil
}

// worseStatus orders Consul check statuses; an unknown status counts as
// critical.
func worseStatus(a, b string) string {
	rank := func(s string) int {
		switch s {
		case "passing":
			return 0
		case "warning":
			return 1
		}
		return 2
	}
	if rank(b) > rank(a) {
		if rank(b) == 2 {
			return "critical"
		}
		return b
	}
	return a
}
