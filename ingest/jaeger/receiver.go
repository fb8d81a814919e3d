package jaeger

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // registers the gzip compressor gRPC senders may use

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/internal/inflight"
)

// Options holds the dependencies of a Receiver.
type Options struct {
	// Traces receives the valid spans of every transport. Required.
	Traces ingest.TraceConsumer
	// Logger receives the receiver's logs; nil discards them.
	Logger *slog.Logger
	// Metrics counts spans by protocol; nil counts nothing.
	Metrics *ingest.Metrics
	// Registerer takes the UDP packet counters
	// (vigil_ingest_jaeger_udp_packets_{received,malformed,dropped}_total);
	// nil keeps them unexported.
	Registerer prometheus.Registerer
	// Auth, when enabled, requires a bearer token on every HTTP request
	// (Jaeger and Zipkin) and gRPC call; nil turns authentication off.
	// UDP datagrams carry no credentials and are never authenticated:
	// expose the UDP ports only where every sender is trusted.
	Auth *auth.Tokens
	// TLS, when set, serves the collector's HTTP and gRPC APIs and Zipkin
	// over TLS with this configuration (tlsconfig.Config.ServerTLS); nil
	// serves plain text. The UDP ports have no TLS.
	TLS *tls.Config
	// Limits bounds what one span may carry; see ingest.Limits. Zero
	// fields take ingest's defaults.
	Limits ingest.Limits
	// Budget bounds the HTTP and gRPC request bytes in flight across
	// every receiver that shares it; a request it cannot cover gets HTTP
	// 429 or gRPC RESOURCE_EXHAUSTED with a retry delay. UDP datagrams
	// are bounded by UDPQueueSize instead. nil gives the receiver a
	// budget of its own of inflight.DefaultMaxBytes() (at least one
	// request of MaxRequestBytes), without metrics.
	Budget *inflight.Budget
}

// Receiver serves the Jaeger agent's UDP ports, the Jaeger collector's
// HTTP and gRPC APIs and Zipkin's v2 HTTP API. New binds the listeners of
// the enabled transports, Run serves them until its context is cancelled.
// HTTP and gRPC requests are answered with success only after the
// consumer returned nil for their valid spans. The address getters are
// safe for concurrent use; Run is called once.
type Receiver struct {
	cfg    Config
	logger *slog.Logger

	udp []*udpServer // compact first, then binary; the enabled ones

	httpLn    net.Listener
	httpSrv   *http.Server
	zipkinLn  net.Listener
	zipkinSrv *http.Server
	grpcLn    net.Listener
	grpcSrv   *grpc.Server

	running atomic.Bool
}

