package web

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vigil-obs/vigil/internal/auth"
)

type apiStub struct{}

func (apiStub) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/services", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("api")) })
}

// TestHandlerUIRouting checks that pages of the UI load without a token
// while the APIs, the profiler and the reserved paths keep their routes.
func TestHandlerUIRouting(t *testing.T) {
	tokens, err := auth.NewTokens([]string{"secret"})
	if err != nil {
		t.Fatal(err)
	}
	ingest := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ingest")) })
	ui := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ui")) })
	h := Handler(Options{
		APIs:       []Mounter{apiStub{}},
		Auth:       tokens,
		Ingest:     map[string]http.Handler{"POST /api/v1/write": ingest, "POST /v1/custom": ingest},
		IngestAuth: nil,
		UI:         ui,
	})
	tests := []struct {
		method, path, token string
		status              int
		body                string
	}{
		{"GET", "/", "", 200, "ui"},
		{"GET", "/traces", "", 200, "ui"},
		{"GET", "/trace/abc", "", 200, "ui"},
		{"HEAD", "/logs", "", 200, ""},
		{"GET", "/assets/index-abc.js", "", 200, "ui"},
		{"GET", "/api/services", "", 401, ""},
		{"GET", "/api/services", "secret", 200, "api"},
		{"GET", "/api/nope", "secret", 404, ""},
		{"GET", "/debug/pprof/", "", 401, ""},
		{"GET", "/healthz", "", 200, "ok\n"},
		{"GET", "/metrics", "", 401, ""}, // no Gatherer: not the UI either
		{"POST", "/v1/custom", "", 200, "ingest"},
		{"GET", "/v1/custom", "", 401, ""},
		{"POST", "/traces", "", 401, ""},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.token != "" {
			r.Header.Set("Authorization", "Bearer "+tc.token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.status || (tc.body != "" && w.Body.String() != tc.body) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, w.Code, w.Body.String(), tc.status, tc.body)
		}
	}
}

// TestHandlerNoUI keeps the behaviour of a server without UI: every
// unknown path is behind the token check.
func TestHandlerNoUI(t *testing.T) {
	tokens, err := auth.NewTokens([]string{"secret"})
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(Options{APIs: []Mounter{apiStub{}}, Auth: tokens})
	for _, p := range []string{"/", "/traces"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		if w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s: %d, want 401", p, w.Code)
		}
	}
}
