package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	promcommon "github.com/prometheus/common/config"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/consul"
	"github.com/prometheus/prometheus/notifier"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-obs/vigil/alerting/notify"
	"github.com/vigil-obs/vigil/alerting/rules"
	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/derive"
	"github.com/vigil-obs/vigil/ingest/jaeger"
	"github.com/vigil-obs/vigil/ingest/liveness"
	"github.com/vigil-obs/vigil/ingest/otlp"
	"github.com/vigil-obs/vigil/ingest/pipeline"
	"github.com/vigil-obs/vigil/ingest/promremote"
	"github.com/vigil-obs/vigil/ingest/scrape"
	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/internal/inflight"
	"github.com/vigil-obs/vigil/internal/pgmanaged"
	"github.com/vigil-obs/vigil/internal/tail"
	"github.com/vigil-obs/vigil/internal/tlsconfig"
	querylogs "github.com/vigil-obs/vigil/query/logs"
	querymetrics "github.com/vigil-obs/vigil/query/metrics"
	"github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/query/servicemap"
	"github.com/vigil-obs/vigil/query/services"
	"github.com/vigil-obs/vigil/query/traces"
	"github.com/vigil-obs/vigil/registry"
	"github.com/vigil-obs/vigil/registry/consulapi"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/alertstore"
	"github.com/vigil-obs/vigil/storage/postgres/leader"
	"github.com/vigil-obs/vigil/storage/postgres/logstore"
	"github.com/vigil-obs/vigil/storage/postgres/mapstore"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
	"github.com/vigil-obs/vigil/storage/postgres/registrystore"
	"github.com/vigil-obs/vigil/storage/postgres/servicestore"
	"github.com/vigil-obs/vigil/storage/postgres/spanstore"
	"github.com/vigil-obs/vigil/web"
	"github.com/vigil-obs/vigil/web/api"
	"github.com/vigil-obs/vigil/web/api/jaegerapi"
	"github.com/vigil-obs/vigil/web/api/logsapi"
	"github.com/vigil-obs/vigil/web/api/mapapi"
	"github.com/vigil-obs/vigil/web/api/notifyapi"
	"github.com/vigil-obs/vigil/web/api/promapi"
	"github.com/vigil-obs/vigil/web/api/registryapi"
	"github.com/vigil-obs/vigil/web/api/rulesapi"
	"github.com/vigil-obs/vigil/web/api/scrapeapi"
	"github.com/vigil-obs/vigil/web/ui"
)

// database returns a migrated pool: on cfg.DB, or on a managed local
// Postgres started in cfg.DataDir. stop releases both.
func database(ctx context.Context, cfg Config, logger *slog.Logger) (pool *pgxpool.Pool, stop func(), err error) {
	url := cfg.DB
	stop = func() {}
	if url == "" {
		inst, err := pgmanaged.Start(ctx, pgmanaged.Config{DataDir: cfg.DataDir, Logger: logger})
		if err != nil {
			return nil, stop, err
		}
		logger.InfoContext(ctx, "managed postgres started", "data_dir", cfg.DataDir)
		stop = func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := inst.Stop(sctx); err != nil {
				logger.Error("stop managed postgres", "err", err)
			}
		}
		url = inst.URL()
	}
	pool, err = connect(ctx, url, logger)
	if err != nil {
		stop()
		return nil, func() {}, err
	}
	for {
		_, err = postgres.Migrate(ctx, pool, logger)
		if err == nil || !errors.Is(err, storage.ErrUnavailable) {
			break
		}
		logger.WarnContext(ctx, "migrate: database unavailable, retrying", "err", err)
		if !sleep(ctx, 2*time.Second) {
			err = ctx.Err()
			break
		}
	}
	if err != nil {
		pool.Close()
		stop()
		return nil, func() {}, err
	}
	prev := stop
	return pool, func() { pool.Close(); prev() }, nil
}