// New validates cfg, builds the servers and binds the listeners of the
// enabled transports, so that bind errors surface before Run and the
// bound addresses are known (useful with port 0). It returns an error when
// cfg is invalid or serves nothing (see Config.Enabled), no consumer is
// set, the budget cannot hold one request of MaxRequestBytes, the packet
// counters cannot be registered, or a listener cannot be bound; then
// nothing stays bound. The caller must eventually call Run,
// or Close.
func New(cfg Config, opts Options) (*Receiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new jaeger receiver: %w", err)
	}
	if opts.Traces == nil {
		return nil, errors.New("new jaeger receiver: no trace consumer set in options")
	}
	cfg = cfg.withDefaults()
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "jaeger")
	if opts.Budget == nil {
		budget, err := inflight.New(max(inflight.DefaultMaxBytes(), cfg.MaxRequestBytes+1), nil)
		if err != nil {
			return nil, fmt.Errorf("new jaeger receiver: %w", err)
		}
		opts.Budget = budget
	}
	if opts.Budget.Limit() <= cfg.MaxRequestBytes {
		return nil, fmt.Errorf("new jaeger receiver: in-flight budget of %d bytes cannot hold one request of max_request_bytes %d", opts.Budget.Limit(), cfg.MaxRequestBytes)
	}
	r := &Receiver{cfg: cfg, logger: logger}
	exp := &exporter{consumer: opts.Traces, limits: opts.Limits.WithDefaults(), retryAfter: cfg.RetryAfter, logger: logger}

	if cfg.UDPCompactAddr != "" || cfg.UDPBinaryAddr != "" {
		m, err := newUDPMetrics(opts.Registerer)
		if err != nil {
			return nil, fmt.Errorf("new jaeger receiver: %w", err)
		}
		pool := &sync.Pool{New: func() any {
			b := make([]byte, MaxDatagramBytes)
			return &b
		}}
		h := &datagramHandler{
			exp:     exp,
			compact: opts.Metrics.Spans(ingest.ProtocolJaegerUDPCompact),
			binary:  opts.Metrics.Spans(ingest.ProtocolJaegerUDPBinary),
			logger:  logger,
		}
		for _, l := range []struct{ name, addr string }{
			{listenerCompact, cfg.UDPCompactAddr},
			{listenerBinary, cfg.UDPBinaryAddr},
		} {
			if l.addr == "" {
				continue
			}
			s, err := newUDPServer(l.name, l.addr, cfg, pool, h, m, logger)
			if err != nil {
				return nil, errors.Join(fmt.Errorf("new jaeger receiver: %w", err), r.Close())
			}
			r.udp = append(r.udp, s)
		}
	}

	if cfg.GRPCAddr != "" {
		ln, err := net.Listen("tcp", cfg.GRPCAddr)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("new jaeger receiver: listen grpc: %w", err), r.Close())
		}
		r.grpcLn = ln
		srvOpts := []grpc.ServerOption{grpc.MaxRecvMsgSize(int(cfg.MaxRequestBytes)), grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams)}
		if opts.Auth.Enabled() {
			srvOpts = append(srvOpts,
				grpc.ChainUnaryInterceptor(opts.Auth.UnaryServerInterceptor()),
				grpc.ChainStreamInterceptor(opts.Auth.StreamServerInterceptor()))
		}
		srvOpts = append(srvOpts, opts.Budget.GRPCServerOptions(inflight.GRPCOptions{
			MaxMessageBytes: cfg.MaxRequestBytes, ReadTimeout: cfg.ReadTimeout, Refusal: overBudget(cfg.RetryAfter)})...)
		if opts.TLS != nil {
			srvOpts = append(srvOpts, grpc.Creds(credentials.NewTLS(opts.TLS)))
		}
		r.grpcSrv = grpc.NewServer(srvOpts...)
		api_v2.RegisterCollectorServiceServer(r.grpcSrv, &collectorGRPC{exp: exp, counters: opts.Metrics.Spans(ingest.ProtocolJaegerGRPC)})
	}

	var err error
	if cfg.HTTPAddr != "" {
		if r.httpLn, r.httpSrv, err = listenHTTP("http", cfg.HTTPAddr, newJaegerHTTPHandler(exp, opts, cfg, logger), opts.TLS, cfg, logger); err != nil {
			return nil, errors.Join(fmt.Errorf("new jaeger receiver: %w", err), r.Close())
		}
	}
	if cfg.ZipkinAddr != "" {
		if r.zipkinLn, r.zipkinSrv, err = listenHTTP("zipkin", cfg.ZipkinAddr, newZipkinHTTPHandler(exp, opts, cfg, logger), opts.TLS, cfg, logger); err != nil {
			return nil, errors.Join(fmt.Errorf("new jaeger receiver: %w", err), r.Close())
		}
	}
	return r, nil
}

// listenHTTP binds addr, behind TLS when tlsCfg is set, and builds the
// server to run on it.
func listenHTTP(name, addr string, h http.Handler, tlsCfg *tls.Config, cfg Config, logger *slog.Logger) (net.Listener, *http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %s: %w", name, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	return ln, &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(10*time.Second, cfg.ReadTimeout),
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}, nil
}

func (r *Receiver) udpAddr(name string) string {
	for _, s := range r.udp {
		if s.name == name {
			return s.addr()
		}
	}
	return ""
}

// UDPCompactAddr returns the address the compact-thrift UDP port is bound
// to, or "" when it is off.
func (r *Receiver) UDPCompactAddr() string { return r.udpAddr(listenerCompact) }

// UDPBinaryAddr returns the address the binary-thrift UDP port is bound
// to, or "" when it is off.
func (r *Receiver) UDPBinaryAddr() string { return r.udpAddr(listenerBinary) }

// HTTPAddr returns the address of the Jaeger collector HTTP listener, or
// "" when it is off.
func (r *Receiver) HTTPAddr() string { return lnAddr(r.httpLn) }

// GRPCAddr returns the address of the Jaeger collector gRPC listener, or
// "" when it is off.
func (r *Receiver) GRPCAddr() string { return lnAddr(r.grpcLn) }

// ZipkinAddr returns the address of the Zipkin HTTP listener, or "" when
// it is off.
func (r *Receiver) ZipkinAddr() string { return lnAddr(r.zipkinLn) }

