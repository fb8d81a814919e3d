package otlp

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

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // registers the gzip compressor OTLP exporters use

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/internal/inflight"
)

// Options holds the dependencies of a Receiver.
type Options struct {
	// Traces receives the valid spans of every trace export. Each signal
	// is served only when its consumer is set (the others answer gRPC
	// UNIMPLEMENTED and HTTP 404), and at least one must be.
	Traces ingest.TraceConsumer
	// Logs receives the valid records of every log export
	// (LogsService/Export, POST /v1/logs).
	Logs ingest.LogConsumer
	// MetricPoints receives the valid metrics of every metric export
	// (MetricsService/Export, POST /v1/metrics).
	MetricPoints ingest.MetricConsumer
	// Logger receives the receiver's logs; nil discards them.
	Logger *slog.Logger
	// Metrics counts spans by protocol; nil counts nothing.
	Metrics *ingest.Metrics
	// Auth, when enabled, requires a bearer token on every request of
	// both transports; nil turns authentication off.
	Auth *auth.Tokens
	// TLS, when set, serves both transports over TLS with this
	// configuration (tlsconfig.Config.ServerTLS); nil serves plain text.
	TLS *tls.Config
	// Budget bounds the request bytes in flight across every receiver
	// that shares it; a request it cannot cover gets HTTP 429 or gRPC
	// RESOURCE_EXHAUSTED with a retry delay. nil gives the receiver a
	// budget of its own of inflight.DefaultMaxBytes() (at least one
	// request of MaxRequestBytes), without metrics.
	Budget *inflight.Budget
}

// Receiver is an OTLP/gRPC and OTLP/HTTP server. New binds its listeners,
// Run serves them until its context is cancelled. A request is answered
// with success only after the consumer returned nil for its valid spans.
// GRPCAddr and HTTPAddr are safe for concurrent use; Run is called once.
type Receiver struct {
	cfg    Config
	logger *slog.Logger

	grpcLn  net.Listener
	grpcSrv *grpc.Server
	httpLn  net.Listener
	httpSrv *http.Server

	running atomic.Bool
}

// New validates cfg, builds the servers and binds the listeners of the
// enabled transports, so that bind errors surface before Run and the bound
// addresses are known (useful with port 0). It returns an error when cfg is
// invalid, no consumer is set, the budget cannot hold one request of
// MaxRequestBytes, or a listener cannot be bound; then nothing stays
// bound. The caller must eventually call Run, or Close.
func New(cfg Config, opts Options) (*Receiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new otlp receiver: %w", err)
	}
	if opts.Traces == nil && opts.Logs == nil && opts.MetricPoints == nil {
		return nil, errors.New("new otlp receiver: no consumer set in options")
	}
	cfg = cfg.withDefaults()
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "otlp")
	if opts.Budget == nil {
		budget, err := inflight.New(max(inflight.DefaultMaxBytes(), cfg.MaxRequestBytes+1), nil)
		if err != nil {
			return nil, fmt.Errorf("new otlp receiver: %w", err)
		}
		opts.Budget = budget
	}
	if opts.Budget.Limit() <= cfg.MaxRequestBytes {
		return nil, fmt.Errorf("new otlp receiver: in-flight budget of %d bytes cannot hold one request of max_request_bytes %d", opts.Budget.Limit(), cfg.MaxRequestBytes)
	}
	r := &Receiver{cfg: cfg, logger: logger}

	var tr *traces
	if opts.Traces != nil {
		tr = newTraces(opts.Traces, cfg.Limits, cfg.RetryAfter, logger)
	}
	var lg *logs
	if opts.Logs != nil {
		lg = newLogs(opts.Logs, cfg.Limits, cfg.RetryAfter, logger)
	}
	var mt *metrics
	if opts.MetricPoints != nil {
		mt = newMetrics(opts.MetricPoints, cfg.Limits, cfg.RetryAfter, logger)
	}

	if cfg.GRPCAddr != "" {
		ln, err := net.Listen("tcp", cfg.GRPCAddr)
		if err != nil {
			return nil, fmt.Errorf("new otlp receiver: listen grpc: %w", err)
		}
		r.grpcLn = ln
		srvOpts := []grpc.ServerOption{
			grpc.MaxRecvMsgSize(int(cfg.MaxRequestBytes)),
			grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		}
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
		if opts.Traces != nil {
			ptraceotlp.RegisterGRPCServer(r.grpcSrv, &tracesGRPC{traces: tr, counters: opts.Metrics.Spans(ingest.ProtocolOTLPGRPC)})
		}
		if opts.Logs != nil {
			plogotlp.RegisterGRPCServer(r.grpcSrv, &logsGRPC{logs: lg, counters: opts.Metrics.Logs(ingest.ProtocolOTLPGRPC)})
		}
		if opts.MetricPoints != nil {
			pmetricotlp.RegisterGRPCServer(r.grpcSrv, &metricsGRPC{metrics: mt, counters: opts.Metrics.MetricPoints(ingest.ProtocolOTLPGRPC)})
		}
	}

	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("new otlp receiver: listen http: %w", err), r.Close())
		}
		if opts.TLS != nil {
			ln = tls.NewListener(ln, opts.TLS)
		}
		r.httpLn = ln
		r.httpSrv = &http.Server{
			Handler:           newHTTPMux(cfg, opts, tr, lg, mt, logger),
			ReadHeaderTimeout: min(10*time.Second, cfg.ReadTimeout),
			ReadTimeout:       cfg.ReadTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    1 << 20,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
	}
	return r, nil
}

