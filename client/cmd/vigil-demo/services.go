package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-obs/vigil/client"
	"github.com/vigil-obs/vigil/client/otelsetup"
)

// seedBuckets are the histogram buckets of the seed's
// http_request_duration_seconds.
var seedBuckets = []float64{0.1, 0.5, 1, 2, 5}

// serverMetrics are the seed's service metrics, on a registry of their own.
type serverMetrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	active   prometheus.Gauge
}

func newServerMetrics(service string) *serverMetrics {
	m := &serverMetrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "Total HTTP requests."},
		[]string{"method", "route", "status_code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "HTTP request duration in seconds.", Buckets: seedBuckets},
		[]string{"method", "route", "status_code"})
	active := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "active_connections", Help: "Requests in progress."}, []string{"service"})
	m.active = active.WithLabelValues(service)
	m.reg.MustRegister(m.requests, m.duration, active, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// instrument wraps a service's mux with a server span (continuing the
// caller's W3C trace context), the seed's metrics and a structured access
// log line, as the seed's middlewares do.
func instrument(mux *http.ServeMux, m *serverMetrics, tracer trace.Tracer, logger *slog.Logger) http.Handler {
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.active.Inc()
		defer m.active.Dec()
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("url.path", r.URL.Path),
			attribute.String("server.address", r.Host)))
		defer span.End()
		reqID := r.Header.Get("X-Request-ID")
		if reqID == "" {
			reqID = newID()
			r.Header.Set("X-Request-ID", reqID)
		}
		sw := &statusWriter{ResponseWriter: w}
		sw.Header().Set("X-Request-ID", reqID)
		r = r.WithContext(ctx)
		mux.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		route := r.Pattern
		if _, p, ok := strings.Cut(route, " "); ok {
			route = p
		}
		if route == "" {
			route = "unmatched"
		}
		dur := time.Since(start)
		code := strconv.Itoa(sw.status)
		m.requests.WithLabelValues(r.Method, route, code).Inc()
		m.duration.WithLabelValues(r.Method, route, code).Observe(dur.Seconds())
		span.SetName(r.Method + " " + route)
		span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, code)
		}
		if route != "/metrics" && route != "/health" && route != "/ready" {
			logger.InfoContext(ctx, "request", "request_id", reqID, "method", r.Method, "path", r.URL.Path,
				"status_code", sw.status, "duration_ms", float64(dur.Microseconds())/1000, "user_agent", r.UserAgent())
		}
	})
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is sent: a failed write means the client went away, and
	// there is nobody left to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// fault is an instance's injected misbehaviour.
type fault struct {
	mu    sync.Mutex
	mode  string // none, slow or fail
	delay time.Duration
	rate  float64 // share of failing requests in fail mode
}

func (f *fault) set(mode string, delay time.Duration, rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode, f.delay, f.rate = mode, delay, rate
}

func (f *fault) get() (string, time.Duration, float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mode, f.delay, f.rate
}

// apply delays or fails a request according to the fault; it reports
// whether the request was answered.
func (f *fault) apply(w http.ResponseWriter, r *http.Request) bool {
	mode, delay, rate := f.get()
	switch mode {
	case "slow":
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return true
		}
	case "fail":
		if mrand.Float64() < rate {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "injected failure"})
			return true
		}
	}
	return false
}

// parseFault reads mode, delay and rate from a query.
func parseFault(r *http.Request, defDelay time.Duration) (string, time.Duration, float64, error) {
	q := r.URL.Query()
	mode := q.Get("mode")
	if mode == "ok" {
		mode = "none"
	}
	if mode != "none" && mode != "slow" && mode != "fail" {
		return "", 0, 0, fmt.Errorf("mode: want ok, slow or fail, got %q", q.Get("mode"))
	}
	delay := defDelay
	if v := q.Get("delay"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Minute {
			return "", 0, 0, fmt.Errorf("delay: want a duration in [0, 1m], got %q", v)
		}
		delay = d
	}
	rate := 1.0
	if v := q.Get("rate"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return "", 0, 0, fmt.Errorf("rate: want a number in [0, 1], got %q", v)
		}
		rate = f
	}
	return mode, delay, rate, nil
}

// userService is one instance of the seed's user service.
type userService struct {
	id      string
	addr    string
	logger  *slog.Logger
	tel     *otelsetup.Providers
	metrics *serverMetrics
	fault   fault
	started time.Time
	nextID  atomic.Int64
}

func newUserService(id, addr string, logger *slog.Logger, tel *otelsetup.Providers) *userService {
	u := &userService{id: id, addr: addr, logger: logger, tel: tel, metrics: newServerMetrics("user-service"), started: time.Now()}
	u.fault.set("none", 0, 0)
	u.nextID.Store(1000)
	return u
}

