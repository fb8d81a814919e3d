package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/registrystore"
)

// The registry's data, as the store keeps it.
type (
	// Service is one registered service instance.
	Service = registrystore.Service
	// Check is one check of a service with its current state.
	Check = registrystore.Check
	// Definition is what a check does.
	Definition = registrystore.Definition
	// Registration is a service with its checks.
	Registration = registrystore.Registration
	// State is the whole registry at one index.
	State = registrystore.State
	// Transition is one change of a check's status.
	Transition = registrystore.Transition
)

// Check kinds and statuses.
const (
	KindHTTP        = registrystore.KindHTTP
	KindTCP         = registrystore.KindTCP
	KindGRPC        = registrystore.KindGRPC
	KindTTL         = registrystore.KindTTL
	KindMaintenance = registrystore.KindMaintenance

	StatusPassing  = registrystore.StatusPassing
	StatusWarning  = registrystore.StatusWarning
	StatusCritical = registrystore.StatusCritical
	// StatusMaintenance is the status of a service in maintenance as the
	// health series report it; its check's status is critical.
	StatusMaintenance = "maintenance"
)

// MaintenancePrefix starts the ID of a service's maintenance check, which
// is followed by the service ID (as Consul names it).
const MaintenancePrefix = "_service_maintenance:"

// defaultMaintenanceReason is Consul's note for maintenance without a
// reason.
const defaultMaintenanceReason = "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."

// Errors a caller answers as the client's fault. Errors wrapping
// ErrInvalid name the field at fault.
var (
	ErrInvalid = errors.New("invalid registration")
	// ErrNotTTL is returned when a check that is not a TTL check is
	// updated as one.
	ErrNotTTL = registrystore.ErrNotTTL
)

// Store is the registry's state (storage/postgres/registrystore).
type Store interface {
	Register(ctx context.Context, r registrystore.Registration, now time.Time) (int64, error)
	PutCheck(ctx context.Context, c registrystore.Check, force bool, now time.Time) (int64, error)
	DeleteCheck(ctx context.Context, id string) (int64, error)
	Deregister(ctx context.Context, id string) (int64, error)
	RecordResult(ctx context.Context, r registrystore.Result) (registrystore.Recorded, error)
	UpdateTTL(ctx context.Context, r registrystore.Result) (registrystore.Recorded, error)
	ExpireTTL(ctx context.Context, now time.Time, output string) ([]registrystore.Transition, error)
	DeregisterCritical(ctx context.Context, now time.Time) ([]string, error)
	Index(ctx context.Context) (int64, error)
	State(ctx context.Context) (registrystore.State, error)
	History(ctx context.Context, checkID string, limit int) ([]registrystore.Transition, error)
	DeleteHistoryBefore(ctx context.Context, t time.Time) (int64, error)
	Follow(ctx context.Context, poll time.Duration, onIndex func(int64), onErr func(error)) error
}

// Elector runs lead while this replica holds the registry's lock
// (storage/postgres/leader.Elector with KeyChecks).
type Elector interface {
	Run(ctx context.Context, lead func(ctx context.Context) error) error
}

// Options are the Registry's dependencies.
type Options struct {
	Store Store // required
	// Elector chooses the one replica that runs the checks; nil runs
	// them on this replica, which is right only when it is alone.
	Elector Elector
	// Appendable receives the health series (the metric pipeline); nil
	// writes none.
	Appendable promstorage.AppendableV2
	Logger     *slog.Logger          // nil = discard
	Registerer prometheus.Registerer // nil = no self-metrics
	// Now stamps check results, TTL deadlines and status changes, and
	// decides TTL expiry and DeregisterCriticalServiceAfter; nil =
	// time.Now. The checker's timers run on the real clock.
	Now func() time.Time
}

// Registry is the service registry: services and their checks in the
// Store, the health checks run on the elected replica, and the change
// index that blocking queries wait on. Its methods are safe for
// concurrent use.
type Registry struct {
	cfg     Config
	store   Store
	elector Elector
	app     promstorage.AppendableV2
	logger  *slog.Logger
	now     func() time.Time
	m       *selfMetrics
	checker *checker

	mu      sync.Mutex
	index   int64         // the highest index known
	changed chan struct{} // closed when index rises

	stopping chan struct{} // closed when Run's context ends
	stopOnce sync.Once

	loadMu   sync.Mutex // one state load at a time
	cacheMu  sync.Mutex
	cache    *State
	cachedAt time.Time
}

// maxCacheAge bounds how long a cached state is served without a sign of
// change, in case notifications stall.
const maxCacheAge = 5 * time.Second

