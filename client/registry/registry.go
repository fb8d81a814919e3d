package registry

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
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

// DefaultAgent is the agent address used when none is given.
const DefaultAgent = "127.0.0.1:8500"

// Meta keys Vigil reads from a registration to scrape the instance.
const (
	// MetaMetricsPath is the path of the instance's Prometheus endpoint.
	MetaMetricsPath = "metrics_path"
	// MetaScrapeInterval is how often Vigil scrapes it, as a Prometheus
	// duration ("15s", "1500ms").
	MetaScrapeInterval = "scrape_interval"
)

// ErrNotRegistered is returned when the agent does not know the service or
// its check, typically because it restarted or lost its state.
var ErrNotRegistered = errors.New("not registered with the agent")

// Config describes the instance and how to keep it registered. Zero fields
// take the defaults listed on each field.
type Config struct {
	// Agent is the Consul HTTP API: host:port (plain HTTP) or an http:// or
	// https:// URL (default DefaultAgent).
	Agent string
	// Token is sent as X-Consul-Token when set.
	Token string

	// Name is the service name callers resolve. Required.
	Name string
	// ID identifies this instance among the service's (default
	// Name-Address-Port).
	ID string
	// Address is the host or IP callers connect to. Required: an empty
	// address would make callers use the agent's node address, which for
	// Vigil is not this instance's.
	Address string
	// Port is the instance's port. Required.
	Port int
	// Tags are the service's tags (callers filter on them with ?tag=).
	Tags []string
	// Meta is the service's meta; MetricsPath and ScrapeInterval are added
	// to it.
	Meta map[string]string
	// Weight is the instance's weight while passing (default 1).
	Weight int

	// MetricsPath is sent as meta metrics_path (default Meta's
	// metrics_path, else "/metrics").
	MetricsPath string
	// ScrapeInterval is sent as meta scrape_interval when set; zero leaves
	// Meta's, or Vigil's default. Vigil also reads scrape_timeout, and
	// scrape "false" to leave the instance unscraped, from Meta.
	ScrapeInterval time.Duration

	// TTL is the TTL check's time to live (default 15s): the instance
	// reports itself passing every TTL/3, and the agent marks it critical
	// when it stops. Ignored when HTTPCheck is set.
	TTL time.Duration
	// Note is the TTL check's output on each pass (default "alive").
	Note string
	// HTTPCheck, when set, replaces the TTL check by an HTTP check: the
	// agent GETs this URL every CheckInterval (default 10s), with
	// CheckTimeout (default 5s); a 2xx answer is passing.
	HTTPCheck                   string
	CheckInterval, CheckTimeout time.Duration
	// ResyncInterval is how often, with an HTTP check, the registration
	// is looked up (GET /v1/agent/service/<id>) and renewed if the agent
	// forgot it (default 30s).
	ResyncInterval time.Duration
	// DeregisterCriticalAfter makes the agent remove the instance once its
	// check has been critical this long (a process that died without
	// deregistering); zero means never. Consul's minimum is one minute.
	DeregisterCriticalAfter time.Duration

	// RetryMin and RetryMax bound the pause after a failed request, which
	// doubles per consecutive failure, jittered (defaults 1s and 30s;
	// with a TTL check, never more than TTL/3).
	RetryMin, RetryMax time.Duration
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Agent == "" {
		c.Agent = DefaultAgent
	}
	if c.ID == "" && c.Name != "" {
		c.ID = c.Name + "-" + c.Address + "-" + strconv.Itoa(c.Port)
	}
	if c.Weight == 0 {
		c.Weight = 1
	}
	if c.MetricsPath == "" {
		c.MetricsPath = cmp.Or(c.Meta[MetaMetricsPath], "/metrics")
	}
	if c.TTL == 0 {
		c.TTL = 15 * time.Second
	}
	if c.Note == "" {
		c.Note = "alive"
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = 10 * time.Second
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = 5 * time.Second
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = 30 * time.Second
	}
	if c.RetryMin == 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(30*time.Second, c.RetryMin)
	}
	return c
}

