package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/api"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/labelset"
	"github.com/prometheus/alertmanager/nflog"
	amnotify "github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"
	yaml "go.yaml.in/yaml/v2"

	"github.com/vigil-obs/vigil/alerting/notify/robots"
	"github.com/vigil-obs/vigil/storage/postgres/alertstore"
)

// Intervals Alertmanager's own binary uses by default.
const (
	alertGCInterval             = 30 * time.Minute
	dispatchMaintenanceInterval = 30 * time.Second
)

// Options are the dependencies of a Notifier.
type Options struct {
	// Logger gets the notifier's logs; nil discards them.
	Logger *slog.Logger
	// Registerer gets Alertmanager's metrics and vigil_notify_…; nil
	// registers nothing.
	Registerer prometheus.Registerer
	// Store keeps silences, the notification log, posted alerts and the
	// history (required).
	Store Store
	// Elector decides which replica dispatches notifications; nil means
	// this one always does.
	Elector Elector
	// Now is the clock of the history and of Send; nil is time.Now.
	Now func() time.Time
}

// Notifier is Vigil's Alertmanager: Alertmanager's routing, grouping,
// inhibition, silences, notification log and receivers, with their state
// in the database. Every replica accepts alerts (Send, the v2 API) and
// silences; only the replica the Elector chooses dispatches. It is safe
// for concurrent use.
type Notifier struct {
	cfg     Config
	logger  *slog.Logger
	store   Store
	elector Elector
	now     func() time.Time
	metrics *metrics

	extURL     *url.URL
	silences   *silence.Silences
	silencer   *silence.Silencer
	nflog      *nflog.Log
	alerts     *sharedAlerts
	api        *api.API
	handler    http.Handler
	pipeline   *amnotify.PipelineBuilder
	dispatchM  *dispatch.DispatcherMetrics
	passiveM   *dispatch.DispatcherMetrics // of the dispatcher that only groups
	limiters   *robots.Limiters
	syncs      []*stateSync
	syncMu     sync.Mutex // held by syncOnce and maintain: a stateSync's merge position is theirs
	closeOnce  sync.Once
	reloadc    chan struct{} // a reload, to the dispatching replica's loop
	followc    chan struct{} // a reload or a change of leadership, to follow
	reloadMu   sync.Mutex    // serialises Reload
	current    atomic.Pointer[loaded]
	dispatcher atomic.Pointer[dispatch.Dispatcher]
	inhibitor  atomic.Pointer[inhibit.Inhibitor]

	statusMu sync.Mutex
	status   Status
}

// loaded is one applied configuration.
type loaded struct {
	conf       *config.Config
	tmpl       *template.Template
	routes     *dispatch.Route
	receivers  map[string][]amnotify.Integration
	infos      []ReceiverInfo
	intervener *timeinterval.Intervener
}

// Status tells where the configuration comes from and how its last load
// went.
type Status struct {
	// Source is the Alertmanager file, "webhooks" or "built-in log
	// receiver".
	Source string `json:"source"`
	// LastReload is when the configuration was last loaded (successfully
	// or not); LastSuccess when it last loaded successfully.
	LastReload  time.Time `json:"lastReload"`
	LastSuccess time.Time `json:"lastSuccess"`
	// Error is the error of the last load, "" when it succeeded.
	Error string `json:"error,omitempty"`
	// Leader tells whether this replica dispatches notifications.
	Leader bool `json:"leader"`
}