// connect opens a pool, retrying while the database is unreachable.
func connect(ctx context.Context, url string, logger *slog.Logger) (*pgxpool.Pool, error) {
	for {
		pool, err := postgres.Open(ctx, url)
		if err == nil {
			return pool, nil
		}
		if !errors.Is(err, storage.ErrUnavailable) {
			return nil, err
		}
		logger.WarnContext(ctx, "database unavailable, retrying", "err", err)
		if !sleep(ctx, 2*time.Second) {
			return nil, fmt.Errorf("connect: %w", ctx.Err())
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func migrate(ctx context.Context, cfg Config, logger *slog.Logger) error {
	_, stop, err := database(ctx, cfg, logger)
	if err != nil {
		return err
	}
	stop()
	logger.InfoContext(ctx, "database schema is up to date")
	return nil
}

func serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	s, err := newServer(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// server is a wired Vigil: every component constructed and every port
// bound, not yet serving.
type server struct {
	logger      *slog.Logger
	stopDB      func()
	parts       *postgres.Partitions
	pipe        *pipeline.Pipeline
	logPipe     *pipeline.LogPipeline
	metricPipe  *pipeline.MetricPipeline
	derive      *derive.Deriver // nil when derive.enabled is false
	live        *liveness.Tracker
	logHub      *tail.Hub[storage.LogRecord]
	rcv         *otlp.Receiver
	jaeger      *jaeger.Receiver // nil when every Jaeger/Zipkin address is empty
	engine      *promql.Engine
	rules       *rules.Manager
	scraper     *scrape.Manager
	registry    *registry.Registry // nil when registry.address is empty
	registrySrv *registryServer
	notifier    *notify.Notifier
	reload      reloader // the rules' and the notifier's reload, for SIGHUP
	http        *web.Server
	compact     func(context.Context) error // the metric compactor's loop
	compactLogs func(context.Context) error // the log compactor's loop; nil when off
	mergeLogs   func(context.Context) error // the loop merging the log text index's pending entries; nil when off
}

// newServer connects (or starts) the database, migrates it, and builds
// every component. On error everything started so far is stopped.
func newServer(ctx context.Context, cfg Config, logger *slog.Logger) (_ *server, err error) {
	logger.InfoContext(ctx, "starting vigil", "version", version)
	// A bad web configuration fails before anything starts.
	var serverTLS *tls.Config
	if cfg.WebConfigFile != "" {
		tc, err := tlsconfig.Load(cfg.WebConfigFile, logger)
		if err != nil {
			return nil, fmt.Errorf("web_config_file: %w", err)
		}
		serverTLS = tc.ServerTLS()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	pool, stopDB, err := database(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			stopDB()
		}
	}()

	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{
		Retention:      time.Duration(cfg.Retention),
		TableRetention: map[string]time.Duration{"logs": time.Duration(cfg.Logs.Retention)},
		Logger:         logger,
	})
	if err := parts.Maintain(ctx); err != nil {
		return nil, fmt.Errorf("create partitions: %w", err)
	}
	store := spanstore.New(pool, parts)
	headRange := time.Duration(cfg.Metrics.HeadRange)
	if headRange == 0 {
		headRange = -1 // off
	}
	metricStore := metricstore.New(pool, parts, metricstore.Options{Logger: logger, HeadRange: headRange, HeadMaxSamples: cfg.Metrics.HeadMaxSamples})
	metricPipe, err := pipeline.NewMetrics(cfg.Metrics.Pipeline, pipeline.MetricOptions{
		Writer: metricStore, Logger: logger, Registerer: reg})
	if err != nil {
		return nil, err
	}
	// RED and service-graph series are derived from the spans the
	// pipeline commits and written through the metric pipeline.
	// Every replica labels what it derives with its own vigil_replica.
	deriveCfg := cfg.Derive
	if deriveCfg.Replica == "" {
		deriveCfg.Replica = derive.NewReplicaID()
	}
	mapStore := mapstore.NewWithPartitions(pool, parts)
	var deriver *derive.Deriver
	if deriveCfg.Enabled {
		deriver, err = derive.New(deriveCfg, derive.Options{Appendable: metricPipe, Pairs: mapStore, Logger: logger, Registerer: reg})
		if err != nil {
			return nil, err
		}
	}
	// When each service last sent anything, for the liveness rule.
	livenessCfg := liveness.DefaultConfig()
	livenessCfg.Replica, livenessCfg.FlushInterval = deriveCfg.Replica, deriveCfg.FlushInterval
	live, err := liveness.New(livenessCfg, liveness.Options{Appendable: metricPipe, Logger: logger, Registerer: reg})
	if err != nil {
		return nil, err
	}
	pipe, err := pipeline.New(cfg.Pipeline, pipeline.Options{Writer: store, Logger: logger, Registerer: reg,
		Committed: func(batch []ptrace.Traces) {
			if deriver != nil {
				deriver.Committed(batch)
			}
			live.Traces(batch)
		}})
	if err != nil {
		return nil, err
	}
	logStore := logstore.New(pool, parts)
	compactor, err := metricstore.NewCompactor(metricStore, metricstore.CompactorConfig{Interval: time.Duration(cfg.Metrics.CompactionInterval),
		Delay: time.Duration(cfg.Metrics.CompactionDelay)}, metricstore.CompactorOptions{Registerer: reg, Logger: logger})
	if err != nil {
		return nil, err
	}
	var compactLogs func(context.Context) error
	if cfg.Logs.Compaction {
		lc, err := logstore.NewCompactor(logStore, logstore.CompactorConfig{Interval: time.Duration(cfg.Logs.CompactionInterval),
			Delay: time.Duration(cfg.Logs.CompactionDelay)}, logstore.CompactorOptions{Registerer: reg, Logger: logger})
		if err != nil {
			return nil, err
		}
		compactLogs = lc.Run
	}
	var mergeLogs func(context.Context) error
	if d := time.Duration(cfg.Logs.PendingMergeInterval); d > 0 {
		mergeLogs = func(ctx context.Context) error { return logStore.RunPendingCleaner(ctx, d, logger) }
	}
	logHub := tail.New[storage.LogRecord](cfg.Logs.Tail.Config)
	publish := querylogs.Publisher(logHub)
	logPipe, err := pipeline.NewLogs(cfg.Logs.Pipeline, pipeline.LogOptions{
		Writer: logStore, Committed: func(batch []plog.Logs) { publish(batch); live.Logs(batch) }, Logger: logger, Registerer: reg})
	if err != nil {
		return nil, err
	}
	metrics, err := ingest.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	// One budget of request bytes in flight for every receiver.
	budget, err := inflight.New(cfg.Ingest.MaxInflightBytes, reg)
	if err != nil {
		return nil, fmt.Errorf("ingest.max_inflight_bytes: %w", err)
	}
	ingestTokens, err := auth.NewTokens(cfg.Auth.IngestTokens)
	if err != nil {
		return nil, fmt.Errorf("auth.ingest_tokens: %w", err)
	}
	readTokens, err := auth.NewTokens(cfg.Auth.ReadTokens)
	if err != nil {
		return nil, fmt.Errorf("auth.read_tokens: %w", err)
	}
	rcv, err := otlp.New(cfg.otlpConfig(), otlp.Options{Budget: budget, Traces: pipe, Logs: logPipe, MetricPoints: seenMetrics{pipeline.NewOTLPMetrics(metricPipe, cfg.Metrics.OTLP, logger), live},
		Logger: logger, Metrics: metrics, Auth: ingestTokens, TLS: serverTLS})
	if err != nil {
		return nil, err
	}
	var jrcv *jaeger.Receiver
	jcfg := cfg.jaegerConfig()
	if jcfg.Enabled() {
		jrcv, err = jaeger.New(jcfg, jaeger.Options{Traces: pipe, Budget: budget, Logger: logger, Metrics: metrics,
			Registerer: reg, Auth: ingestTokens, Limits: cfg.Limits, TLS: serverTLS})
		if err != nil {
			return nil, errors.Join(err, rcv.Close())
		}
	}
	closeReceivers := func() error {
		err := rcv.Close()
		if jrcv != nil {
			err = errors.Join(err, jrcv.Close())
		}
		return err
	}

	// Ready when Postgres answers and carries every migration this binary
	// knows (another replica may be mid-upgrade).
	ready := func(ctx context.Context) error {
		applied, known, err := postgres.SchemaVersion(ctx, pool)
		if err != nil {
			return err
		}
		if applied < known {
			return fmt.Errorf("schema version %d, want %d", applied, known)
		}
		return nil
	}
	engine, err := promql.New(metricStore, cfg.Query, logger, reg)
	if err != nil {
		return nil, errors.Join(err, closeReceivers())
	}
	remoteWrite, err := promremote.New(metricPipe, cfg.remoteWriteConfig(),
		promremote.Options{Logger: logger, Budget: budget})
	if err != nil {
		return nil, errors.Join(err, closeReceivers(), engine.Close())
	}

	// Alerting: notifications first, since rule evaluation sends to them.
	// Each runs on one replica at a time (leader), with its state in the
	// database.
	alerting := cfg.Alerting
	if alerting.Rules.ExternalURL == "" {
		alerting.Rules.ExternalURL = defaultExternalURL(cfg.HTTP.Address, serverTLS != nil)
	}
	alertStore := alertstore.New(pool)
	notifier, err := notify.New(alerting.notifyConfig(), notify.Options{Logger: logger, Registerer: reg,
		Store: alertStore, Elector: leader.New(pool, leader.KeyNotify, leader.Options{Logger: logger})})
	if err != nil {
		return nil, errors.Join(err, closeReceivers(), engine.Close())
	}
	ruleMgr, err := rules.New(alerting.Rules, rules.Options{Engine: engine, Queryable: metricStore, Appendable: metricPipe,
		Notify: forwardAlerts(notifier, logger), Logger: logger, Registerer: reg, States: alertStore,
		Elector: leader.New(pool, leader.KeyRules, leader.Options{Logger: logger})})
	if err != nil {
		notifier.Close()
		return nil, errors.Join(err, closeReceivers(), engine.Close())
	}
	// The Consul-compatible registry: its state in the database, its
	// checks run by one replica at a time, its API on a port of its own.
	// The instances registered in it are scraped.
	var regs *registry.Registry
	var regSrv *registryServer
	var jobs []*promconfig.ScrapeConfig
	if cfg.Registry.Address != "" {
		regs, err = registry.New(cfg.Registry.Config, registry.Options{Store: registrystore.New(pool),
			Elector:    leader.New(pool, registry.LeaderKey, leader.Options{Logger: logger}),
			Appendable: metricPipe, Logger: logger, Registerer: reg})
		if err != nil {
			notifier.Close()
			return nil, errors.Join(err, closeReceivers(), engine.Close())
		}
		regSrv, err = newRegistryServer(cfg.Registry.Address, consulapi.New(regs, consulapi.Options{Tokens: cfg.Auth.IngestTokens, Logger: logger}))
		if err != nil {
			notifier.Close()
			return nil, errors.Join(err, closeReceivers(), engine.Close())
		}
		job := scrape.RegistryJob(regSrv.loopbackAddr())
		if len(cfg.Auth.IngestTokens) > 0 {
			for _, sd := range job.ServiceDiscoveryConfigs {
				if c, ok := sd.(*consul.SDConfig); ok {
					c.Token = promcommon.Secret(cfg.Auth.IngestTokens[0])
				}
			}
		}
		jobs = append(jobs, job)
	}
	closeRegistry := func() error {
		if regSrv == nil {
			return nil
		}
		return regSrv.ln.Close()
	}
	// Scraping: the jobs of a Prometheus file, of the scrape section and
	// of the registry, run by one replica at a time.
	scraper, err := scrape.New(cfg.Scrape, scrape.Options{Appendable: metricPipe, Jobs: jobs, Logger: logger, Registerer: reg,
		Elector: leader.New(pool, scrape.LeaderKey, leader.Options{Logger: logger})})
	if err != nil {
		notifier.Close()
		return nil, errors.Join(err, closeReceivers(), closeRegistry(), engine.Close())
	}
	externalURL, err := url.Parse(alerting.Rules.ExternalURL)
	if err != nil {
		notifier.Close()
		return nil, errors.Join(fmt.Errorf("alerting.external_url: %w", err), closeReceivers(), closeRegistry(), engine.Close())
	}
	reload := reloader{logger: logger, fns: []func(context.Context) error{ruleMgr.Reload, notifier.Reload, scraper.Reload}}

	querySvc := traces.New(store, traces.Config{MaxLookback: time.Duration(cfg.Retention)})
	mapSvc := servicemap.New(servicemap.Config{MaxLookback: time.Duration(cfg.Retention), KeyLookback: deriveCfg.SeriesIdleTimeout + 2*time.Minute},
		servicemap.Options{Rollups: mapStore, Metrics: metricStore, Engine: engine, EdgeTraces: mapStore})
	jaegerAPI := jaegerapi.New(querySvc, logger)
	jaegerAPI.SetServiceMap(mapSvc)
	logsAPI := logsapi.New(querylogs.New(logStore, querylogs.Config{MaxLookback: time.Duration(cfg.Logs.Retention)}),
		logsapi.Options{Tail: logHub, TailLimits: cfg.Logs.Tail.TailConfig, Logger: logger, AllowedOrigins: cfg.Logs.AllowedOrigins})
	srv, err := web.New(cfg.HTTP.Address, web.Options{
		Config: cfg.HTTP.Config,
		APIs: []web.Mounter{jaegerAPI, mapapi.New(mapSvc, logger), logsAPI, api.NewServices(services.New(servicestore.New(pool), services.Config{}), logger),
			promapi.New(engine, querymetrics.New(metricStore, metricStore, querymetrics.Config{Timeout: cfg.Query.Timeout}),
				promapi.Options{Logger: logger, Revision: version}),
			rulesapi.New(ruleMgr, logger), notifyapi.New(notifier, logger), reload,
			scrapeapi.New(scraper, scrapeapi.Options{Logger: logger, ExternalURL: externalURL, ListenAddress: cfg.HTTP.Address}),
			registryapi.New(regs, logger)},
		Ingest:     map[string]http.Handler{"POST /api/v1/write": remoteWrite},
		IngestAuth: ingestTokens,
		Ready:      ready,
		Gatherer:   reg,
		Auth:       readTokens,
		UI:         ui.Handler(),
		Logger:     logger,
		TLS:        serverTLS,
	})
	if err != nil {
		notifier.Close()
		return nil, errors.Join(err, closeReceivers(), closeRegistry(), engine.Close())
	}
	return &server{logger: logger, stopDB: stopDB, parts: parts, pipe: pipe, logPipe: logPipe, metricPipe: metricPipe, derive: deriver, live: live, logHub: logHub, rcv: rcv, jaeger: jrcv,
		engine: engine, rules: ruleMgr, scraper: scraper, registry: regs, registrySrv: regSrv, notifier: notifier, reload: reload, http: srv, compact: compactor.Run,
		compactLogs: compactLogs, mergeLogs: mergeLogs}, nil
}

// Run serves until ctx is cancelled, then stops the receivers, drains the
// pipeline, and stops the database (when managed).
func (s *server) Run(ctx context.Context) error {
	defer s.stopDB()
	s.logger.InfoContext(ctx, "serving", "http", s.http.Addr(), "otlp_grpc", s.rcv.GRPCAddr(), "otlp_http", s.rcv.HTTPAddr())

	// The pipelines outlive the receivers so that requests they accepted
	// are committed before Vigil exits, in three stages: the span and log
	// pipelines drain first, then the deriver writes what their last
	// batches added, then the metric pipeline drains.
	background := context.WithoutCancel(ctx)
	stages := [][]func(context.Context) error{{s.pipe.Run, s.logPipe.Run}, nil, {s.metricPipe.Run}}
	stages[1] = append(stages[1], s.live.Run)
	if s.derive != nil {
		stages[1] = append(stages[1], s.derive.Run)
	}
	stops := make([]func(), len(stages))
	for i, stage := range stages {
		stageCtx, stop := context.WithCancel(background)
		var wg sync.WaitGroup
		for _, run := range stage {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = run(stageCtx)
			}()
		}
		stops[i] = func() { stop(); wg.Wait() }
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.rcv.Run(gctx) })
	if s.jaeger != nil {
		g.Go(func() error { return s.jaeger.Run(gctx) })
		s.logger.InfoContext(ctx, "jaeger receivers", "udp_compact", s.jaeger.UDPCompactAddr(), "udp_binary", s.jaeger.UDPBinaryAddr(),
			"http", s.jaeger.HTTPAddr(), "grpc", s.jaeger.GRPCAddr(), "zipkin", s.jaeger.ZipkinAddr())
	}
	g.Go(func() error {
		err := s.http.Run(gctx)
		// http.Server.Shutdown does not close hijacked WebSockets: closing
		// the hub ends the live-tail handlers.
		s.logHub.Close()
		return err
	})
	g.Go(func() error { return s.parts.Run(gctx) })
	g.Go(func() error { return s.compact(gctx) })
	if s.mergeLogs != nil {
		g.Go(func() error { return s.mergeLogs(gctx) })
	}
	if s.compactLogs != nil {
		g.Go(func() error { return s.compactLogs(gctx) })
	}
	g.Go(func() error { return s.notifier.Run(gctx) })
	g.Go(func() error { return s.rules.Run(gctx) })
	g.Go(func() error { return s.scraper.Run(gctx) })
	if s.registry != nil {
		g.Go(func() error { return s.registry.Run(gctx) })
		g.Go(func() error { return s.registrySrv.run(gctx) })
		s.logger.InfoContext(ctx, "consul-compatible registry", "address", s.registrySrv.ln.Addr().String())
	}
	g.Go(func() error {
		// SIGHUP reloads the rule files and the Alertmanager configuration,
		// as POST /-/reload does.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				s.logger.InfoContext(gctx, "reloading on SIGHUP")
				_ = s.reload.reload(gctx)
			}
		}
	})
	err := g.Wait()
	for _, stop := range stops {
		stop()
	}
	err = errors.Join(err, s.engine.Close())
	s.logger.Info("vigil stopped")
	return err
}

