package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/vigil-obs/vigil/client"
	"github.com/vigil-obs/vigil/client/discovery"
	"github.com/vigil-obs/vigil/client/otelsetup"
	"github.com/vigil-obs/vigil/client/registry"
)

// config is the demo's configuration, from flags.
type config struct {
	OTLPEndpoint   string
	GatewayAddr    string
	UserAddrs      []string
	Fault          string
	SlowDelay      time.Duration
	LoadRPS        float64
	Duration       time.Duration
	MetricInterval time.Duration
	// ConsulAddr, when set, is the Consul HTTP API (Vigil's, default
	// :8500) the user-service instances register with and the gateway
	// discovers them through; empty keeps the static addresses.
	ConsulAddr string
	// ConsulToken is sent as X-Consul-Token (from CONSUL_HTTP_TOKEN).
	ConsulToken string
	// ConsulTTL is the instances' TTL check (passed every ConsulTTL/3).
	ConsulTTL time.Duration
	// ScrapeInterval is the scrape_interval meta of the registrations.
	ScrapeInterval time.Duration
	LogLevel       slog.Level
	Stdout         io.Writer
	// listeners, when set (tests), replace GatewayAddr and UserAddrs.
	gatewayLn net.Listener
	userLns   []net.Listener
}

func (c config) validate() error {
	switch {
	case len(c.UserAddrs) == 0 && len(c.userLns) == 0:
		return errors.New("user-addrs: at least one instance is required")
	case c.Fault != "none" && c.Fault != "slow" && c.Fault != "fail":
		return fmt.Errorf("fault: must be none, slow or fail, got %q", c.Fault)
	case c.SlowDelay < 0:
		return fmt.Errorf("slow-delay: must not be negative, got %v", c.SlowDelay)
	case c.LoadRPS < 0 || c.LoadRPS > 10000:
		return fmt.Errorf("load: must be in [0, 10000], got %v", c.LoadRPS)
	case c.ConsulAddr != "" && c.ConsulTTL < 3*time.Millisecond:
		return fmt.Errorf("consul-ttl: must be at least 3ms, got %v", c.ConsulTTL)
	case c.ConsulAddr != "" && (c.ScrapeInterval < 0 || c.ScrapeInterval%time.Millisecond != 0):
		return fmt.Errorf("scrape-interval: must be a positive whole number of milliseconds, got %v", c.ScrapeInterval)
	}
	return nil
}

// component is one running part of the demo.
type component struct {
	name string
	srv  *http.Server
	ln   net.Listener
	tel  *otelsetup.Providers
}

