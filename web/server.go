// Package web serves Vigil's HTTP port: health and readiness probes, its
// own Prometheus metrics, the query APIs of web/api behind the read token
// check, and the web UI of web/ui. Handlers hold no business logic; they
// call query/*.
package web

import (
	"context"
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

// Options holds the server's dependencies.
type Options struct {
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
}

// Server is the HTTP server of the main port.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	logger *slog.Logger
}

// New binds addr and prepares the routes; Run serves them.
func New(addr string, opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "http")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen http %s: %w", addr, err)
	}
	return &Server{
		srv: &http.Server{
			Handler:           Handler(opts),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		ln:     ln,
		logger: logger,
	}, nil
}

// Handler builds the route tree: probes and /metrics unauthenticated (so
// orchestrators and Prometheus can reach them), the UI's pages and assets
// unauthenticated, everything else behind the read tokens.
func Handler(opts Options) http.Handler {
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
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
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
	if opts.UI == nil {
		root.Handle("/", apiHandler)
		return root
	}
	ui := opts.UI
	root.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && isUIPath(r.URL.Path, reserved) {
			ui.ServeHTTP(w, r)
			return
		}
		apiHandler.ServeHTTP(w, r)
	}))
	return root
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