// New builds a Notifier and loads its configuration; the Alertmanager file
// must be valid. Nothing is dispatched before Run; Run, or Close when Run
// will not be called, releases what New allocates. The API handler answers
// from the start.
func New(cfg Config, opts Options) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("notify config: %w", err)
	}
	if opts.Store == nil {
		return nil, errors.New("notify: a Store is required")
	}
	cfg = cfg.withDefaults()
	n := &Notifier{
		cfg:     cfg,
		logger:  opts.Logger,
		store:   opts.Store,
		elector: opts.Elector,
		now:     opts.Now,
		reloadc: make(chan struct{}, 1),
		followc: make(chan struct{}, 1),
	}
	if n.logger == nil {
		n.logger = slog.New(slog.DiscardHandler)
	}
	n.logger = n.logger.With("component", "notify")
	if n.now == nil {
		n.now = time.Now
	}
	reg := opts.Registerer
	if reg == nil {
		// Alertmanager's packages need a registerer: give them one nobody
		// reads.
		reg = prometheus.NewRegistry()
	}
	n.metrics = newMetrics(reg)
	n.status.Source = cfg.source()
	var err error
	if n.extURL, err = externalURL(cfg.ExternalURL); err != nil {
		return nil, err
	}
	n.limiters = robots.NewLimiters(n.now)

	n.nflog, err = nflog.New(nflog.Options{Retention: cfg.Retention, Logger: n.logger.With("component", "nflog"), Metrics: reg})
	if err != nil {
		return nil, fmt.Errorf("notify: notification log: %w", err)
	}
	n.silences, err = silence.New(silence.Options{Retention: cfg.Retention, Logger: n.logger.With("component", "silences"), Metrics: reg})
	if err != nil {
		return nil, fmt.Errorf("notify: silences: %w", err)
	}
	n.syncs = []*stateSync{
		newStateSync(kindSilences, n.silences, n.store, n.logger, n.metrics),
		newStateSync(kindNflog, n.nflog, n.store, n.logger, n.metrics),
	}
	n.silencer = silence.NewSilencer(n.silences, n.logger, eventrecorder.Recorder{})
	n.pipeline = amnotify.NewPipelineBuilder(reg, featurecontrol.NoopFlags{}, eventrecorder.Recorder{})
	n.dispatchM = dispatch.NewDispatcherMetrics(false, reg, featurecontrol.NoopFlags{})
	n.passiveM = dispatch.NewDispatcherMetrics(false, nil, featurecontrol.NoopFlags{})

	first, err := n.load()
	if err != nil {
		return nil, err
	}

	memAlerts, err := mem.NewAlerts(context.Background(), alertGCInterval, 0, n.silencer, n.logger, eventrecorder.Recorder{}, reg, featurecontrol.NoopFlags{})
	if err != nil {
		return nil, fmt.Errorf("notify: alert provider: %w", err)
	}
	n.alerts = &sharedAlerts{Alerts: memAlerts, store: n.store}
	n.api, err = api.New(api.Options{
		Alerts:          n.alerts,
		Silences:        n.silences,
		Logger:          n.logger.With("component", "api"),
		Registry:        reg,
		RequestDuration: n.metrics.requestDuration,
		GroupFunc:       n.groups,
	})
	if err != nil {
		memAlerts.Close()
		return nil, fmt.Errorf("notify: api: %w", err)
	}
	n.handler = n.api.Register(route.New(), "/")
	n.apply(first)
	return n, nil
}

func externalURL(s string) (*url.URL, error) {
	if s == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		s = "http://" + host + "/"
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("notify: external_url: %w", err)
	}
	return u, nil
}

// Close releases what New allocated (the alert store's collector, the
// API) for a Notifier whose Run will not be called. It is idempotent; Run
// calls it when it returns.
func (n *Notifier) Close() {
	n.closeOnce.Do(func() {
		n.alerts.Close()
		n.api.Shutdown()
	})
}

// Run syncs state with the database and, while this replica leads (always
// without an Elector), dispatches notifications, until ctx ends. It
// returns once its goroutines have ended, after writing the pending
// silence and notification log changes.
func (n *Notifier) Run(ctx context.Context) error {
	defer n.Close()

	// Catch up before anything dispatches, so that nothing already sent
	// is sent again and silences apply from the first notification.
	for _, s := range n.syncs {
		if err := s.sync(ctx); err != nil {
			n.logger.WarnContext(ctx, "initial state sync", "state", s.kind, "err", err)
		}
	}
	if err := n.alerts.sync(ctx); err != nil {
		n.metrics.alertSyncFailures.Inc()
		n.logger.WarnContext(ctx, "initial alert sync", "err", err)
	}

	var wg sync.WaitGroup
	for _, s := range n.syncs {
		wg.Go(func() { s.writeLoop(ctx, n.cfg.SyncInterval) })
	}
	wg.Go(func() { n.syncLoop(ctx) })
	wg.Go(func() { n.follow(ctx) })
	wg.Go(func() {
		if n.elector == nil {
			_ = n.lead(ctx)
			return
		}
		if err := n.elector.Run(ctx, n.lead); err != nil {
			n.logger.ErrorContext(ctx, "leader election", "err", err)
		}
	})
	wg.Wait()
	return nil
}

// syncLoop merges other replicas' changes every SyncInterval and runs
// maintenance every MaintenanceInterval.
func (n *Notifier) syncLoop(ctx context.Context) {
	syncT := time.NewTicker(n.cfg.SyncInterval)
	defer syncT.Stop()
	maintT := time.NewTicker(n.cfg.MaintenanceInterval)
	defer maintT.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-syncT.C:
			n.syncOnce(ctx)
		case <-maintT.C:
			n.maintain(ctx)
		}
	}
}

