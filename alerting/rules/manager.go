package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	prom "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/storage"
)

// Elector runs lead on one replica at a time (storage/postgres/leader's
// Elector). Run campaigns until ctx ends; whenever this replica leads it
// calls lead with a context cancelled when leadership is lost or ctx
// ends, and waits for lead to return before campaigning again. It
// returns nil once ctx ends.
type Elector interface {
	Run(ctx context.Context, lead func(ctx context.Context) error) error
}

// NotifyFunc receives the alerts due to be sent after an evaluation of
// one alerting rule: firing alerts every resend delay and resolved ones
// for 15 minutes after they resolve, as Prometheus sends them to
// Alertmanager. It is never called with an empty slice. It is called
// from the rule groups' goroutines, concurrently for different groups,
// and must not block for long: the group waits for it. The alerts are
// the callee's to keep.
type NotifyFunc func(ctx context.Context, alerts []*notifier.Alert)

// Options are the Manager's dependencies.
type Options struct {
	// Engine evaluates every rule expression, with Vigil's limits
	// (InstantQuery). Required.
	Engine *promql.Engine
	// Queryable is read to restore alerts' `for` state from
	// ALERTS_FOR_STATE; nil means Engine.Queryable().
	Queryable promstorage.Queryable
	// Appendable receives recorded series and the ALERTS and
	// ALERTS_FOR_STATE series. Required.
	Appendable promstorage.AppendableV2
	// Notify receives alerts to send; nil drops them.
	Notify NotifyFunc
	// Logger receives the evaluation's logs; nil discards.
	Logger *slog.Logger
	// Registerer receives the vigil_rules_* metrics and Prometheus's
	// prometheus_rule_* metrics; nil registers none.
	Registerer prometheus.Registerer
	// Elector decides which replica evaluates; nil means this one,
	// always.
	Elector Elector
	// Now is the clock of reload times and of follower queries; nil is
	// time.Now. Evaluation ticks follow Prometheus's own timer.
	Now func() time.Time
	// States shares the groups' evaluation state between replicas: the
	// evaluating one writes each group's after every evaluation, the
	// others answer RuleGroups and ActiveAlerts from it. nil keeps it in
	// memory: other replicas then show the rules unevaluated.
	States StateStore
}

// StateStore holds the evaluation state of rule groups for every replica
// (storage/postgres/alertstore's Store).
type StateStore interface {
	PutRuleGroupState(ctx context.Context, file, group string, state []byte) error
	RuleGroupStates(ctx context.Context) ([]storage.RuleGroupState, error)
}

// Manager evaluates Prometheus rule files over Vigil's metric store while
// this replica leads, and reloads them on demand and when they change.
// Its methods are safe for concurrent use.
type Manager struct {
	cfg         Config
	opts        Options
	logger      *slog.Logger
	parser      parser.Parser
	externalURL *url.URL
	extLabels   labels.Labels
	ruleMetrics *promrules.Metrics
	metrics     managerMetrics
	loader      *snapshotLoader // the rule set the running manager loads

	// iterate evaluates a group at one tick; tests replace it to drive
	// evaluation by hand.
	iterate promrules.GroupEvalIterationFunc
	// onLeader, when set, is told when leadership begins and ends
	// (after the running manager is in place, after it is gone).
	onLeader func(leading bool)

	updateMu sync.Mutex // serialises reloads and leadership changes

	mu     sync.RWMutex
	set    ruleSet
	prom   *promrules.Manager // non-nil while leading
	status Status
}

// Status is the outcome of the last reload, for the UI and the API.
type Status struct {
	// LastReload is when the last reload was attempted.
	LastReload time.Time
	// Success is whether it succeeded; a failed reload leaves the
	// previous rules running.
	Success bool
	// Error is why it failed; empty on success.
	Error string
	// Files are the rule files of the running rule set (the shipped
	// rules as DefaultRulesFile).
	Files []string
	// Leader is whether this replica is evaluating the rules.
	Leader bool
}

type managerMetrics struct {
	reloadFailures prometheus.Counter
	reloadSuccess  prometheus.Gauge
	reloadTime     prometheus.Gauge
	leader         prometheus.Gauge
}

func newManagerMetrics(reg prometheus.Registerer) managerMetrics {
	m := managerMetrics{
		reloadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_rules_reload_failures_total",
			Help: "Reloads of the rule files that failed and left the previous rules running.",
		}),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rules_last_reload_successful",
			Help: "Whether the last reload of the rule files succeeded (1) or not (0).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rules_last_reload_success_timestamp_seconds",
			Help: "When the rule files were last reloaded successfully.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rules_leader",
			Help: "Whether this replica evaluates the rules (1) or not (0).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.reloadFailures, m.reloadSuccess, m.reloadTime, m.leader)
	}
	return m
}