func (u *userService) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if u.fault.apply(w, r) {
			return
		}
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || id < 1 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "id: want a positive integer"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "name": fmt.Sprintf("User %d", id), "email": fmt.Sprintf("user%d@example.com", id), "served_by": u.id,
		})
	})
	mux.HandleFunc("POST /users", func(w http.ResponseWriter, r *http.Request) {
		if u.fault.apply(w, r) {
			return
		}
		var in struct {
			Name  string `json:"name"`
			Email string `json:"email"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil || in.Name == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: want JSON with a non-empty name"})
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"id": u.nextID.Add(1), "name": in.Name, "email": in.Email, "served_by": u.id})
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "healthy", "timestamp": time.Now().UTC(), "uptime": time.Since(u.started).Seconds()})
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(u.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /admin/fault", func(w http.ResponseWriter, r *http.Request) {
		mode, delay, rate, err := parseFault(r, 800*time.Millisecond)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		u.fault.set(mode, delay, rate)
		u.logger.WarnContext(r.Context(), "fault changed", "mode", mode, "delay", delay, "rate", rate)
		writeJSON(w, http.StatusOK, map[string]any{"instance": u.id, "mode": mode, "delay": delay.String(), "rate": rate})
	})
	return instrument(mux, u.metrics, u.tel.TracerProvider.Tracer("vigil-demo/user-service"), u.logger)
}

// gateway fronts user-service through the reference client.
type gateway struct {
	c       *client.Client
	http    *http.Client
	users   []*userService
	logger  *slog.Logger
	tel     *otelsetup.Providers
	metrics *serverMetrics
}

func newGateway(c *client.Client, users []*userService, logger *slog.Logger, tel *otelsetup.Providers) *gateway {
	return &gateway{c: c, http: c.HTTPClient(), users: users, logger: logger, tel: tel, metrics: newServerMetrics("gateway")}
}

func (g *gateway) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://user-service/users/"+id, nil)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "id: invalid"})
			return
		}
		req.Header.Set("X-Request-ID", r.Header.Get("X-Request-ID"))
		g.forward(w, r, req, id)
	})
	mux.HandleFunc("POST /users", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, "http://user-service/users", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-ID", r.Header.Get("X-Request-ID"))
		if k := r.Header.Get("Idempotency-Key"); k != "" {
			req.Header.Set("Idempotency-Key", k)
		}
		g.forward(w, r, req, "")
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "healthy"})
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		insts, _ := g.c.Instances("user-service")
		for _, in := range insts {
			if !in.Ejected {
				writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "user_service_instances": len(insts)})
				return
			}
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "user_service_instances": len(insts)})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /admin/instances", func(w http.ResponseWriter, r *http.Request) {
		insts, _ := g.c.Instances("user-service")
		out := make([]map[string]any, 0, len(insts))
		for _, in := range insts {
			out = append(out, map[string]any{"addr": in.Addr, "ejected": in.Ejected, "breaker": in.Breaker.String(),
				"outstanding": in.Outstanding, "latency_ewma_ms": float64(in.Latency.Microseconds()) / 1000})
		}
		state, _ := g.c.BreakerState("user-service")
		writeJSON(w, http.StatusOK, map[string]any{"service": "user-service", "breaker": state.String(), "instances": out})
	})
	mux.HandleFunc("POST /admin/fault", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("instance"))
		if err != nil || n < 1 || n > len(g.users) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("instance: want 1 to %d", len(g.users))})
			return
		}
		mode, delay, rate, err := parseFault(r, 800*time.Millisecond)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		u := g.users[n-1]
		u.fault.set(mode, delay, rate)
		g.logger.WarnContext(r.Context(), "fault changed", "target", u.id, "mode", mode, "delay", delay, "rate", rate)
		writeJSON(w, http.StatusOK, map[string]any{"instance": u.id, "addr": u.addr, "mode": mode, "delay": delay.String(), "rate": rate})
	})
	return instrument(mux, g.metrics, g.tel.TracerProvider.Tracer("vigil-demo/gateway"), g.logger)
}

// forward sends req to user-service and relays the answer. When the circuit
// is open a GET gets the seed's degraded answer instead of an error.
func (g *gateway) forward(w http.ResponseWriter, r *http.Request, req *http.Request, id string) {
	resp, err := g.http.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, client.ErrCircuitOpen) && id != "":
			g.logger.WarnContext(r.Context(), "user-service circuit open, serving fallback", "err", err)
			writeJSON(w, http.StatusOK, map[string]any{"id": id, "status": "cached"})
		case errors.Is(err, context.Canceled):
			// The caller went away; nobody reads the answer.
		default:
			g.logger.ErrorContext(r.Context(), "user-service call failed", "err", err)
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": "user-service unavailable"})
		}
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	// The status is sent: a body cut short is all the client can still
	// see of a failure here.
	_, _ = io.Copy(w, resp.Body)
}

// generateLoad calls the gateway at rps until ctx ends: mostly reads, a few
// creates. At most 64 requests are in flight.
func generateLoad(ctx context.Context, base string, rps float64, logger *slog.Logger) error {
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	sem := make(chan struct{}, 64)
	tick := time.NewTicker(time.Duration(float64(time.Second) / rps))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			logger.WarnContext(ctx, "load generator saturated, skipping a request")
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			var req *http.Request
			if mrand.IntN(20) == 0 {
				req, _ = http.NewRequestWithContext(ctx, http.MethodPost, base+"/users", strings.NewReader(`{"name":"new user","email":"new@example.com"}`))
			} else {
				req, _ = http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/users/%d", base, 1+mrand.IntN(100)), nil)
			}
			resp, err := hc.Do(req)
			if err != nil {
				return
			}
			// The load only has to reach the services; what comes back,
			// or fails to, is theirs to trace.
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
}
