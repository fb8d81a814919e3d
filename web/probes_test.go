package web

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadyzHidesReason: the unauthenticated readiness probe says only
// that Vigil is not ready; the reason, database text included, is logged.
func TestReadyzHidesReason(t *testing.T) {
	var logs bytes.Buffer
	secret := `FATAL: password authentication failed for user "vigil" (SQLSTATE 28P01)`
	h := Handler(Options{
		Ready:  func(context.Context) error { return errors.New(secret) },
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if w.Code != http.StatusServiceUnavailable || w.Body.String() != "not ready\n" {
		t.Fatalf("readyz: %d %q", w.Code, w.Body.String())
	}
	if !strings.Contains(logs.String(), "password authentication failed") {
		t.Fatalf("the reason is not logged: %s", logs.String())
	}
}
