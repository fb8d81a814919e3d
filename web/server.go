// Package web serves Vigil's HTTP port: health and readiness probes
// (/healthz, /readyz), its own Prometheus metrics (/metrics), the query
// APIs of web/api and Go's profiler (/debug/pprof/) behind the read-token
// check, the ingest routes it is given (Prometheus remote_write) behind
// the ingest-token check, and the web UI of web/ui. It holds no API
// handler of its own: web/api's handlers answer from query/*, and this
// package only mounts them (Mounter) with the checks every route needs.
//
// Every response carries X-Content-Type-Options: nosniff. With read tokens
// off, a request whose Host header is not an allowed name is refused (421),
// so that a DNS-rebinding page cannot read the APIs or open the live tail
// (see Config.AllowedHosts). Request bodies are bounded in size (API
// routes) and in reading time (every route), and connections in idle and
// response time (see Config).
package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-obs/vigil/internal/auth"
)

// Mounter adds routes to the API mux (web/api's handler sets).
type Mounter interface {
	Register(mux *http.ServeMux)
}

// ReadyFunc reports nil when Vigil can serve: migrations applied and the
// database answering.
type ReadyFunc func(ctx context.Context) error

// Options holds the server's dependencies and its Config.
type Options struct {
	// Config holds the settings; its zero value takes the defaults.
	Config   Config
	APIs     []Mounter
	Ready    ReadyFunc
	Gatherer prometheus.Gatherer // for /metrics; nil = no /metrics
	Auth     *auth.Tokens        // read tokens; nil or empty = open
	// Ingest maps route patterns ("POST /api/v1/write") to ingest handlers
	// served on this port behind IngestAuth instead of the read tokens.
	Ingest     map[string]http.Handler
	IngestAuth *auth.Tokens
	// UI serves the web UI (web/ui.Handler) for GET and HEAD requests to
	// every path that no other route owns: not under /api/ or /debug/,
	// not /metrics, /healthz, /readyz, nor an Ingest path. It is reached
	// without a token so that the login page loads; the data it shows
	// comes from the APIs, which keep the token check. nil = no UI.
	UI     http.Handler
	Logger *slog.Logger
	// TLS, when set, serves HTTPS with this configuration
	// (tlsconfig.Config.ServerTLS), remote_write included; nil serves
	// plain HTTP.
	TLS *tls.Config
}

// Server is the HTTP server of the main port.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	logger *slog.Logger
}

// New validates opts.Config, binds addr and prepares the routes; Run
// serves them. The host of addr, when it is a name, is an allowed Host
// (see Config.AllowedHosts).
func New(addr string, opts Options) (*Server, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("http config: %w", err)
	}
	cfg := opts.Config.withDefaults()
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "http")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen http %s: %w", addr, err)
	}
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
	}
	listenHost, _, err := net.SplitHostPort(addr)
	if err != nil {
		listenHost = ""
	}
	return &Server{
		srv: &http.Server{
			Handler:           handler(opts, cfg, listenHost),
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		ln:     ln,
		logger: logger,
	}, nil
}

// Handler builds the route tree: probes and /metrics unauthenticated (so
// orchestrators and Prometheus can reach them), the UI's pages and assets
// unauthenticated, everything else behind the read tokens. It applies
// opts.Config (defaults for zero fields; an invalid AllowedHosts entry
// never matches) except the timeouts, which belong to the http.Server New
// builds; the Host check knows no listen address.
func Handler(opts Options) http.Handler {
	return handler(opts, opts.Config.withDefaults(), "")
}

// handler is Handler with cfg already defaulted and the host of the listen
// address.
//
// The chain, outermost first: nosniff on every response; the Host check
// (only with read tokens off, and not for probes, /metrics and ingest
// routes); the routes, where API requests (not ingest, which has its own
// limits) get the body size bound and then the read-token check.
func handler(opts Options, cfg Config, listenHost string) http.Handler {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "http")
	api := http.NewServeMux()
	for _, m := range opts.APIs {
		m.Register(api)
	}
	// Go's profiler, behind the read tokens like the APIs.
	api.HandleFunc("GET /debug/pprof/", pprof.Index)
	api.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	api.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	api.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	api.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	root.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if opts.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := opts.Ready(ctx); err != nil {
				// The probe is unauthenticated: the reason (database
				// errors included) goes to the log only.
				logger.WarnContext(ctx, "not ready", "err", err)
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("not ready\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if opts.Gatherer != nil {
		root.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	}
	reserved := map[string]bool{"/metrics": true, "/healthz": true, "/readyz": true}
	for pattern, h := range opts.Ingest {
		if opts.IngestAuth != nil {
			h = opts.IngestAuth.Middleware(h)
		}
		root.Handle(pattern, h)
		reserved[patternPath(pattern)] = true
	}
	var apiHandler http.Handler = api
	if opts.Auth != nil {
		apiHandler = opts.Auth.Middleware(api)
	}
	apiHandler = limitBody(cfg.MaxBodyBytes, apiHandler)
	if opts.UI == nil {
		root.Handle("/", apiHandler)
	} else {
		ui := opts.UI
		root.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if (r.Method == http.MethodGet || r.Method == http.MethodHead) && isUIPath(r.URL.Path, reserved) {
				ui.ServeHTTP(w, r)
				return
			}
			apiHandler.ServeHTTP(w, r)
		}))
	}
	var h http.Handler = root
	if !opts.Auth.Enabled() {
		h = checkHost(newHostPolicy(cfg.AllowedHosts, listenHost), reserved, logger, h)
	}
	return noSniff(h)
}

// noSniff stops browsers from guessing a content type other than the one
// declared (an API answer rendered as HTML, say).
func noSniff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// limitBody bounds request bodies to n bytes (no bound when n <= 0); a
// handler reading further gets an *http.MaxBytesError.
func limitBody(n int64, next http.Handler) http.Handler {
	if n <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, n)
		}
		next.ServeHTTP(w, r)
	})
}

// patternPath returns the path of a ServeMux pattern ("POST /v1/traces"
// → "/v1/traces").
func patternPath(pattern string) string {
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = strings.TrimSpace(p)
	}
	if i := strings.Index(pattern, "/"); i > 0 { // a host part
		pattern = pattern[i:]
	}
	return pattern
}

// isUIPath reports whether a request path belongs to the UI rather than
// to the APIs, the profiler, or a reserved (probe, metrics, ingest) path.
func isUIPath(p string, reserved map[string]bool) bool {
	if p == "/api" || strings.HasPrefix(p, "/api/") || p == "/debug" || strings.HasPrefix(p, "/debug/") {
		return false
	}
	return !reserved[p] && !reserved[strings.TrimSuffix(p, "/")]
}

// Addr returns the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx is cancelled, then shuts down, giving in-flight
// requests up to 10 seconds.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shutdown http: %w", err)
	}
	return nil
}