func (n *Notifier) syncOnce(ctx context.Context) {
	n.syncMu.Lock()
	defer n.syncMu.Unlock()
	for _, s := range n.syncs {
		if err := s.sync(ctx); err != nil && ctx.Err() == nil {
			n.logger.WarnContext(ctx, "state sync", "state", s.kind, "err", err)
		}
	}
	if err := n.alerts.sync(ctx); err != nil && ctx.Err() == nil {
		n.metrics.alertSyncFailures.Inc()
		n.logger.WarnContext(ctx, "alert sync", "err", err)
	}
}

// maintain snapshots silences and the notification log and deletes
// history and alerts past their retention.
func (n *Notifier) maintain(ctx context.Context) {
	n.syncMu.Lock()
	for _, s := range n.syncs {
		if err := s.maintain(ctx); err != nil && ctx.Err() == nil {
			n.logger.WarnContext(ctx, "state maintenance", "state", s.kind, "err", err)
		}
	}
	n.syncMu.Unlock()
	now := n.now()
	if _, err := n.store.DeleteNotificationsBefore(ctx, now.Add(-n.cfg.HistoryRetention)); err != nil && ctx.Err() == nil {
		n.logger.WarnContext(ctx, "delete old notification history", "err", err)
	}
	if _, err := n.store.DeleteAlertsEndedBefore(ctx, now.Add(-endedAlertsKept)); err != nil && ctx.Err() == nil {
		n.logger.WarnContext(ctx, "delete ended alerts", "err", err)
	}
}

// lead runs the inhibitor and the dispatcher of the current configuration
// until ctx ends, rebuilding them after each successful Reload.
func (n *Notifier) lead(ctx context.Context) error {
	// Catch up before dispatching: what the previous leader sent until
	// its last moment is in the notification log, possibly newer than
	// this replica's last sync, and must not be sent again.
	n.syncOnce(ctx)
	n.logger.InfoContext(ctx, "dispatching notifications")
	n.setLeader(true)
	defer n.setLeader(false)
	for {
		stop := n.startDispatch(n.current.Load(), true)
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-n.reloadc:
			stop()
		}
	}
}

