package jaeger

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receiver"
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
	logger *slog.Logger
	group  *receiver.Group

	udp    []*udpServer // compact first, then binary; the enabled ones
	http   *receiver.HTTPServer
	zipkin *receiver.HTTPServer
	grpc   *receiver.GRPCServer
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
	if err := keepTagNames(); err != nil {
		return nil, fmt.Errorf("new jaeger receiver: %w", err)
	}
	cfg = cfg.withDefaults()
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "jaeger")
	budget, err := receiver.Budget(opts.Budget, cfg.MaxRequestBytes, 1)
	if err != nil {
		return nil, fmt.Errorf("new jaeger receiver: %w", err)
	}
	opts.Budget = budget
	r := &Receiver{logger: logger, group: receiver.NewGroup("jaeger", cfg.ShutdownTimeout)}
	exp := newExporter(opts.Traces, opts.Limits.WithDefaults(), cfg.RetryAfter, logger)

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
			r.group.Add("jaeger udp "+l.name, newUDPPort(s))
		}
	}

	if cfg.GRPCAddr != "" {
		srv, err := receiver.ListenGRPC(cfg.GRPCAddr, cfg.transport(), receiver.GRPCOptions{Auth: opts.Auth, Budget: opts.Budget, TLS: opts.TLS})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("new jaeger receiver: listen grpc: %w", err), r.Close())
		}
		api_v2.RegisterCollectorServiceServer(srv.Server, &collectorGRPC{exp: exp, counters: opts.Metrics.Spans(ingest.ProtocolJaegerGRPC)})
		r.grpc = srv
		r.group.Add("jaeger grpc", srv)
	}
	httpOpts := receiver.HTTPOptions{TLS: opts.TLS, Logger: logger}
	if cfg.HTTPAddr != "" {
		srv, err := receiver.ListenHTTP(cfg.HTTPAddr, newJaegerHTTPHandler(exp, opts, cfg, logger), cfg.transport(), httpOpts)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("new jaeger receiver: listen http: %w", err), r.Close())
		}
		r.http = srv
		r.group.Add("jaeger http", srv)
	}
	if cfg.ZipkinAddr != "" {
		srv, err := receiver.ListenHTTP(cfg.ZipkinAddr, newZipkinHTTPHandler(exp, opts, cfg, logger), cfg.transport(), httpOpts)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("new jaeger receiver: listen zipkin: %w", err), r.Close())
		}
		r.zipkin = srv
		r.group.Add("zipkin http", srv)
	}
	return r, nil
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
func (r *Receiver) HTTPAddr() string {
	if r.http == nil {
		return ""
	}
	return r.http.Addr()
}

// GRPCAddr returns the address of the Jaeger collector gRPC listener, or
// "" when it is off.
func (r *Receiver) GRPCAddr() string {
	if r.grpc == nil {
		return ""
	}
	return r.grpc.Addr()
}

// ZipkinAddr returns the address of the Zipkin HTTP listener, or "" when
// it is off.
func (r *Receiver) ZipkinAddr() string {
	if r.zipkin == nil {
		return ""
	}
	return r.zipkin.Addr()
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
	r.logger.InfoContext(ctx, "jaeger receiver serving",
		"udp_compact_addr", r.UDPCompactAddr(), "udp_binary_addr", r.UDPBinaryAddr(),
		"http_addr", r.HTTPAddr(), "grpc_addr", r.GRPCAddr(), "zipkin_addr", r.ZipkinAddr())
	return r.group.Run(ctx)
}

// Close releases the sockets, listeners and servers of a Receiver that
// will not be run (e.g. when a later step of start-up fails). After Run
// has returned it does nothing; do not call it while Run is running
// (cancel Run's context instead). It is idempotent.
func (r *Receiver) Close() error { return r.group.Close() }

// udpPort runs one UDP port as a receiver.Server. Its datagrams are
// consumed with a context of their own, cancelled only when the shutdown
// timeout has passed, so that datagrams queued when Run's context ends
// are still stored.
type udpPort struct {
	s             *udpServer
	consumeCtx    context.Context
	cancelConsume context.CancelFunc
	done          chan struct{} // closed when Serve returns
}

func newUDPPort(s *udpServer) *udpPort {
	ctx, cancel := context.WithCancel(context.Background())
	return &udpPort{s: s, consumeCtx: ctx, cancelConsume: cancel, done: make(chan struct{})}
}

// Serve reads and consumes until the socket is closed and the queue
// drained.
func (p *udpPort) Serve() error {
	defer close(p.done)
	p.s.run(p.consumeCtx)
	return nil
}

// Shutdown closes the socket and waits for the queued datagrams to be
// consumed until ctx ends, then drops the rest.
func (p *udpPort) Shutdown(ctx context.Context) error {
	err := p.close()
	select {
	case <-p.done:
		return err
	case <-ctx.Done():
		p.cancelConsume()
		<-p.done
		return errors.Join(&receiver.Unfinished{What: "datagrams still queued"}, err)
	}
}

// Close closes the socket of a port that will not serve.
func (p *udpPort) Close() error {
	p.cancelConsume()
	return p.close()
}

func (p *udpPort) close() error {
	if err := p.s.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
