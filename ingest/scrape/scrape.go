package scrape

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	promscrape "github.com/prometheus/prometheus/scrape"
	promstorage "github.com/prometheus/prometheus/storage"

	// The service discovery mechanisms Vigil supports, beside
	// static_configs. discovery/install would pull in every mechanism
	// (and client-go).
	_ "github.com/prometheus/prometheus/discovery/consul"
	_ "github.com/prometheus/prometheus/discovery/dns"
	_ "github.com/prometheus/prometheus/discovery/file"

	"github.com/vigil-obs/vigil/storage/postgres/leader"
)

// LeaderKey is the advisory lock held by the replica that scrapes
// ("vigil" + "scr").
const LeaderKey leader.Key = 0x76696769_6c736372

// DefaultDiscoveryReloadInterval is how long target changes are gathered
// before the scrape pools are updated, Prometheus's default.
const DefaultDiscoveryReloadInterval = 5 * time.Second

// Elector runs lead on one replica at a time (storage/postgres/leader's
// Elector). Run campaigns until ctx ends; whenever this replica leads it
// calls lead with a context cancelled when leadership is lost or ctx
// ends, and waits for lead to return before campaigning again. It
// returns nil once ctx ends.
type Elector interface {
	Run(ctx context.Context, lead func(ctx context.Context) error) error
}

// Options are the Manager's dependencies.
type Options struct {
	// Appendable receives every scraped sample, the synthetic series
	// (up, scrape_duration_seconds, …) and staleness markers: Vigil's
	// metric pipeline. Required.
	Appendable promstorage.AppendableV2
	// Jobs are scrape jobs of cmd/vigil's own, beside the configured
	// ones (RegistryJob). Each starts from a copy of
	// promconfig.DefaultScrapeConfig; New completes them with the
	// defaults of DefaultGlobalConfig, in place. Reload keeps them.
	Jobs []*promconfig.ScrapeConfig
	// Elector decides which replica scrapes; nil means this one, always.
	Elector Elector
	// Logger receives the scrape manager's logs; nil discards.
	Logger *slog.Logger
	// Registerer receives the vigil_scrape_* metrics and Prometheus's
	// own (prometheus_target_*, prometheus_sd_*); nil registers none.
	Registerer prometheus.Registerer
	// DiscoveryReloadInterval is how long target changes are gathered
	// before they reach the scrape pools (DefaultDiscoveryReloadInterval
	// when zero); it also bounds how long a new leader waits for its
	// first targets.
	DiscoveryReloadInterval time.Duration
	// Now is the clock of reload times; nil is time.Now.
	Now func() time.Time
}

// Status is the outcome of the last reload, and whether this replica
// scrapes.
type Status struct {
	// LastReload is when the last reload was attempted.
	LastReload time.Time
	// Success is whether it succeeded; a failed reload leaves the
	// previous jobs running.
	Success bool
	// Error is why it failed; empty on success.
	Error string
	// Jobs are the names of the running jobs, sorted.
	Jobs []string
	// Leader is whether this replica scrapes.
	Leader bool
}

// Manager scrapes Prometheus targets with Prometheus's own scrape and
// discovery managers while this replica leads, and reloads its
// configuration file on demand. Its methods are safe for concurrent use.
type Manager struct {
	cfg       Config
	opts      Options
	logger    *slog.Logger
	reg       prometheus.Registerer // never nil
	sdMetrics *discovery.SDMetrics
	fixed     []*promconfig.ScrapeConfig // the inline and built-in jobs, completed once
	metrics   managerMetrics
	interval  time.Duration

	// onLeader, when set, is told when leadership begins (once the
	// managers run) and ends (once they stopped).
	onLeader func(leading bool)

	updateMu sync.Mutex // serialises reloads and leadership changes

	mu      sync.RWMutex
	current *promconfig.Config
	running *running // non-nil while leading
	status  Status
}

// running is one leadership term's managers.
type running struct {
	scrape    *promscrape.Manager
	discovery *discovery.Manager
}

type managerMetrics struct {
	reloadFailures prometheus.Counter
	reloadSuccess  prometheus.Gauge
	reloadTime     prometheus.Gauge
	leader         prometheus.Gauge
}

func newManagerMetrics(reg prometheus.Registerer) (managerMetrics, error) {
	m := managerMetrics{
		reloadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_scrape_reload_failures_total",
			Help: "Reloads of the scrape configuration that failed and left the previous jobs running.",
		}),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_scrape_last_reload_successful",
			Help: "Whether the last reload of the scrape configuration succeeded (1) or not (0).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_scrape_last_reload_success_timestamp_seconds",
			Help: "When the scrape configuration was last reloaded successfully.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_scrape_leader",
			Help: "Whether this replica scrapes the targets (1) or not (0).",
		}),
	}
	for _, c := range []prometheus.Collector{m.reloadFailures, m.reloadSuccess, m.reloadTime, m.leader} {
		if err := reg.Register(c); err != nil {
			return m, fmt.Errorf("register scrape metrics: %w", err)
		}
	}
	return m, nil
}

