package receiver

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

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // registers the gzip compressor OTLP and Jaeger gRPC senders use

	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/internal/inflight"
)

// Server is one listener of a receiver, run by a Group.
type Server interface {
	// Serve serves until Shutdown or Close stops it, then returns nil;
	// any other return is the error that stopped it.
	Serve() error
	// Shutdown stops taking new work and waits for the work in flight
	// until ctx ends; then it stops the rest at once and returns an
	// *Unfinished error. Serve returns soon after Shutdown does.
	Shutdown(ctx context.Context) error
	// Close releases a server that will not serve, or stops one at once.
	// It is idempotent.
	Close() error
}

// Unfinished is the error of a Shutdown whose context ended first. What
// says what was cut ("requests still running", "datagrams still
// queued").
type Unfinished struct{ What string }

func (e *Unfinished) Error() string { return e.What + ", stopped forcibly" }

// Group runs the servers of one receiver together. Build it with
// NewGroup and Add in the receiver's New, so that every listener is
// bound (and bind errors known) before Run. Run may be called once; Close
// releases a Group that will not run.
type Group struct {
	name            string // "otlp", "jaeger": the start of error messages
	shutdownTimeout time.Duration
	servers         []namedServer
	running         atomic.Bool
}

type namedServer struct {
	name string // "otlp grpc", "zipkin http"
	srv  Server
}

// NewGroup returns an empty group of the receiver name whose shutdown
// takes at most shutdownTimeout.
func NewGroup(name string, shutdownTimeout time.Duration) *Group {
	return &Group{name: name, shutdownTimeout: shutdownTimeout}
}

// Add adds srv under name, which errors use ("serve otlp grpc: ...").
func (g *Group) Add(name string, srv Server) {
	g.servers = append(g.servers, namedServer{name, srv})
}

// Run serves every server until ctx is cancelled or one fails, then stops
// them all in parallel: each stops taking new work and lets the work in
// flight finish for at most the shutdown timeout, after which it is cut.
// Run returns once every goroutine it started has ended: nil after a
// clean shutdown, else the serve and shutdown errors. A second call
// returns an error at once.
func (g *Group) Run(ctx context.Context) error {
	if !g.running.CompareAndSwap(false, true) {
		return fmt.Errorf("run %s receiver: already run", g.name)
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(g.servers))
	for _, s := range g.servers {
		wg.Go(func() {
			if err := s.srv.Serve(); err != nil {
				errc <- fmt.Errorf("serve %s: %w", s.name, err)
			}
		})
	}
	var errs []error
	select {
	case <-ctx.Done():
	case err := <-errc:
		errs = append(errs, err)
	}
	errs = append(errs, g.shutdown())
	wg.Wait()
	close(errc)
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// shutdown stops every server in parallel within the shutdown timeout.
func (g *Group) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), g.shutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(g.servers))
	for i, s := range g.servers {
		wg.Go(func() {
			err := s.srv.Shutdown(ctx)
			var cut *Unfinished
			switch {
			case errors.As(err, &cut):
				errs[i] = fmt.Errorf("stop %s: %s after %s, stopped forcibly", s.name, cut.What, g.shutdownTimeout)
			case err != nil:
				errs[i] = fmt.Errorf("stop %s: %w", s.name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close closes every server, releasing its listener, for a receiver that
// will not be run (e.g. when a later step of start-up fails). After Run
// has returned it does nothing; do not call it while Run is running
// (cancel Run's context instead). It is idempotent.
func (g *Group) Close() error {
	var errs []error
	for _, s := range g.servers {
		if err := s.srv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", s.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close %s receiver: %w", g.name, err)
	}
	return nil
}

// GRPCOptions are the dependencies of a gRPC transport.
type GRPCOptions struct {
	// Auth, when enabled, requires a bearer token on every call.
	Auth *auth.Tokens
	// Budget charges each request message (see
	// inflight.Budget.GRPCServerOptions); refused calls get OverBudget.
	// Required.
	Budget *inflight.Budget
	// TLS, when set, serves over TLS with this configuration.
	TLS *tls.Config
}

// GRPCServer is a gRPC server bound to its listener. Register services on
// its Server before the Group runs.
type GRPCServer struct {
	*grpc.Server
	ln net.Listener
}

// ListenGRPC binds addr and builds a gRPC server with what every
// receiver's gRPC transport has: messages of at most cfg.MaxRequestBytes,
// cfg.MaxConcurrentStreams per connection, authentication first, then the
// in-flight budget and cfg.ReadTimeout, and TLS when o.TLS is set. cfg
// must have its defaults applied. The error is net.Listen's.
func ListenGRPC(addr string, cfg Config, o GRPCOptions) (*GRPCServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(cfg.MaxRequestBytes)),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
	}
	if o.Auth.Enabled() {
		opts = append(opts,
			grpc.ChainUnaryInterceptor(o.Auth.UnaryServerInterceptor()),
			grpc.ChainStreamInterceptor(o.Auth.StreamServerInterceptor()))
	}
	opts = append(opts, o.Budget.GRPCServerOptions(inflight.GRPCOptions{
		MaxMessageBytes: cfg.MaxRequestBytes, ReadTimeout: cfg.ReadTimeout, Refusal: OverBudget(cfg.RetryAfter)})...)
	if o.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(o.TLS)))
	}
	return &GRPCServer{Server: grpc.NewServer(opts...), ln: ln}, nil
}