// New returns a Registry; cfg must be valid.
func New(cfg Config, opts Options) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Store == nil {
		return nil, errors.New("registry: a store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newSelfMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	r := &Registry{cfg: cfg, store: opts.Store, elector: opts.Elector, app: opts.Appendable,
		logger: opts.Logger.With("component", "registry"), now: opts.Now, m: m, changed: make(chan struct{}), stopping: make(chan struct{})}
	r.checker = newChecker(r)
	return r, nil
}

// Config returns the registry's configuration.
func (r *Registry) Config() Config { return r.cfg }

// Run follows the change index (LISTEN/NOTIFY) and, while this replica is
// elected, runs the health checks, until ctx ends. When ctx ends, waiting
// blocking queries return at once (so that an HTTP server's Shutdown is
// not held up by them), and Run returns nil once its goroutines have
// ended. Run must be called at most once.
func (r *Registry) Run(ctx context.Context) error {
	context.AfterFunc(ctx, func() { r.stopOnce.Do(func() { close(r.stopping) }) })
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = r.store.Follow(ctx, r.cfg.PollInterval, r.advance, func(err error) {
			r.logger.WarnContext(ctx, "follow registry changes", "err", err)
		})
	})
	wg.Go(func() {
		if r.elector == nil {
			_ = r.checker.lead(ctx)
			return
		}
		_ = r.elector.Run(ctx, r.checker.lead)
	})
	wg.Wait()
	return nil
}

// advance records that the index reached idx, waking the waiters when it
// rose.
func (r *Registry) advance(idx int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if idx > r.index {
		r.index = idx
		close(r.changed)
		r.changed = make(chan struct{})
	}
}

// Index returns the highest change index this replica knows.
func (r *Registry) Index() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.index
}

// changes returns the current index and a channel closed when it rises.
func (r *Registry) changes() (int64, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.index, r.changed
}