// New returns a manager of cfg's jobs and opts.Jobs. It reads the
// configuration file once, so an invalid file is an error here, as at
// Prometheus's start; later reloads keep the previous jobs instead.
// Nothing is discovered or scraped before Run.
func New(cfg Config, opts Options) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Appendable == nil {
		return nil, errors.New("scrape: an appendable is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	reg := opts.Registerer
	if reg == nil {
		// Prometheus's managers need a registerer: a private one.
		reg = prometheus.NewRegistry()
	}
	interval := opts.DiscoveryReloadInterval
	if interval <= 0 {
		interval = DefaultDiscoveryReloadInterval
	}
	m := &Manager{
		cfg:      cfg,
		opts:     opts,
		logger:   opts.Logger.With("component", "scrape"),
		reg:      reg,
		interval: interval,
	}
	g := cfg.global()
	for _, sc := range cfg.ScrapeConfigs {
		if err := sc.Validate(g); err != nil {
			return nil, fmt.Errorf("scrape.scrape_configs: %w", err)
		}
		m.fixed = append(m.fixed, sc)
	}
	for _, sc := range opts.Jobs {
		if sc == nil {
			return nil, errors.New("scrape: empty built-in job")
		}
		if err := sc.Validate(DefaultGlobalConfig()); err != nil {
			return nil, fmt.Errorf("scrape: built-in job: %w", err)
		}
		m.fixed = append(m.fixed, sc)
	}
	current, err := m.load()
	if err != nil {
		return nil, err
	}
	// Registered only once the configuration loads, so that a caller
	// may retry.
	if m.sdMetrics, err = discovery.CreateAndRegisterSDMetrics(reg); err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	if m.metrics, err = newManagerMetrics(reg); err != nil {
		return nil, err
	}
	now := opts.Now()
	m.current = current
	m.status = Status{LastReload: now, Success: true, Jobs: jobNames(current)}
	m.metrics.reloadSuccess.Set(1)
	m.metrics.reloadTime.Set(float64(now.Unix()))
	return m, nil
}

// load reads the configuration file and returns the full configuration:
// the file's jobs, then the inline ones, then the built-in ones.
func (m *Manager) load() (*promconfig.Config, error) {
	// An empty document: Prometheus's defaults, marked as loaded, which
	// the scrape manager requires.
	out, err := promconfig.Load("", slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	out.GlobalConfig = m.cfg.global()
	if m.cfg.ConfigFile != "" {
		fc, err := LoadFile(m.cfg.ConfigFile, m.logger)
		if err != nil {
			return nil, err
		}
		out.GlobalConfig = fc.GlobalConfig
		out.ScrapeConfigs = append(out.ScrapeConfigs, fc.ScrapeConfigs...)
	}
	out.ScrapeConfigs = append(out.ScrapeConfigs, m.fixed...)
	seen := map[string]bool{}
	for _, sc := range out.ScrapeConfigs {
		if seen[sc.JobName] {
			return nil, fmt.Errorf("scrape: found multiple scrape configs with job name %q", sc.JobName)
		}
		seen[sc.JobName] = true
	}
	return out, nil
}

func jobNames(cfg *promconfig.Config) []string {
	names := make([]string, 0, len(cfg.ScrapeConfigs))
	for _, sc := range cfg.ScrapeConfigs {
		names = append(names, sc.JobName)
	}
	slices.Sort(names)
	return names
}

// sdConfigs returns the discovery configuration of every job, by job
// name, as Prometheus hands it to its discovery manager.
func sdConfigs(cfg *promconfig.Config) map[string]discovery.Configs {
	out := make(map[string]discovery.Configs, len(cfg.ScrapeConfigs))
	for _, sc := range cfg.ScrapeConfigs {
		out[sc.JobName] = sc.ServiceDiscoveryConfigs
	}
	return out
}

// Run discovers and scrapes the targets while this replica leads (always
// without an Elector), until ctx ends. It returns once its goroutines
// have ended: nil when ctx ends, or the elector's or the scrape
// manager's error.
func (m *Manager) Run(ctx context.Context) error {
	var err error
	if m.opts.Elector == nil {
		err = m.lead(ctx)
	} else {
		err = m.opts.Elector.Run(ctx, m.lead)
	}
	if err != nil {
		return fmt.Errorf("scrape: %w", err)
	}
	return nil
}

// lead runs fresh discovery and scrape managers until ctx ends. A
// manager that stops writes no end-of-run staleness markers (as when
// Prometheus shuts down): the next leader carries on with the same
// series.
func (m *Manager) lead(ctx context.Context) error {
	dctx, dcancel := context.WithCancel(ctx)
	defer dcancel()
	dm := discovery.NewManager(dctx, m.logger, m.reg, m.sdMetrics, discovery.Name("scrape"), discovery.Updatert(m.interval))
	if dm == nil {
		// NewManager logged why: its metrics could not be registered.
		return errors.New("start service discovery")
	}
	defer dm.UnregisterMetrics()
	sm, err := promscrape.NewManager(&promscrape.Options{
		DiscoveryReloadInterval:  model.Duration(m.interval),
		DiscoveryReloadOnStartup: true,
	}, m.logger, nil, nil, m.opts.Appendable, m.reg)
	if err != nil {
		return fmt.Errorf("start scraping: %w", err)
	}
	defer sm.UnregisterMetrics()

	m.updateMu.Lock()
	m.mu.RLock()
	cfg := m.current
	m.mu.RUnlock()
	if err := m.apply(sm, dm, cfg); err != nil {
		m.updateMu.Unlock()
		sm.Stop()
		return fmt.Errorf("start scraping: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = dm.Run() })
	wg.Go(func() { _ = sm.Run(dm.SyncCh()) })
	m.mu.Lock()
	m.running = &running{scrape: sm, discovery: dm}
	m.status.Leader = true
	m.mu.Unlock()
	m.metrics.leader.Set(1)
	m.updateMu.Unlock()
	m.logger.InfoContext(ctx, "scraping started", "jobs", len(cfg.ScrapeConfigs))
	if m.onLeader != nil {
		m.onLeader(true)
	}

	<-ctx.Done()

	m.updateMu.Lock()
	m.mu.Lock()
	m.running = nil
	m.status.Leader = false
	m.mu.Unlock()
	m.metrics.leader.Set(0)
	sm.Stop()
	dcancel()
	m.updateMu.Unlock()
	wg.Wait()
	m.logger.Info("scraping stopped")
	if m.onLeader != nil {
		m.onLeader(false)
	}
	return nil
}

// apply hands cfg to the scrape manager, then its discovery to the
// discovery manager, in Prometheus's order.
func (m *Manager) apply(sm *promscrape.Manager, dm *discovery.Manager, cfg *promconfig.Config) error {
	if err := sm.ApplyConfig(cfg); err != nil {
		return fmt.Errorf("apply scrape config: %w", err)
	}
	if err := dm.ApplyConfig(sdConfigs(cfg)); err != nil {
		return fmt.Errorf("apply discovery config: %w", err)
	}
	return nil
}

// Reload reads the configuration file again (as SIGHUP and POST
// /-/reload do). When it is invalid, the previous jobs keep running and
// the error is returned, counted in vigil_scrape_reload_failures_total,
// kept in Status and logged here (so callers answer with it without
// logging it again). Targets whose job did not change keep being
// scraped without a gap. Safe to call whether or not this replica leads.
func (m *Manager) Reload(ctx context.Context) error {
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	cfg, err := m.load()
	if err == nil {
		m.mu.RLock()
		r := m.running
		m.mu.RUnlock()
		if r != nil {
			err = m.apply(r.scrape, r.discovery, cfg)
		}
	}
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status.LastReload = now
	if err != nil {
		m.status.Success = false
		m.status.Error = err.Error()
		m.metrics.reloadFailures.Inc()
		m.metrics.reloadSuccess.Set(0)
		m.logger.ErrorContext(ctx, "scrape config reload failed, previous jobs kept", "err", err)
		return err
	}
	m.current = cfg
	m.status.Success = true
	m.status.Error = ""
	m.status.Jobs = jobNames(cfg)
	m.metrics.reloadSuccess.Set(1)
	m.metrics.reloadTime.Set(float64(now.Unix()))
	m.logger.InfoContext(ctx, "scrape config reloaded", "jobs", len(cfg.ScrapeConfigs))
	return nil
}

// Status returns the outcome of the last reload and whether this replica
// scrapes. The returned value is a copy.
func (m *Manager) Status() Status {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := m.status
	s.Jobs = slices.Clone(s.Jobs)
	return s
}

// Leader reports whether this replica scrapes now.
func (m *Manager) Leader() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.running != nil
}

// scrapeManager returns the running scrape manager, nil when this
// replica does not lead.
func (m *Manager) scrapeManager() *promscrape.Manager {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.running == nil {
		return nil
	}
	return m.running.scrape
}

// TargetsActive returns the targets being scraped by job name; empty
// when this replica does not lead (another one scrapes). The targets are
// Prometheus's, live: their health and last scrape change as they are
// scraped.
func (m *Manager) TargetsActive() map[string][]*promscrape.Target {
	if sm := m.scrapeManager(); sm != nil {
		return sm.TargetsActive()
	}
	return map[string][]*promscrape.Target{}
}

// TargetsDropped returns the targets dropped by relabelling by job name,
// up to each job's keep_dropped_targets; empty when this replica does
// not lead.
func (m *Manager) TargetsDropped() map[string][]*promscrape.Target {
	if sm := m.scrapeManager(); sm != nil {
		return sm.TargetsDropped()
	}
	return map[string][]*promscrape.Target{}
}

// TargetsDroppedCounts returns how many targets relabelling dropped, by
// job name, whether kept in TargetsDropped or not; empty when this
// replica does not lead.
func (m *Manager) TargetsDroppedCounts() map[string]int {
	if sm := m.scrapeManager(); sm != nil {
		return sm.TargetsDroppedCounts()
	}
	return map[string]int{}
}