// Validate reports every invalid field after defaults are applied.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if _, err := baseURL(c.Agent); err != nil {
		errs = append(errs, err)
	}
	if c.Name == "" || strings.ContainsAny(c.Name, "/?#") {
		errs = append(errs, fmt.Errorf("name %q: required, without '/', '?' or '#'", c.Name))
	}
	if strings.ContainsAny(c.ID, "/?#") {
		errs = append(errs, fmt.Errorf("id %q: must not contain '/', '?' or '#'", c.ID))
	}
	if c.Address == "" {
		errs = append(errs, errors.New("address: required"))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port: must be in [1, 65535], got %d", c.Port))
	}
	if c.Weight < 1 || c.Weight > 65535 {
		errs = append(errs, fmt.Errorf("weight: must be in [1, 65535], got %d", c.Weight))
	}
	if !strings.HasPrefix(c.MetricsPath, "/") {
		errs = append(errs, fmt.Errorf("metrics path %q: must start with '/'", c.MetricsPath))
	}
	if c.ScrapeInterval < 0 || c.ScrapeInterval%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("scrape interval: must be a positive whole number of milliseconds, got %v", c.ScrapeInterval))
	}
	if c.HTTPCheck == "" && c.TTL < 3*time.Millisecond {
		errs = append(errs, fmt.Errorf("ttl: must be at least 3ms, got %v", c.TTL))
	}
	if c.HTTPCheck != "" {
		if u, err := url.Parse(c.HTTPCheck); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("http check %q: want an http or https URL", c.HTTPCheck))
		}
		if c.CheckInterval <= 0 || c.CheckTimeout <= 0 || c.ResyncInterval <= 0 {
			errs = append(errs, errors.New("check interval, check timeout and resync interval: must be positive"))
		}
	}
	if c.DeregisterCriticalAfter < 0 {
		errs = append(errs, fmt.Errorf("deregister critical after: must not be negative, got %v", c.DeregisterCriticalAfter))
	}
	if c.RetryMin <= 0 || c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("retry bounds: want 0 < min <= max, got %v and %v", c.RetryMin, c.RetryMax))
	}
	return errors.Join(errs...)
}

