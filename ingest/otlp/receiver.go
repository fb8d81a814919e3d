package otlp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receiver"
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
// with success only after the consumer returned nil for its valid items.
// GRPCAddr and HTTPAddr are safe for concurrent use; Run is called once.
type Receiver struct {
	logger *slog.Logger
	group  *receiver.Group
	grpc   *receiver.GRPCServer // nil when gRPC is off
	http   *receiver.HTTPServer // nil when HTTP is off
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
	budget, err := receiver.Budget(opts.Budget, cfg.MaxRequestBytes, 1)
	if err != nil {
		return nil, fmt.Errorf("new otlp receiver: %w", err)
	}
	opts.Budget = budget
	r := &Receiver{logger: logger, group: receiver.NewGroup("otlp", cfg.ShutdownTimeout)}

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
		srv, err := receiver.ListenGRPC(cfg.GRPCAddr, cfg.transport(), receiver.GRPCOptions{Auth: opts.Auth, Budget: opts.Budget, TLS: opts.TLS})
		if err != nil {
			return nil, fmt.Errorf("new otlp receiver: listen grpc: %w", err)
		}
		r.grpc = srv
		r.group.Add("otlp grpc", srv)
		if opts.Traces != nil {
			ptraceotlp.RegisterGRPCServer(srv.Server, &tracesGRPC{traces: tr, counters: opts.Metrics.Spans(ingest.ProtocolOTLPGRPC)})
		}
		if opts.Logs != nil {
			plogotlp.RegisterGRPCServer(srv.Server, &logsGRPC{logs: lg, counters: opts.Metrics.Logs(ingest.ProtocolOTLPGRPC)})
		}
		if opts.MetricPoints != nil {
			pmetricotlp.RegisterGRPCServer(srv.Server, &metricsGRPC{metrics: mt, counters: opts.Metrics.MetricPoints(ingest.ProtocolOTLPGRPC)})
		}
	}

	if cfg.HTTPAddr != "" {
		srv, err := receiver.ListenHTTP(cfg.HTTPAddr, newHTTPMux(cfg, opts, tr, lg, mt, logger), cfg.transport(),
			receiver.HTTPOptions{TLS: opts.TLS, Logger: logger})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("new otlp receiver: listen http: %w", err), r.Close())
		}
		r.http = srv
		r.group.Add("otlp http", srv)
	}
	return r, nil
}

// newHTTPMux routes each signal's OTLP/HTTP path to its handler; paths of
// signals without a consumer answer 404.
func newHTTPMux(cfg Config, opts Options, tr *traces, lg *logs, mt *metrics, logger *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	body := receiver.BodyReader{MaxBytes: cfg.MaxRequestBytes, Encodings: []string{"gzip", "deflate", "zstd"}, RetryAfter: cfg.RetryAfter}
	handler := func(sig httpSignal) *httpHandler {
		return &httpHandler{signal: sig, auth: opts.Auth, budget: opts.Budget, body: body, logger: logger}
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
	if r.grpc == nil {
		return ""
	}
	return r.grpc.Addr()
}

// HTTPAddr returns the address the HTTP listener is bound to, or "" when
// HTTP is off.
func (r *Receiver) HTTPAddr() string {
	if r.http == nil {
		return ""
	}
	return r.http.Addr()
}

// Run serves both transports until ctx is cancelled or a server fails,
// then stops gracefully: it stops accepting, lets requests in flight finish
// for at most Config.ShutdownTimeout, closes the remaining connections, and
// returns once every goroutine it started has ended. It returns nil after a
// clean shutdown, else the serve or shutdown errors. Run may be called only
// once.
func (r *Receiver) Run(ctx context.Context) error {
	r.logger.InfoContext(ctx, "otlp receiver serving", "grpc_addr", r.GRPCAddr(), "http_addr", r.HTTPAddr())
	return r.group.Run(ctx)
}

// Close releases the listeners and servers of a Receiver that will not be
// run (e.g. when a later step of start-up fails). After Run has returned it
// does nothing; do not call it while Run is running (cancel Run's context
// instead). It is idempotent.
func (r *Receiver) Close() error { return r.group.Close() }