// forwardAlerts hands the rule engine's alerts to the notifier, which
// stores them for the replica that dispatches.
func forwardAlerts(n *notify.Notifier, logger *slog.Logger) rules.NotifyFunc {
	return func(ctx context.Context, alerts []*notifier.Alert) {
		if len(alerts) == 0 {
			return
		}
		out := make([]notify.Alert, 0, len(alerts))
		for _, a := range alerts {
			out = append(out, notify.Alert{Labels: a.Labels.Map(), Annotations: a.Annotations.Map(),
				StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL})
		}
		if err := n.Send(ctx, out...); err != nil {
			// The rule engine sends firing alerts again every resend delay.
			logger.WarnContext(ctx, "send alerts to the notifier", "alerts", len(out), "err", err)
		}
	}
}

// reloader re-reads the rule files and the Alertmanager configuration:
// POST or PUT /-/reload, as on Prometheus and Alertmanager, and SIGHUP.
// Each part keeps its previous configuration when the new one is invalid.
type reloader struct {
	logger *slog.Logger
	fns    []func(context.Context) error
}

// Register mounts /-/reload.
func (r reloader) Register(mux *http.ServeMux) {
	h := func(w http.ResponseWriter, req *http.Request) {
		if err := r.reload(req.Context()); err != nil {
			http.Error(w, "failed to reload config: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
	mux.HandleFunc("POST /-/reload", h)
	mux.HandleFunc("PUT /-/reload", h)
}

// reload runs every part's reload; the parts log their own failures.
func (r reloader) reload(ctx context.Context) error {
	var errs []error
	for _, f := range r.fns {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// defaultExternalURL is the URL of the main port as others reach it: this
// host's name when the address names no host; empty when the port is
// chosen at start (":0"), leaving links relative.
func defaultExternalURL(addr string, tls bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" || port == "" {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		if host, err = os.Hostname(); err != nil || host == "" {
			host = "localhost"
		}
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// seenMetrics records the resources of the OTLP metrics its consumer
// stored (all of them, or the valid part) for the liveness series.
type seenMetrics struct {
	ingest.MetricConsumer
	live *liveness.Tracker
}

// ConsumeMetrics stores md, then records its resources when stored.
func (s seenMetrics) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	err := s.MetricConsumer.ConsumeMetrics(ctx, md)
	if err == nil || errors.Is(err, ingest.ErrPartlyStored) {
		s.live.Metrics(md)
	}
	return err
}

// registryServer serves the registry's Consul HTTP API on its own
// listener. Blocking queries hold a request for up to consulapi.MaxWait,
// so writes may take that long; stopping the registry wakes them.
type registryServer struct {
	ln  net.Listener
	srv *http.Server
}

func newRegistryServer(addr string, h http.Handler) (*registryServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("registry.address: %w", err)
	}
	return &registryServer{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout: consulapi.MaxWait + time.Minute, IdleTimeout: 2 * time.Minute}}, nil
}

// loopbackAddr is the address this process reaches the registry at.
func (r *registryServer) loopbackAddr() string {
	_, port, _ := net.SplitHostPort(r.ln.Addr().String())
	return net.JoinHostPort("127.0.0.1", port)
}

// run serves until ctx ends, then shuts down within 5 s.
func (r *registryServer) run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- r.srv.Serve(r.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("registry: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(sctx); err != nil {
		_ = r.srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}