func baseURL(agent string) (*url.URL, error) {
	raw := agent
	if !strings.Contains(agent, "://") {
		if _, _, err := net.SplitHostPort(agent); err != nil {
			return nil, fmt.Errorf("agent %q: want host:port or a URL: %w", agent, err)
		}
		raw = "http://" + agent
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("agent %q: %w", agent, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("agent %q: want an http or https URL with a host", agent)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// Clock is the time source of a Registration.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options carries a Registration's dependencies. Every field is optional.
type Options struct {
	// HTTPClient sends the requests; nil means one with a 10s timeout.
	HTTPClient *http.Client
	// Clock paces heartbeats and retries; nil means the system clock.
	Clock Clock
	// Logger receives registrations, lost registrations and failures; nil
	// discards.
	Logger *slog.Logger
}

// Registration keeps one service instance registered. Register, Pass and
// Deregister are safe for concurrent use; Run must be called at most once.
type Registration struct {
	cfg     Config
	base    *url.URL
	hc      *http.Client
	clock   Clock
	logger  *slog.Logger
	checkID string
	body    []byte
}

// New validates cfg and prepares the registration. Nothing is sent until
// Register or Run.
func New(cfg Config, opts Options) (*Registration, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("registry config: %w", err)
	}
	cfg = cfg.WithDefaults()
	base, _ := baseURL(cfg.Agent) // checked by Validate
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registration{
		cfg: cfg, base: base, hc: opts.HTTPClient, clock: opts.Clock,
		logger:  opts.Logger.With("component", "vigil-registry", "service_id", cfg.ID),
		checkID: "service:" + cfg.ID,
	}
	body, err := json.Marshal(r.registration())
	if err != nil {
		return nil, fmt.Errorf("encode registration: %w", err)
	}
	r.body = body
	return r, nil
}

// ID is the registered service ID.
func (r *Registration) ID() string { return r.cfg.ID }

// CheckID is the ID of the instance's check.
func (r *Registration) CheckID() string { return r.checkID }

// serviceRegistration is the body of PUT /v1/agent/service/register
// (api.AgentServiceRegistration), reduced to what is sent.
type serviceRegistration struct {
	ID      string
	Name    string
	Tags    []string `json:",omitempty"`
	Address string
	Port    int
	Meta    map[string]string `json:",omitempty"`
	Weights *weights          `json:",omitempty"`
	Check   *serviceCheck
}

type weights struct {
	Passing int
	Warning int
}

// serviceCheck is api.AgentServiceCheck, reduced to what is sent.
type serviceCheck struct {
	CheckID                        string
	Name                           string
	Notes                          string `json:",omitempty"`
	Status                         string `json:",omitempty"`
	TTL                            string `json:",omitempty"`
	HTTP                           string `json:",omitempty"`
	Method                         string `json:",omitempty"`
	Interval                       string `json:",omitempty"`
	Timeout                        string `json:",omitempty"`
	DeregisterCriticalServiceAfter string `json:",omitempty"`
}

func (r *Registration) registration() serviceRegistration {
	c := r.cfg
	meta := maps.Clone(c.Meta)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[MetaMetricsPath] = c.MetricsPath
	if c.ScrapeInterval > 0 {
		meta[MetaScrapeInterval] = promDuration(c.ScrapeInterval)
	}
	reg := serviceRegistration{ID: c.ID, Name: c.Name, Tags: slices.Clone(c.Tags), Address: c.Address, Port: c.Port, Meta: meta}
	if c.Weight != 1 {
		reg.Weights = &weights{Passing: c.Weight, Warning: 1}
	}
	check := &serviceCheck{CheckID: r.checkID, Name: "Service '" + c.Name + "' check"}
	if c.HTTPCheck != "" {
		check.HTTP, check.Method = c.HTTPCheck, http.MethodGet
		check.Interval, check.Timeout = c.CheckInterval.String(), c.CheckTimeout.String()
	} else {
		// Passing from the start: the process registering is alive, and
		// callers should not wait TTL/3 for the first pass.
		check.TTL, check.Status, check.Notes = c.TTL.String(), "passing", "kept passing every TTL/3 while the instance runs"
	}
	if c.DeregisterCriticalAfter > 0 {
		check.DeregisterCriticalServiceAfter = c.DeregisterCriticalAfter.String()
	}
	reg.Check = check
	return reg
}

// promDuration formats d as Prometheus parses it (no fractions).
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
}

// Register registers the instance and its check; registering again
// replaces the registration (Consul's registration is idempotent).
func (r *Registration) Register(ctx context.Context) error {
	if err := r.put(ctx, "/v1/agent/service/register", nil, r.body); err != nil {
		return fmt.Errorf("register %s: %w", r.cfg.ID, err)
	}
	return nil
}

// Pass reports the TTL check passing, with the configured note. It returns
// an error wrapping ErrNotRegistered when the agent does not know the check.
func (r *Registration) Pass(ctx context.Context) error {
	q := url.Values{"note": {r.cfg.Note}}
	if err := r.put(ctx, "/v1/agent/check/pass/"+url.PathEscape(r.checkID), q, nil); err != nil {
		return fmt.Errorf("pass check %s: %w", r.checkID, err)
	}
	return nil
}

// Deregister removes the instance. An instance the agent does not know is
// not an error.
func (r *Registration) Deregister(ctx context.Context) error {
	err := r.put(ctx, "/v1/agent/service/deregister/"+url.PathEscape(r.cfg.ID), nil, nil)
	if err != nil && !errors.Is(err, ErrNotRegistered) {
		return fmt.Errorf("deregister %s: %w", r.cfg.ID, err)
	}
	return nil
}

// lookup asks the agent whether it knows the instance; an unknown instance
// is ErrNotRegistered.
func (r *Registration) lookup(ctx context.Context) error {
	if err := r.do(ctx, http.MethodGet, "/v1/agent/service/"+url.PathEscape(r.cfg.ID), nil, nil); err != nil {
		return fmt.Errorf("look up %s: %w", r.cfg.ID, err)
	}
	return nil
}

func (r *Registration) put(ctx context.Context, path string, q url.Values, body []byte) error {
	return r.do(ctx, http.MethodPut, path, q, body)
}

func (r *Registration) do(ctx context.Context, method, path string, q url.Values, body []byte) error {
	u := *r.base
	u.Path += path
	u.RawPath = ""
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.cfg.Token != "" {
		req.Header.Set("X-Consul-Token", r.cfg.Token)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	text := strings.TrimSpace(string(msg))
	lower := strings.ToLower(text)
	// Consul answers 404 "Unknown check ID"/"Unknown service ID"; older
	// agents answer 500 "CheckID ... does not have associated TTL".
	if resp.StatusCode == http.StatusNotFound || strings.Contains(lower, "unknown check") ||
		strings.Contains(lower, "unknown service") || strings.Contains(lower, "does not have associated ttl") {
		return fmt.Errorf("%w: %s: %s", ErrNotRegistered, resp.Status, text)
	}
	return fmt.Errorf("%s: %s", resp.Status, text)
}

// Run registers the instance (retrying until the agent accepts it), keeps
// it registered until ctx ends — passing the TTL check at once and then
// every TTL/3, or looking the registration up every ResyncInterval with an
// HTTP check, and registering again when the agent has forgotten it — then
// deregisters it within five seconds. It returns nil, or the
// deregistration's error. Failures on the way are logged and retried with
// backoff.
func (r *Registration) Run(ctx context.Context) error {
	if r.registerUntilAccepted(ctx) {
		r.keepRegistered(ctx)
	}
	// Also after a registration cut short by ctx: the agent may have
	// accepted it.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.Deregister(dctx); err != nil {
		return err
	}
	r.logger.InfoContext(dctx, "deregistered")
	return nil
}

// registerUntilAccepted registers, retrying with backoff; it reports false
// when ctx ended first.
func (r *Registration) registerUntilAccepted(ctx context.Context) bool {
	for failures := 1; ; failures++ {
		err := r.Register(ctx)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			r.logger.InfoContext(ctx, "registered", "agent", r.base.Host, "check_id", r.checkID)
			return true
		}
		r.logger.WarnContext(ctx, "registration failed", "err", err, "consecutive_failures", failures)
		if !r.sleep(ctx, r.retryDelay(failures, r.cfg.RetryMax)) {
			return false
		}
	}
}