// newHTTPMux routes each signal's OTLP/HTTP path to its handler; paths of
// signals without a consumer answer 404.
func newHTTPMux(cfg Config, opts Options, tr *traces, lg *logs, mt *metrics, logger *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	handler := func(sig httpSignal) *httpHandler {
		return &httpHandler{signal: sig, auth: opts.Auth, budget: opts.Budget, maxBytes: cfg.MaxRequestBytes, retryAfter: cfg.RetryAfter, logger: logger}
	}
	if opts.Traces != nil {
		mux.Handle("/v1/traces", handler(&signalHTTP[ptrace.Traces, ptraceotlp.ExportRequest, ptraceotlp.ExportResponse]{signal: tr, counters: opts.Metrics.Spans(ingest.ProtocolOTLPHTTP)}))
	}
	if opts.Logs != nil {
		mux.Handle("/v1/logs", handler(&signalHTTP[plog.Logs, plogotlp.ExportRequest, plogotlp.ExportResponse]{signal: lg, counters: opts.Metrics.Logs(ingest.ProtocolOTLPHTTP)}))
	}
	if opts.MetricPoints != nil {
		mux.Handle("/v1/metrics", handler(&signalHTTP[pmetric.Metrics, pmetricotlp.ExportRequest, pmetricotlp.ExportResponse]{signal: mt, counters: opts.Metrics.MetricPoints(ingest.ProtocolOTLPHTTP)}))
	}
	return mux
}

// GRPCAddr returns the address the gRPC listener is bound to, or "" when
// gRPC is off.
func (r *Receiver) GRPCAddr() string {
	if r.grpcLn == nil {
		return ""
	}
	return r.grpcLn.Addr().String()
}

// HTTPAddr returns the address the HTTP listener is bound to, or "" when
// HTTP is off.
func (r *Receiver) HTTPAddr() string {
	if r.httpLn == nil {
		return ""
	}
	return r.httpLn.Addr().String()
}

// Run serves both transports until ctx is cancelled or a server fails,
// then stops gracefully: it stops accepting, lets requests in flight finish
// for at most Config.ShutdownTimeout, closes the remaining connections, and
// returns once every goroutine it started has ended. It returns nil after a
// clean shutdown, else the serve or shutdown errors. Run may be called only
// once.
func (r *Receiver) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("run otlp receiver: already run")
	}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	if r.grpcSrv != nil {
		wg.Go(func() {
			// ErrServerStopped means shutdown came before Serve started.
			if err := r.grpcSrv.Serve(r.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("serve otlp grpc: %w", err)
			}
		})
	}
	if r.httpSrv != nil {
		wg.Go(func() {
			if err := r.httpSrv.Serve(r.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve otlp http: %w", err)
			}
		})
	}
	r.logger.InfoContext(ctx, "otlp receiver serving", "grpc_addr", r.GRPCAddr(), "http_addr", r.HTTPAddr())

	var errs []error
	select {
	case <-ctx.Done():
	case err := <-errc:
		errs = append(errs, err)
	}
	errs = append(errs, r.shutdown())
	wg.Wait()
	close(errc)
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// shutdown stops both servers in parallel within cfg.ShutdownTimeout.
func (r *Receiver) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownTimeout)
	defer cancel()
	var (
		wg      sync.WaitGroup
		grpcErr error
		httpErr error
	)
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
				grpcErr = fmt.Errorf("stop otlp grpc: requests still running after %s, connections closed", r.cfg.ShutdownTimeout)
			}
		})
	}
	if r.httpSrv != nil {
		wg.Go(func() {
			if err := r.httpSrv.Shutdown(ctx); err != nil {
				httpErr = errors.Join(fmt.Errorf("shut down otlp http: %w", err), r.httpSrv.Close())
			}
		})
	}
	wg.Wait()
	return errors.Join(grpcErr, httpErr)
}

// Close releases the listeners and servers of a Receiver that will not be
// run (e.g. when a later step of start-up fails). After Run has returned it
// does nothing; do not call it while Run is running (cancel Run's context
// instead). It is idempotent.
func (r *Receiver) Close() error {
	if r.grpcSrv != nil {
		r.grpcSrv.Stop()
	}
	var errs []error
	if r.httpSrv != nil {
		if err := r.httpSrv.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ln := range []net.Listener{r.grpcLn, r.httpLn} {
		if ln == nil {
			continue
		}
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close otlp receiver: %w", err)
	}
	return nil
}