// Wait blocks until the change index is above index, or wait has passed,
// or ctx ends, or the Registry stops, as a Consul blocking query does. Index 0 does not block;
// an index above the registry's (a client that saw another database)
// returns at once so that the client starts again.
func (r *Registry) Wait(ctx context.Context, index int64, wait time.Duration) {
	if index <= 0 || wait <= 0 {
		return
	}
	cur, ch := r.changes()
	if index > cur {
		// This replica may lag: ask the database before calling the
		// client's index from the future.
		if idx, err := r.store.Index(ctx); err == nil {
			r.advance(idx)
		}
		if cur, ch = r.changes(); index > cur || cur > index {
			return
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for cur <= index {
		select {
		case <-ctx.Done():
			return
		case <-r.stopping:
			return
		case <-t.C:
			return
		case <-ch:
			cur, ch = r.changes()
		}
	}
}

// State returns the registry's state: from a cache while no change is
// known since it was read. The returned state is shared: callers must not
// modify it.
func (r *Registry) State(ctx context.Context) (*State, error) {
	if st := r.cached(); st != nil {
		return st, nil
	}
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	if st := r.cached(); st != nil {
		return st, nil
	}
	st, err := r.store.State(ctx)
	if err != nil {
		return nil, err
	}
	r.advance(st.Index)
	r.cacheMu.Lock()
	r.cache, r.cachedAt = &st, time.Now()
	r.cacheMu.Unlock()
	return &st, nil
}

// cached returns the cached state when it is current.
func (r *Registry) cached() *State {
	idx := r.Index()
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if r.cache == nil || r.cache.Index < idx || time.Since(r.cachedAt) > maxCacheAge {
		return nil
	}
	return r.cache
}

// Register stores a service with its checks; the checks' IDs and names
// must be set. It returns the new index, or an error wrapping ErrInvalid
// that names the field at fault.
func (r *Registry) Register(ctx context.Context, reg Registration) (int64, error) {
	if err := r.validate(&reg); err != nil {
		return 0, err
	}
	idx, err := r.store.Register(ctx, reg, r.now())
	if err != nil {
		return 0, err
	}
	r.advance(idx)
	return idx, nil
}

// Deregister removes a service and its checks; storage.ErrNotFound when
// there is no such service.
func (r *Registry) Deregister(ctx context.Context, serviceID string) (int64, error) {
	idx, err := r.store.Deregister(ctx, serviceID)
	if err != nil {
		return 0, err
	}
	r.advance(idx)
	return idx, nil
}

// UpdateTTL sets the status and output of a TTL check, restarting its
// TTL. status must be passing, warning or critical; storage.ErrNotFound
// for an unknown check, ErrNotTTL for a check of another kind.
func (r *Registry) UpdateTTL(ctx context.Context, checkID, status, output string) (int64, error) {
	if !validStatus(status) {
		return 0, fmt.Errorf("%w: Status must be passing, warning or critical, not %q", ErrInvalid, status)
	}
	rec, err := r.store.UpdateTTL(ctx, registrystore.Result{CheckID: checkID, Status: status, Output: output, At: r.now()})
	if err != nil {
		return 0, err
	}
	r.advance(rec.Index)
	r.m.transitioned(rec.Transition)
	return rec.Index, nil
}

// SetMaintenance puts a service in maintenance (a critical check of kind
// maintenance, noting reason) or takes it out; storage.ErrNotFound when
// there is no such service.
func (r *Registry) SetMaintenance(ctx context.Context, serviceID string, enable bool, reason string) (int64, error) {
	id := MaintenancePrefix + serviceID
	if !enable {
		idx, err := r.store.DeleteCheck(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			// Not in maintenance: as Consul, succeed when the service
			// exists.
			st, serr := r.State(ctx)
			if serr != nil {
				return 0, serr
			}
			if FindService(st, serviceID) == nil {
				return 0, err
			}
			return st.Index, nil
		}
		if err != nil {
			return 0, err
		}
		r.advance(idx)
		return idx, nil
	}
	if reason == "" {
		reason = defaultMaintenanceReason
	}
	if err := validString("reason", reason, 1024); err != nil {
		return 0, err
	}
	idx, err := r.store.PutCheck(ctx, Check{ID: id, ServiceID: serviceID, Name: "Service Maintenance Mode", Notes: reason,
		Kind: KindMaintenance, Status: StatusCritical}, true, r.now())
	if err != nil {
		return 0, err
	}
	r.advance(idx)
	return idx, nil
}

// History returns the last limit status transitions of a check, newest
// first.
func (r *Registry) History(ctx context.Context, checkID string, limit int) ([]Transition, error) {
	return r.store.History(ctx, checkID, limit)
}

func validStatus(s string) bool {
	return s == StatusPassing || s == StatusWarning || s == StatusCritical
}

// Limits of a registration, as Consul's where it has them.
const (
	maxIDLen        = 256
	maxTags         = 64
	maxTagLen       = 256
	maxMetaPairs    = 64
	maxMetaKeyLen   = 128
	maxMetaValueLen = 512
	maxChecks       = 32
	maxHeaders      = 64
	maxTargetLen    = 2048
)

// validate checks a registration and fills its defaults.
func (r *Registry) validate(reg *Registration) error {
	s := &reg.Service
	if s.Name == "" {
		return fmt.Errorf("%w: Name is required", ErrInvalid)
	}
	if s.ID == "" {
		s.ID = s.Name
	}
	if err := validString("ID", s.ID, maxIDLen); err != nil {
		return err
	}
	if strings.HasPrefix(s.ID, MaintenancePrefix) {
		return fmt.Errorf("%w: ID must not start with %q", ErrInvalid, MaintenancePrefix)
	}
	if err := validString("Name", s.Name, maxIDLen); err != nil {
		return err
	}
	if err := validString("Address", s.Address, maxIDLen); err != nil {
		return err
	}
	if s.Port < 0 || s.Port > 65535 {
		return fmt.Errorf("%w: Port must be between 0 and 65535", ErrInvalid)
	}
	if len(s.Tags) > maxTags {
		return fmt.Errorf("%w: Tags: at most %d tags", ErrInvalid, maxTags)
	}
	for _, t := range s.Tags {
		if err := validString("Tags", t, maxTagLen); err != nil {
			return err
		}
	}
	if len(s.Meta) > maxMetaPairs {
		return fmt.Errorf("%w: Meta: at most %d pairs", ErrInvalid, maxMetaPairs)
	}
	for k, v := range s.Meta {
		if k == "" {
			return fmt.Errorf("%w: Meta: empty key", ErrInvalid)
		}
		if err := validString("Meta key", k, maxMetaKeyLen); err != nil {
			return err
		}
		if err := validString("Meta."+k, v, maxMetaValueLen); err != nil {
			return err
		}
	}
	if len(reg.Checks) > maxChecks {
		return fmt.Errorf("%w: Checks: at most %d checks", ErrInvalid, maxChecks)
	}
	seen := map[string]bool{}
	for i := range reg.Checks {
		c := &reg.Checks[i]
		c.ServiceID = s.ID
		if err := r.validateCheck(c); err != nil {
			return err
		}
		if seen[c.ID] {
			return fmt.Errorf("%w: Checks: duplicate CheckID %q", ErrInvalid, c.ID)
		}
		seen[c.ID] = true
	}
	return nil
}

func (r *Registry) validateCheck(c *Check) error {
	d := &c.Definition
	if err := validString("CheckID", c.ID, maxIDLen); err != nil {
		return err
	}
	if c.ID == "" || strings.HasPrefix(c.ID, MaintenancePrefix) {
		return fmt.Errorf("%w: CheckID %q is not allowed", ErrInvalid, c.ID)
	}
	if err := validString("Check.Name", c.Name, maxIDLen); err != nil {
		return err
	}
	if err := validString("Check.Notes", c.Notes, 1024); err != nil {
		return err
	}
	if err := validString("Check.Output", c.Output, 1<<16); err != nil {
		return err
	}
	if c.Status != "" && !validStatus(c.Status) {
		return fmt.Errorf("%w: Check.Status must be passing, warning or critical, not %q", ErrInvalid, c.Status)
	}
	kinds := 0
	for _, set := range []bool{d.HTTP != "", d.TCP != "", d.GRPC != "", d.TTL != 0} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return fmt.Errorf("%w: Check %q: exactly one of HTTP, TCP, GRPC and TTL must be set", ErrInvalid, c.ID)
	}
	if d.DeregisterCriticalServiceAfter < 0 {
		return fmt.Errorf("%w: Check.DeregisterCriticalServiceAfter must not be negative", ErrInvalid)
	}
	if d.TTL != 0 {
		c.Kind = KindTTL
		if d.TTL < r.cfg.MinCheckInterval {
			return fmt.Errorf("%w: Check.TTL must be at least %s", ErrInvalid, r.cfg.MinCheckInterval)
		}
		return nil
	}
	if d.Interval < r.cfg.MinCheckInterval {
		return fmt.Errorf("%w: Check.Interval must be at least %s", ErrInvalid, r.cfg.MinCheckInterval)
	}
	if d.Timeout < 0 {
		return fmt.Errorf("%w: Check.Timeout must not be negative", ErrInvalid)
	}
	if d.Timeout == 0 {
		d.Timeout = r.cfg.DefaultCheckTimeout
	}
	switch {
	case d.HTTP != "":
		c.Kind = KindHTTP
		if err := validString("Check.HTTP", d.HTTP, maxTargetLen); err != nil {
			return err
		}
		u, err := url.Parse(d.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: Check.HTTP must be an http or https URL", ErrInvalid)
		}
		if d.Method == "" {
			d.Method = "GET"
		}
		if err := validString("Check.Method", d.Method, 32); err != nil {
			return err
		}
		if strings.ContainsAny(d.Method, " \t\r\n") {
			return fmt.Errorf("%w: Check.Method %q", ErrInvalid, d.Method)
		}
		if len(d.Header) > maxHeaders {
			return fmt.Errorf("%w: Check.Header: at most %d headers", ErrInvalid, maxHeaders)
		}
		for k, vs := range d.Header {
			if err := validString("Check.Header", k, maxTagLen); err != nil {
				return err
			}
			for _, v := range vs {
				if err := validString("Check.Header."+k, v, maxTargetLen); err != nil {
					return err
				}
			}
		}
		if err := validString("Check.Body", d.Body, 1<<16); err != nil {
			return err
		}
	case d.TCP != "":
		c.Kind = KindTCP
		if err := validHostPort("Check.TCP", d.TCP); err != nil {
			return err
		}
	case d.GRPC != "":
		c.Kind = KindGRPC
		addr, _, _ := strings.Cut(d.GRPC, "/")
		if err := validString("Check.GRPC", d.GRPC, maxTargetLen); err != nil {
			return err
		}
		if err := validHostPort("Check.GRPC", addr); err != nil {
			return err
		}
	}
	return nil
}

func validHostPort(field, s string) error {
	if err := validString(field, s, maxTargetLen); err != nil {
		return err
	}
	if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
		return fmt.Errorf("%w: %s must be host:port", ErrInvalid, field)
	}
	return nil
}

// validString refuses what PostgreSQL's text columns and JSON cannot
// hold, and over-long values.
func validString(field, s string, maxLen int) error {
	switch {
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s must be valid UTF-8", ErrInvalid, field)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("%w: %s must not contain NUL", ErrInvalid, field)
	case len(s) > maxLen:
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalid, field, maxLen)
	}
	return nil
}

// FindService returns the service of st with id, or nil.
func FindService(st *State, id string) *Service {
	for i := range st.Services {
		if st.Services[i].ID == id {
			return &st.Services[i]
		}
	}
	return nil
}