// keepRegistered passes the TTL check or looks the registration up until
// ctx ends, registering again when the agent forgot the instance.
func (r *Registration) keepRegistered(ctx context.Context) {
	interval := r.cfg.TTL / 3
	if r.cfg.HTTPCheck != "" {
		interval = r.cfg.ResyncInterval
	}
	failures := 0
	// A TTL check is passed right after each registration too: the
	// registration asks for a passing check, but an agent that ignores
	// Status would leave it critical for TTL/3.
	passNow := r.cfg.HTTPCheck == ""
	for {
		wait := interval
		switch {
		case failures > 0:
			wait = r.retryDelay(failures, interval)
		case passNow:
			wait = 0
		}
		passNow = false
		if !r.sleep(ctx, wait) {
			return
		}
		err := r.keepAlive(ctx)
		if errors.Is(err, ErrNotRegistered) {
			r.logger.InfoContext(ctx, "agent forgot the instance, registering again", "err", err)
			if err = r.Register(ctx); err == nil {
				passNow = r.cfg.HTTPCheck == ""
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			r.logger.WarnContext(ctx, "keeping registration alive failed", "err", err, "consecutive_failures", failures)
			continue
		}
		if failures > 0 {
			r.logger.InfoContext(ctx, "registration alive again", "after_failures", failures)
		}
		failures = 0
	}
}

func (r *Registration) keepAlive(ctx context.Context) error {
	if r.cfg.HTTPCheck != "" {
		return r.lookup(ctx)
	}
	return r.Pass(ctx)
}

// retryDelay is the pause after the n-th consecutive failure, uniform in
// the upper half of a ceiling that doubles from RetryMin to limit.
func (r *Registration) retryDelay(failures int, limit time.Duration) time.Duration {
	ceil := retry.Backoff{Base: min(r.cfg.RetryMin, limit), Max: min(r.cfg.RetryMax, limit)}.Ceiling(failures)
	return ceil/2 + time.Duration(rand.Int64N(int64(ceil/2)+1))
}

// sleep waits d or until ctx ends, reporting whether d elapsed.
func (r *Registration) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-r.clock.After(d):
		return true
	}
}