// New returns a manager of cfg's rules. It loads them once, so an
// invalid rule file is an error here, as at Prometheus's start; later
// reloads keep the previous rules instead. Nothing is evaluated before
// Run.
func New(cfg Config, opts Options) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if opts.Engine == nil {
		return nil, errors.New("rules: an engine is required")
	}
	if opts.Appendable == nil {
		return nil, errors.New("rules: an appendable is required")
	}
	if opts.Queryable == nil {
		opts.Queryable = opts.Engine.Queryable()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// Templates may call pathPrefix and externalURL: never nil.
	extURL := &url.URL{}
	if cfg.ExternalURL != "" {
		u, err := url.Parse(cfg.ExternalURL)
		if err != nil {
			return nil, fmt.Errorf("rules.external_url: %w", err)
		}
		extURL = u
	}
	logger := opts.Logger.With("component", "rules")
	m := &Manager{
		cfg:         cfg,
		opts:        opts,
		logger:      logger,
		parser:      opts.Engine.Parser(),
		externalURL: extURL,
		extLabels:   labels.FromMap(cfg.ExternalLabels),
		iterate:     promrules.DefaultEvalIterationFunc,
	}
	set, err := m.loadSet()
	if err != nil {
		return nil, err
	}
	// Registered only once the rules load, so that a caller may retry.
	m.ruleMetrics = promrules.NewGroupMetrics(opts.Registerer)
	m.metrics = newManagerMetrics(opts.Registerer)
	m.loader = newSnapshotLoader(m.parser, logger, nil)
	m.loader.swap(set.contents)
	m.set = set
	m.status = Status{LastReload: opts.Now(), Success: true, Files: set.files}
	m.metrics.reloadSuccess.Set(1)
	m.metrics.reloadTime.Set(float64(opts.Now().Unix()))
	return m, nil
}

// Run evaluates the rules while this replica leads (always without an
// Elector) and reloads them when their files change, until ctx ends. It
// returns once its goroutines have ended: nil when ctx ends, or the
// elector's error.
func (m *Manager) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { m.watch(ctx) })
	var err error
	if m.opts.Elector == nil {
		err = m.lead(ctx)
	} else {
		err = m.opts.Elector.Run(ctx, m.lead)
	}
	cancel()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	return nil
}

// lead runs a fresh Prometheus rule manager until ctx ends. Being fresh,
// it restores alerts' `for` state from ALERTS_FOR_STATE after its groups'
// second evaluation, within the outage tolerance and grace period.
func (m *Manager) lead(ctx context.Context) error {
	pm := promrules.NewManager(m.managerOptions(ctx, m.loader, m.ruleMetrics))
	m.updateMu.Lock()
	m.mu.RLock()
	files := m.set.files
	m.mu.RUnlock()
	if err := pm.Update(time.Duration(m.cfg.EvaluationInterval), files, m.extLabels, m.cfg.ExternalURL, m.evaluate); err != nil {
		m.updateMu.Unlock()
		return fmt.Errorf("start rule evaluation: %w", err)
	}
	m.mu.Lock()
	m.prom = pm
	m.status.Leader = true
	m.mu.Unlock()
	m.metrics.leader.Set(1)
	m.updateMu.Unlock()
	if m.onLeader != nil {
		m.onLeader(true)
	}
	m.logger.InfoContext(ctx, "rule evaluation started", "files", len(files))

	done := make(chan struct{})
	go func() {
		defer close(done)
		pm.Run()
	}()
	<-ctx.Done()

	m.updateMu.Lock()
	m.mu.Lock()
	m.prom = nil
	m.status.Leader = false
	m.mu.Unlock()
	m.metrics.leader.Set(0)
	pm.Stop()
	m.updateMu.Unlock()
	<-done
	if m.onLeader != nil {
		m.onLeader(false)
	}
	m.logger.Info("rule evaluation stopped")
	return nil
}

func (m *Manager) managerOptions(ctx context.Context, loader promrules.GroupLoader, metrics *promrules.Metrics) *promrules.ManagerOptions {
	return &promrules.ManagerOptions{
		ExternalURL:     m.externalURL,
		QueryFunc:       m.query,
		NotifyFunc:      m.notify,
		Context:         ctx,
		AppendableV2:    m.opts.Appendable,
		Queryable:       m.opts.Queryable,
		Logger:          m.logger,
		OutageTolerance: time.Duration(m.cfg.OutageTolerance),
		ForGracePeriod:  time.Duration(m.cfg.ForGracePeriod),
		ResendDelay:     time.Duration(m.cfg.ResendDelay),
		GroupLoader:     loader,
		Metrics:         metrics,
		Parser:          m.parser,
	}
}