func lnAddr(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// Run serves every enabled transport until ctx is cancelled or a server
// fails, then stops: it closes the UDP sockets and lets the workers
// consume the datagrams already queued, stops accepting HTTP and gRPC
// requests and lets those in flight finish, all within
// Config.ShutdownTimeout (then queued datagrams are dropped and
// connections closed), and returns once every goroutine it started has
// ended. It returns nil after a clean shutdown, else the serve or
// shutdown errors. Run may be called only once.
func (r *Receiver) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("run jaeger receiver: already run")
	}
	// Datagrams are consumed with a context of their own, cancelled only
	// once the shutdown timeout has passed, so that queued datagrams are
	// still stored when ctx ends.
	consumeCtx, cancelConsume := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConsume()

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	udpDone := make(chan struct{})
	var udpWG sync.WaitGroup
	for _, s := range r.udp {
		udpWG.Go(func() { s.run(consumeCtx) })
	}
	go func() { udpWG.Wait(); close(udpDone) }()
	if r.grpcSrv != nil {
		wg.Go(func() {
			if err := r.grpcSrv.Serve(r.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("serve jaeger grpc: %w", err)
			}
		})
	}
	for _, hs := range []struct {
		name string
		ln   net.Listener
		srv  *http.Server
	}{{"jaeger http", r.httpLn, r.httpSrv}, {"zipkin http", r.zipkinLn, r.zipkinSrv}} {
		if hs.srv == nil {
			continue
		}
		wg.Go(func() {
			if err := hs.srv.Serve(hs.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", hs.name, err)
			}
		})
	}
	r.logger.InfoContext(ctx, "jaeger receiver serving",
		"udp_compact_addr", r.UDPCompactAddr(), "udp_binary_addr", r.UDPBinaryAddr(),
		"http_addr", r.HTTPAddr(), "grpc_addr", r.GRPCAddr(), "zipkin_addr", r.ZipkinAddr())

	var errs []error
	select {
	case <-ctx.Done():
	case err := <-errc:
		errs = append(errs, err)
	}
	errs = append(errs, r.shutdown(udpDone, cancelConsume))
	wg.Wait()
	close(errc)
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// shutdown stops every transport in parallel within cfg.ShutdownTimeout.
func (r *Receiver) shutdown(udpDone <-chan struct{}, cancelConsume context.CancelFunc) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownTimeout)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	wg.Go(func() {
		for _, s := range r.udp {
			if err := s.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				fail(fmt.Errorf("close jaeger udp %s: %w", s.name, err))
			}
		}
		select {
		case <-udpDone:
		case <-ctx.Done():
			cancelConsume()
			<-udpDone
			fail(fmt.Errorf("stop jaeger udp: datagrams still queued after %s, dropped", r.cfg.ShutdownTimeout))
		}
	})
	if r.grpcSrv != nil {
		wg.Go(func() {
			done := make(chan struct{})
			go func() {
				r.grpcSrv.GracefulStop()
				close(done)
			}()
			select {
			case <-done:
			case <-ctx.Done():
				r.grpcSrv.Stop()
				<-done
				fail(fmt.Errorf("stop jaeger grpc: requests still running after %s, connections closed", r.cfg.ShutdownTimeout))
			}
		})
	}
	for _, hs := range []struct {
		name string
		srv  *http.Server
	}{{"jaeger http", r.httpSrv}, {"zipkin http", r.zipkinSrv}} {
		if hs.srv == nil {
			continue
		}
		wg.Go(func() {
			if err := hs.srv.Shutdown(ctx); err != nil {
				fail(errors.Join(fmt.Errorf("shut down %s: %w", hs.name, err), hs.srv.Close()))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close releases the sockets, listeners and servers of a Receiver that
// will not be run (e.g. when a later step of start-up fails). After Run
// has returned it does nothing; do not call it while Run is running
// (cancel Run's context instead). It is idempotent.
func (r *Receiver) Close() error {
	if r.grpcSrv != nil {
		r.grpcSrv.Stop()
	}
	var errs []error
	for _, srv := range []*http.Server{r.httpSrv, r.zipkinSrv} {
		if srv == nil {
			continue
		}
		if err := srv.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range r.udp {
		if err := s.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for _, ln := range []net.Listener{r.grpcLn, r.httpLn, r.zipkinLn} {
		if ln == nil {
			continue
		}
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close jaeger receiver: %w", err)
	}
	return nil
}