// run starts the fleet and blocks until ctx is cancelled, then shuts every
// server down and flushes telemetry.
func run(ctx context.Context, cfg config) (err error) {
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	conn, err := otelsetup.Dial(otelsetup.Config{Endpoint: cfg.OTLPEndpoint})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, conn.Close()) }()

	var comps []*component
	stdout := slog.New(slog.NewJSONHandler(cfg.Stdout, nil)).With("service", "vigil-demo")
	defer func() {
		// Flush telemetry of everything started, even on a failed start. A
		// Vigil that is down costs telemetry, not the demo's exit status.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, c := range comps {
			if c.tel == nil {
				continue
			}
			if serr := c.tel.Shutdown(sctx); serr != nil {
				stdout.Warn("telemetry not flushed", "component", c.name, "err", serr)
			}
		}
	}()

	// User-service instances.
	userLns := cfg.userLns
	for _, addr := range cfg.UserAddrs {
		if cfg.userLns != nil {
			break
		}
		ln, lerr := net.Listen("tcp", strings.TrimSpace(addr))
		if lerr != nil {
			closeAll(userLns)
			return fmt.Errorf("listen user-service: %w", lerr)
		}
		userLns = append(userLns, ln)
	}
	var users []*userService
	var addrs []string
	var regs []*registry.Registration
	for i, ln := range userLns {
		id := fmt.Sprintf("user-service-%d", i+1)
		tel, logger, terr := telemetryFor(ctx, cfg, conn, "user-service", id)
		if terr != nil {
			closeAll(userLns)
			return terr
		}
		u := newUserService(id, ln.Addr().String(), logger, tel)
		if i == len(userLns)-1 {
			u.fault.set(cfg.Fault, cfg.SlowDelay, 1)
		}
		users = append(users, u)
		addrs = append(addrs, ln.Addr().String())
		if cfg.ConsulAddr != "" {
			reg, rerr := registration(cfg, id, ln.Addr(), logger)
			if rerr != nil {
				closeAll(userLns)
				return rerr
			}
			regs = append(regs, reg)
		}
		comps = append(comps, &component{name: id, srv: newServer(u.handler()), ln: ln, tel: tel})
	}

	// Gateway.
	tel, logger, err := telemetryFor(ctx, cfg, conn, "gateway", "gateway-1")
	if err != nil {
		closeAll(userLns)
		return err
	}
	gwLn := cfg.gatewayLn
	if gwLn == nil {
		if gwLn, err = net.Listen("tcp", cfg.GatewayAddr); err != nil {
			closeAll(userLns)
			return fmt.Errorf("listen gateway: %w", err)
		}
	}
	copts := client.Options{
		Logger:         logger,
		TracerProvider: tel.TracerProvider,
		MeterProvider:  tel.MeterProvider,
	}
	target := "static:///" + strings.Join(addrs, ",")
	if cfg.ConsulAddr != "" {
		target = "consul:///user-service"
		copts.Resolvers = map[string]discovery.Builder{
			"consul": discovery.ConsulBuilder(discovery.ConsulConfig{Agent: cfg.ConsulAddr, Token: cfg.ConsulToken}, discovery.ConsulOptions{}),
		}
	}
	c, err := client.New(clientConfig(target), copts)
	if err != nil {
		closeAll(append(userLns, gwLn))
		return err
	}
	defer c.Close()
	gw := newGateway(c, users, logger, tel)
	comps = append(comps, &component{name: "gateway", srv: newServer(gw.handler()), ln: gwLn, tel: tel})

	// Register once before the gateway's first lookup, so that it finds
	// the instances at once; Run registers again (idempotent) and keeps
	// the registrations alive. A Vigil that is down costs discovery
	// until it is back, not the demo.
	for _, reg := range regs {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if rerr := reg.Register(rctx); rerr != nil {
			logger.WarnContext(ctx, "first registration failed, retrying in the background", "service_id", reg.ID(), "err", rerr)
		}
		cancel()
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.Run(gctx) })
	for _, reg := range regs {
		g.Go(func() error {
			if rerr := reg.Run(gctx); rerr != nil {
				logger.Warn("deregistration failed", "service_id", reg.ID(), "err", rerr)
			}
			return nil
		})
	}
	for _, comp := range comps {
		g.Go(func() error {
			if err := comp.srv.Serve(comp.ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s: %w", comp.name, err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return comp.srv.Shutdown(sctx)
		})
	}
	if cfg.LoadRPS > 0 {
		g.Go(func() error { return generateLoad(gctx, "http://"+gwLn.Addr().String(), cfg.LoadRPS, logger) })
	}
	logger.InfoContext(ctx, "demo fleet started", "gateway", gwLn.Addr().String(), "user_service", addrs,
		"discovery", target, "consul_addr", cfg.ConsulAddr, "otlp_endpoint", cfg.OTLPEndpoint)
	return g.Wait()
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
}

// telemetryFor builds one service's OTel providers and its logger, which
// writes JSON to stdout and OTLP logs to Vigil.
func telemetryFor(ctx context.Context, cfg config, conn *grpc.ClientConn, service, instance string) (*otelsetup.Providers, *slog.Logger, error) {
	tel, err := otelsetup.Start(ctx, otelsetup.Config{
		Endpoint:       cfg.OTLPEndpoint,
		ServiceName:    service,
		ServiceVersion: "1.0.0",
		InstanceID:     instance,
		Attributes:     map[string]string{"deployment.environment.name": "demo"},
		MetricInterval: cfg.MetricInterval,
		Timeout:        5 * time.Second,
	}, otelsetup.Options{Conn: conn})
	if err != nil {
		return nil, nil, err
	}
	h := otelsetup.Fanout(
		slog.NewJSONHandler(cfg.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}),
		otelsetup.NewSlogHandler(tel.LoggerProvider, "vigil-demo"),
	)
	return tel, slog.New(h).With("service", service, "instance", instance), nil
}

// registration registers a user-service instance listening on addr with
// Vigil's Consul API: a TTL check kept passing, and the meta Vigil scrapes
// it by. An instance listening on every interface registers the loopback
// address, which is where the demo's gateway reaches it.
func registration(cfg config, id string, addr net.Addr, logger *slog.Logger) (*registry.Registration, error) {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", id, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("register %s: port %q: %w", id, port, err)
	}
	return registry.New(registry.Config{
		Agent:                   cfg.ConsulAddr,
		Token:                   cfg.ConsulToken,
		Name:                    "user-service",
		Address:                 host,
		Port:                    p,
		Tags:                    []string{"demo"},
		Meta:                    map[string]string{"instance": id, "version": "1.0.0"},
		MetricsPath:             "/metrics",
		ScrapeInterval:          cfg.ScrapeInterval,
		TTL:                     cfg.ConsulTTL,
		Note:                    id + " serving",
		DeregisterCriticalAfter: time.Minute,
	}, registry.Options{Logger: logger})
}

// clientConfig is the gateway's view of user-service at target: the
// client's defaults with timeouts suited to the demo.
func clientConfig(target string) client.Config {
	return client.Config{Services: map[string]client.ServiceConfig{
		"user-service": {
			Target:  target,
			Timeout: 3 * time.Second,
			Retry:   client.RetryConfig{MaxAttempts: 3, PerAttemptTimeout: time.Second},
		},
	}}
}