// Addr returns the bound address.
func (s *GRPCServer) Addr() string { return s.ln.Addr().String() }

// Serve implements Server.
func (s *GRPCServer) Serve() error {
	// ErrServerStopped means the shutdown came before Serve started.
	if err := s.Server.Serve(s.ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// Shutdown implements Server: GracefulStop, then Stop when ctx ends.
func (s *GRPCServer) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Stop()
		<-done
		return &Unfinished{What: "requests still running"}
	}
}

// Close implements Server.
func (s *GRPCServer) Close() error {
	s.Stop()
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// HTTPOptions are the dependencies of an HTTP transport.
type HTTPOptions struct {
	// TLS, when set, serves over TLS with this configuration.
	TLS *tls.Config
	// Logger receives the server's own errors (TLS handshakes, bad
	// requests it answers itself), at warning level.
	Logger *slog.Logger
}

// HTTPServer is an HTTP server bound to its listener.
type HTTPServer struct {
	srv    *http.Server
	ln     net.Listener
	active atomic.Int64 // requests whose handler has not returned
}

// ListenHTTP binds addr and builds an HTTP server of h with what every
// receiver's HTTP transport has: headers within 10 s (or cfg.ReadTimeout
// when shorter) and 1 MiB, a request read within cfg.ReadTimeout, idle
// connections closed after cfg.IdleTimeout, TLS when o.TLS is set. cfg
// must have its defaults applied. The error is net.Listen's.
func ListenHTTP(addr string, h http.Handler, cfg Config, o HTTPOptions) (*HTTPServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if o.TLS != nil {
		ln = tls.NewListener(ln, o.TLS)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &HTTPServer{ln: ln}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.active.Add(1)
			defer s.active.Add(-1)
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: min(10*time.Second, cfg.ReadTimeout),
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Addr returns the bound address.
func (s *HTTPServer) Addr() string { return s.ln.Addr().String() }

// Serve implements Server.
func (s *HTTPServer) Serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown implements Server: http.Server.Shutdown, then Close when ctx
// ends. http.Server.Shutdown also waits for connections that were opened
// but have sent no request yet (for up to 5 s); those are closed without
// an error, since no request is cut: only handlers still running make the
// shutdown Unfinished.
func (s *HTTPServer) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err == nil {
		return nil
	}
	running := s.active.Load()
	closeErr := s.srv.Close()
	if ctx.Err() != nil {
		if running == 0 {
			return closeErr
		}
		return errors.Join(&Unfinished{What: "requests still running"}, closeErr)
	}
	return errors.Join(err, closeErr)
}

// Close implements Server.
func (s *HTTPServer) Close() error {
	err := s.srv.Close()
	if lerr := s.ln.Close(); lerr != nil && !errors.Is(lerr, net.ErrClosed) {
		err = errors.Join(err, lerr)
	}
	return err
}
