package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-obs/vigil/alerting/notify"
	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/alertstore"
)

// waitTimeout bounds every wait for something asynchronous; it is generous
// so that a slow machine does not fail the tests, and never asserted on.
const waitTimeout = 30 * time.Second

// newDB returns a pool on a fresh migrated database.
func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return pool
}

// bundle is one running notifier.
type bundle struct {
	n     *notify.Notifier
	store *alertstore.Store
	reg   *prometheus.Registry
	stop  func()
}

// start builds a notifier over pool and runs it until stop or the end of
// the test.
func start(t *testing.T, pool *pgxpool.Pool, cfg notify.Config, elector notify.Elector) *bundle {
	t.Helper()
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = 20 * time.Millisecond
	}
	if cfg.ExternalURL == "" {
		cfg.ExternalURL = "http://vigil.example:8080/"
	}
	b := &bundle{store: alertstore.New(pool), reg: prometheus.NewRegistry()}
	n, err := notify.New(cfg, notify.Options{
		Store:      b.store,
		Registerer: b.reg,
		Elector:    elector,
		Logger:     testLogger(t),
	})
	if err != nil {
		t.Fatalf("new notifier: %v", err)
	}
	b.n = n
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(b.stop)
	return b
}

// hook is a loopback receiver: it answers with status and body, and hands
// each request body to bodies.
type hook struct {
	srv    *httptest.Server
	bodies chan []byte
	mu     sync.Mutex
	hits   int
}

func newHook(t *testing.T, status int, answer string) *hook {
	t.Helper()
	h := &hook{bodies: make(chan []byte, 100)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.hits++
		h.mu.Unlock()
		select {
		case h.bodies <- body:
		default:
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits
}

// next returns the next body the hook received.
func (h *hook) next(t *testing.T) []byte {
	t.Helper()
	select {
	case b := <-h.bodies:
		return b
	case <-time.After(waitTimeout):
		t.Fatalf("no notification within %s", waitTimeout)
		return nil
	}
}

// webhookMessage is the part of Alertmanager's webhook (version 4) the
// tests read.
type webhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

func (h *hook) nextMessage(t *testing.T) webhookMessage {
	t.Helper()
	var m webhookMessage
	b := h.next(t)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode webhook %s: %v", b, err)
	}
	return m
}

// writeConfig writes an Alertmanager file and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// counter returns the sum of a metric family's counters (or gauges).
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += value(m)
		}
	}
	return sum
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// history returns the history entries of a receiver.
func history(t *testing.T, n *notify.Notifier, receiver string) []alertstore.Notification {
	t.Helper()
	h, err := n.History(context.Background(), notify.HistoryFilter{Receiver: receiver, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func labelsOf(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func alertstoreOf(pool *pgxpool.Pool) *alertstore.Store { return alertstore.New(pool) }