// Reload reads the rule files again (as SIGHUP and POST /-/reload do).
// When they are invalid, the previous rules keep running and the error
// is returned, counted in vigil_rules_reload_failures_total, kept in
// Status and logged here (so callers answer with it, /-/reload's status,
// without logging it again). Groups whose rules did not change keep
// their state. Safe to call whether or not this replica leads.
func (m *Manager) Reload(ctx context.Context) error {
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	set, err := m.loadSet()
	if err == nil {
		m.mu.RLock()
		pm := m.prom
		m.mu.RUnlock()
		old := m.loader.swap(set.contents)
		if pm != nil {
			if uerr := pm.Update(time.Duration(m.cfg.EvaluationInterval), set.files, m.extLabels, m.cfg.ExternalURL, m.evaluate); uerr != nil {
				m.loader.swap(old)
				err = fmt.Errorf("reload rules: %w", uerr)
			}
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
		m.logger.ErrorContext(ctx, "rules reload failed, previous rules kept", "err", err)
		return err
	}
	m.set = set
	m.status.Success = true
	m.status.Error = ""
	m.status.Files = set.files
	m.metrics.reloadSuccess.Set(1)
	m.metrics.reloadTime.Set(float64(now.Unix()))
	m.logger.InfoContext(ctx, "rules reloaded", "files", len(set.files))
	return nil
}

// Status returns the outcome of the last reload and whether this replica
// leads. The returned value is a copy.
func (m *Manager) Status() Status {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := m.status
	s.Files = slices.Clone(s.Files)
	return s
}

// LastReload returns when the rules were last reloaded and its error,
// nil on success.
func (m *Manager) LastReload() (time.Time, error) {
	s := m.Status()
	if s.Success {
		return s.LastReload, nil
	}
	return s.LastReload, errors.New(s.Error)
}

// query evaluates a rule's expression through Vigil's engine, so that
// rules are held to the same limits as any query; like
// rules.EngineQueryFunc, a scalar becomes a one-sample vector.
func (m *Manager) query(ctx context.Context, qs string, t time.Time) (prom.Vector, error) {
	q, err := m.opts.Engine.InstantQuery(ctx, qs, t, promql.QueryOptions{})
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	switch v := res.Value.(type) {
	case prom.Vector:
		return v, nil
	case prom.Scalar:
		return prom.Vector{prom.Sample{T: v.T, F: v.V, Metric: labels.EmptyLabels()}}, nil
	default:
		return nil, fmt.Errorf("rule result is a %s, not a vector or scalar", res.Value.Type())
	}
}

// notify converts rule alerts into notifier alerts as Prometheus does
// before sending them to Alertmanager: a firing alert ends at its
// ValidUntil, so that it resolves by itself if evaluation stops.
func (m *Manager) notify(ctx context.Context, expr string, alerts ...*promrules.Alert) {
	if len(alerts) == 0 || m.opts.Notify == nil {
		return
	}
	link := m.GeneratorURL(expr)
	out := make([]*notifier.Alert, 0, len(alerts))
	for _, a := range alerts {
		na := &notifier.Alert{
			StartsAt:     a.FiredAt,
			Labels:       a.Labels,
			Annotations:  a.Annotations,
			GeneratorURL: link,
		}
		if !a.ResolvedAt.IsZero() {
			na.EndsAt = a.ResolvedAt
		} else {
			na.EndsAt = a.ValidUntil
		}
		out = append(out, na)
	}
	m.opts.Notify(ctx, out)
}

// ExplorePath is the metrics explorer's page in Vigil's UI; its q
// parameter holds the expression and tab=table shows an instant query.
const ExplorePath = "/explore"

// GeneratorURL returns the link of an alert of expr: the metrics explorer
// showing the expression as a table, under the external URL.
func (m *Manager) GeneratorURL(expr string) string {
	v := url.Values{}
	v.Set("q", expr)
	v.Set("tab", "table")
	return strings.TrimSuffix(m.cfg.ExternalURL, "/") + ExplorePath + "?" + v.Encode()
}

// watch reloads the rules whenever the content of the files their
// patterns match changes (a file added, removed or edited), checking
// every WatchInterval, until ctx ends.
func (m *Manager) watch(ctx context.Context) {
	m.mu.RLock()
	last := fingerprintOf(m.set.files, m.set.contents)
	m.mu.RUnlock()
	t := time.NewTicker(time.Duration(m.cfg.WatchInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		last = m.poll(ctx, last)
	}
}

// poll reloads the rules if their files' fingerprint differs from last,
// and returns the fingerprint now. A failed reload is not retried until
// the files change again.
func (m *Manager) poll(ctx context.Context, last string) string {
	fp := m.cfg.fingerprint()
	if fp == last {
		return last
	}
	// Reload logs and records its own failure.
	_ = m.Reload(ctx)
	return fp
}