// follow runs, while this replica does not dispatch, an inhibitor and a
// dispatcher whose pipeline sends nothing: it groups the alerts every
// replica holds as the dispatching one does, so that the alert groups of
// the API (/api/v2/alerts/groups) and inhibited statuses answer on every
// replica. It stops when this replica starts dispatching, and is rebuilt
// after each Reload, until ctx ends.
func (n *Notifier) follow(ctx context.Context) {
	for {
		var stop func()
		if !n.Status().Leader {
			stop = n.startDispatch(n.current.Load(), false)
		}
		select {
		case <-ctx.Done():
		case <-n.followc:
		}
		if stop != nil {
			stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (n *Notifier) setLeader(v bool) {
	n.statusMu.Lock()
	n.status.Leader = v
	n.statusMu.Unlock()
	poke(n.followc)
}

// poke signals c without blocking; a signal already pending stands for
// this one.
func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// passiveStage is the pipeline of a replica that does not dispatch.
var passiveStage = amnotify.StageFunc(func(ctx context.Context, _ *slog.Logger, alerts ...*alert.Alert) (context.Context, []*alert.Alert, error) {
	return ctx, alerts, nil
})

// startDispatch starts an inhibitor and a dispatcher for l, as
// Alertmanager's reload does, and returns the function that stops them and
// waits for their goroutines. An active one sends notifications; a
// passive one only groups alerts.
func (n *Notifier) startDispatch(l *loaded, active bool) (stop func()) {
	inhibitor := inhibit.NewInhibitor(n.alerts.Alerts, l.conf.InhibitRules, n.logger, eventrecorder.Recorder{})
	var pipeline amnotify.Stage = passiveStage
	metrics := n.passiveM
	if active {
		pipeline = n.pipeline.New(l.receivers, func() time.Duration { return 0 }, inhibitor, n.silencer, l.intervener, n.nflog, nil)
		metrics = n.dispatchM
	}
	disp := dispatch.NewDispatcher(n.alerts.Alerts, l.routes, pipeline, l.intervener, timeout,
		dispatchMaintenanceInterval, nil, n.logger, eventrecorder.Recorder{}, metrics, l.tmpl)
	inhibDone, dispDone := make(chan struct{}), make(chan struct{})
	// The inhibitor loads the alerts before the dispatcher starts, so
	// nothing inhibited is sent on the way.
	go func() { defer close(inhibDone); inhibitor.Run() }()
	inhibitor.WaitForLoading()
	n.inhibitor.Store(inhibitor)
	go func() { defer close(dispDone); disp.Run(time.Now()) }()
	disp.WaitForLoading()
	n.dispatcher.Store(disp)
	return func() {
		// The other kind may have started meanwhile: leave it in place.
		n.dispatcher.CompareAndSwap(disp, nil)
		n.inhibitor.CompareAndSwap(inhibitor, nil)
		disp.Stop()
		inhibitor.Stop()
		<-dispDone
		<-inhibDone
	}
}

// timeout is the deadline of one flush of a group, as Alertmanager's
// binary sets it without a cluster.
func timeout(d time.Duration) time.Duration {
	return max(d, amnotify.MinTimeout)
}

// errNoDispatcher answers alert group requests while no dispatcher runs
// (before Run, or between two).
var errNoDispatcher = errors.New("alert groups are not kept yet; try again")

func (n *Notifier) groups(ctx context.Context, routeFilter func(*dispatch.Route) bool, alertFilter dispatch.AlertFilter) (dispatch.AlertGroups, map[model.Fingerprint][]string, error) {
	d := n.dispatcher.Load()
	if d == nil {
		return nil, nil, errNoDispatcher
	}
	return d.Groups(ctx, routeFilter, alertFilter)
}

// APIHandler serves Alertmanager's API v2 under /api/v2/ (alerts, alert
// groups, silences, status, receivers), as amtool and Prometheus expect
// it at the root of an Alertmanager URL. Alerts posted to it are shared
// with every replica.
func (n *Notifier) APIHandler() http.Handler { return n.handler }

// Send hands alerts to the notifier, as Prometheus sends them to
// Alertmanager: a firing alert must be sent again before its EndsAt (or,
// without one, before the resolve timeout) to stay firing. The alerts are
// written to the database before Send returns, so that the dispatching
// replica sees them.
func (n *Notifier) Send(ctx context.Context, alerts ...Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	resolve := n.cfg.ResolveTimeout
	if l := n.current.Load(); l != nil && l.conf.Global != nil {
		resolve = time.Duration(l.conf.Global.ResolveTimeout)
	}
	as, err := toAlerts(alerts, n.now(), resolve)
	if err != nil {
		return fmt.Errorf("send alerts: %w", err)
	}
	if err := n.alerts.Put(ctx, as...); err != nil {
		return fmt.Errorf("send alerts: %w", err)
	}
	return nil
}

// Reload reads the configuration again. When it is invalid the current
// one stays in force and the error names the file (with the line, for
// YAML errors) and the receiver at fault.
func (n *Notifier) Reload(ctx context.Context) error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	l, err := n.load()
	if err != nil {
		n.logger.ErrorContext(ctx, "reload notification config", "err", err)
		return err
	}
	n.apply(l)
	poke(n.reloadc)
	poke(n.followc)
	return nil
}

// apply makes l the current configuration of the API and of the next
// dispatcher.
func (n *Notifier) apply(l *loaded) {
	n.current.Store(l)
	n.api.Update(l.conf, func(ctx context.Context, ls labelset.LabelSet) {
		if ih := n.inhibitor.Load(); ih != nil {
			ih.Mutes(ctx, ls)
		}
		n.silencer.Mutes(ctx, ls)
	})
}

// load reads and builds the configuration, recording the outcome in the
// status.
func (n *Notifier) load() (*loaded, error) {
	l, err := n.build()
	now := n.now()
	n.statusMu.Lock()
	defer n.statusMu.Unlock()
	n.status.LastReload = now
	if err != nil {
		n.status.Error = err.Error()
		n.metrics.configReloadSuccess.Set(0)
		return nil, err
	}
	n.status.Error = ""
	n.status.LastSuccess = now
	n.metrics.configReloadSuccess.Set(1)
	n.metrics.configReloadTime.Set(float64(now.Unix()))
	return l, nil
}

func (n *Notifier) build() (*loaded, error) {
	src := n.cfg.source()
	var raw []byte
	var err error
	if n.cfg.AlertmanagerConfig != "" {
		if raw, err = os.ReadFile(n.cfg.AlertmanagerConfig); err != nil {
			return nil, fmt.Errorf("load alertmanager config: %w", err)
		}
	} else if raw, err = n.cfg.generatedConfig(); err != nil {
		return nil, err
	}
	rest, robotReceivers, err := robots.Split(raw)
	if err != nil {
		return nil, fmt.Errorf("load alertmanager config %s: %w", src, err)
	}
	conf, err := config.Load(string(rest))
	if err != nil {
		return nil, fmt.Errorf("load alertmanager config %s: %w", src, err)
	}
	if n.cfg.AlertmanagerConfig != "" {
		dir := filepath.Dir(n.cfg.AlertmanagerConfig)
		resolveFilepaths(dir, conf)
		for _, r := range robotReceivers {
			r.SetDirectory(dir)
		}
	}

	tmpl, err := template.FromGlobs(conf.Templates)
	if err != nil {
		return nil, fmt.Errorf("load alertmanager config %s: templates: %w", src, err)
	}
	tmpl.ExternalURL = n.extURL

	l := &loaded{conf: conf, tmpl: tmpl, routes: dispatch.NewRoute(conf.Route, nil), receivers: map[string][]amnotify.Integration{}}
	names := make(map[string]bool, len(conf.Receivers))
	for _, rcv := range conf.Receivers {
		names[rcv.Name] = true
		ints, err := receiver.BuildReceiverIntegrations(rcv, tmpl, n.logger)
		if err != nil {
			return nil, fmt.Errorf("load alertmanager config %s: receiver %q: %w", src, rcv.Name, err)
		}
		if r, ok := robotReceivers[rcv.Name]; ok {
			more, err := r.Integrations(rcv.Name, len(ints), tmpl, robots.Options{Logger: n.logger, Limiter: n.limiters, Now: n.now})
			if err != nil {
				// The error names the receiver already.
				return nil, fmt.Errorf("load alertmanager config %s: %w", src, err)
			}
			ints = append(ints, more...)
		}
		if n.cfg.AlertmanagerConfig == "" && len(n.cfg.Webhooks) == 0 && rcv.Name == LogReceiver {
			ints = append(ints, amnotify.NewIntegration(logNotifier{logger: n.logger, now: n.now}, sendResolved(true), "log", len(ints), rcv.Name))
		}
		l.receivers[rcv.Name] = n.wrap(rcv.Name, ints)
		l.infos = append(l.infos, receiverInfo(rcv, ints))
	}
	for name := range robotReceivers {
		if !names[name] {
			return nil, fmt.Errorf("load alertmanager config %s: robot configs for undefined receiver %q", src, name)
		}
	}
	sort.Slice(l.infos, func(i, j int) bool { return l.infos[i].Name < l.infos[j].Name })

	intervals := make(map[string][]timeinterval.TimeInterval, len(conf.MuteTimeIntervals)+len(conf.TimeIntervals))
	for _, ti := range conf.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range conf.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	l.intervener = timeinterval.NewIntervener(intervals)
	return l, nil
}

// resolveFilepaths joins the relative paths of a configuration file with
// its directory, as Alertmanager's config.LoadFile does (its helper is
// not exported, and Load is called on the file without Vigil's robot
// configs).
func resolveFilepaths(dir string, c *config.Config) {
	for i, t := range c.Templates {
		if t != "" && !filepath.IsAbs(t) {
			c.Templates[i] = filepath.Join(dir, t)
		}
	}
	if c.Global != nil && c.Global.HTTPConfig != nil {
		c.Global.HTTPConfig.SetDirectory(dir)
	}
	for _, r := range c.Receivers {
		for _, x := range r.OpsGenieConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.PagerdutyConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.PushoverConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.SlackConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.VictorOpsConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.WebhookConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.WechatConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.SNSConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.TelegramConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.DiscordConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.WebexConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.MSTeamsConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.MSTeamsV2Configs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.JiraConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.RocketchatConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
		for _, x := range r.MattermostConfigs {
			x.HTTPConfig.SetDirectory(dir)
		}
	}
}

// ReceiverInfo describes one receiver of the current configuration.
type ReceiverInfo struct {
	Name         string            `json:"name"`
	Integrations []IntegrationInfo `json:"integrations"`
	// Config is the receiver's Alertmanager configuration as YAML, with
	// secrets (tokens, webhook URLs, passwords) shown as <secret>. Vigil's
	// robot configs are not in it.
	Config string `json:"config"`
}

// IntegrationInfo names one integration of a receiver: its type
// (webhook, slack, feishu, …) and its index among the receiver's
// integrations, as in the history.
type IntegrationInfo struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
}

func receiverInfo(rcv config.Receiver, ints []amnotify.Integration) ReceiverInfo {
	ri := ReceiverInfo{Name: rcv.Name, Integrations: make([]IntegrationInfo, 0, len(ints))}
	for i := range ints {
		ri.Integrations = append(ri.Integrations, IntegrationInfo{Type: ints[i].Name(), Index: ints[i].Index()})
	}
	// Alertmanager's secret types marshal as <secret>.
	if b, err := yaml.Marshal(rcv); err == nil {
		ri.Config = string(b)
	}
	return ri
}

// Receivers returns the receivers of the current configuration, sorted by
// name. The caller may keep the result.
func (n *Notifier) Receivers() []ReceiverInfo {
	infos := n.current.Load().infos
	out := make([]ReceiverInfo, len(infos))
	for i, ri := range infos {
		ri.Integrations = append([]IntegrationInfo(nil), ri.Integrations...)
		out[i] = ri
	}
	return out
}

// Status returns where the configuration comes from, how its last load
// went and whether this replica dispatches.
func (n *Notifier) Status() Status {
	n.statusMu.Lock()
	defer n.statusMu.Unlock()
	return n.status
}

// Result is the outcome of a receiver test, one entry per integration.
type Result struct {
	Receiver     string              `json:"receiver"`
	Integrations []IntegrationResult `json:"integrations"`
}

// IntegrationResult is what one integration answered to a test: OK, or
// the error (with the receiver's answer when it gave one; never a URL).
type IntegrationResult struct {
	Type     string        `json:"type"`
	Index    int           `json:"index"`
	OK       bool          `json:"ok"`
	Retry    bool          `json:"retry,omitempty"`
	Message  string        `json:"message"`
	Duration time.Duration `json:"durationNs"`
}

// TestReceiver sends one sample firing alert through every integration of
// the receiver name, once each (no retry), and reports what each answered.
// The attempts are recorded in the history, marked as tests. It returns
// ErrUnknownReceiver for a name the configuration lacks; a failing
// integration is reported in Result, not as an error.
func (n *Notifier) TestReceiver(ctx context.Context, name string) (Result, error) {
	ints, ok := n.current.Load().receivers[name]
	if !ok {
		return Result{}, fmt.Errorf("test receiver %q: %w", name, ErrUnknownReceiver)
	}
	now := n.now()
	a := &model.Alert{
		Labels: model.LabelSet{
			"alertname": "VigilTestAlert",
			"severity":  "info",
			"instance":  "vigil",
		},
		Annotations: model.LabelSet{
			"summary":     "Test notification from Vigil",
			"description": "This alert was sent to check the receiver " + model.LabelValue(name) + "; it needs no action.",
		},
		StartsAt: now,
		EndsAt:   now.Add(5 * time.Minute),
	}
	groupLabels := model.LabelSet{"alertname": "VigilTestAlert"}
	ctx = context.WithValue(ctx, testKey{}, true)
	ctx = amnotify.WithGroupKey(ctx, fmt.Sprintf("{}/{test}:%s", groupLabels))
	ctx = amnotify.WithReceiverName(ctx, name)
	ctx = amnotify.WithGroupLabels(ctx, groupLabels)
	ctx = amnotify.WithNow(ctx, now)
	ctx = amnotify.WithRepeatInterval(ctx, n.cfg.RepeatInterval)
	ctx = amnotify.WithFiringAlerts(ctx, []uint64{uint64(a.Fingerprint())})
	ctx = amnotify.WithResolvedAlerts(ctx, nil)
	res := Result{Receiver: name, Integrations: make([]IntegrationResult, 0, len(ints))}
	for i := range ints {
		start := time.Now()
		v := ints[i].Notify(ctx, alert.New(*a, now, false))
		r := IntegrationResult{Type: ints[i].Name(), Index: ints[i].Index(), Duration: time.Since(start)}
		r.OK, r.Retry, r.Message = describe(v)
		res.Integrations = append(res.Integrations, r)
	}
	return res, nil
}

// HistoryFilter selects notification history: of Receiver when set, older
// than Before when set, the newest Limit entries (default 100).
type HistoryFilter = alertstore.NotificationFilter

// Notification is one entry of the history: a delivery attempt of one
// integration, or a receiver test.
type Notification = alertstore.Notification

// History returns notification history entries, newest first.
func (n *Notifier) History(ctx context.Context, f HistoryFilter) ([]Notification, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	out, err := n.store.Notifications(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("notification history: %w", err)
	}
	return out, nil
}
