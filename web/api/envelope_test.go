package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vigil-obs/vigil/storage"
)

func TestErrorStatus(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantMsg    string
	}{
		{"param", ParamError("limit", "must be an integer", errors.New("x")), 400, "parameter 'limit' must be an integer: x"},
		{"wrapped param", fmt.Errorf("parse: %w", ParamError("end", "bad", nil)), 400, "parameter 'end' bad"},
		{"not found", fmt.Errorf("get: %w", storage.ErrNotFound), 404, "trace not found"},
		{"unavailable", fmt.Errorf("get: %w", storage.ErrUnavailable), 503, "storage unavailable, retry later"},
		{"deadline", fmt.Errorf("get: %w", context.DeadlineExceeded), 504, "query timed out"},
		{"deadline and unavailable", errors.Join(storage.ErrUnavailable, context.DeadlineExceeded), 504, "query timed out"},
		{"canceled", context.Canceled, 499, "request canceled"},
		{"other", errors.New("pq: secret"), 500, "internal server error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, msg := ErrorStatus(tt.err, "trace")
			if status != tt.wantStatus || msg != tt.wantMsg {
				t.Errorf("ErrorStatus = %d %q, want %d %q", status, msg, tt.wantStatus, tt.wantMsg)
			}
		})
	}
}

func TestResponderEncodeFailure(t *testing.T) {
	var logs strings.Builder
	p := NewResponder(slog.New(slog.NewTextHandler(&logs, nil)), "test api")
	rec := httptest.NewRecorder()
	p.Write(rec, httptest.NewRequest(http.MethodGet, "/x", nil), Envelope{Data: math.NaN()})
	if rec.Code != http.StatusInternalServerError || rec.Body.String() != string(internalErrorEnvelope) {
		t.Errorf("got %d %s, want 500 with the error envelope", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "test api encode failed") {
		t.Errorf("logs = %q, want the encoding failure", logs.String())
	}
}

func TestResponderPrettyPrint(t *testing.T) {
	p := NewResponder(nil, "test api")
	for _, tc := range []struct {
		query  string
		indent bool
	}{{"", false}, {"?prettyPrint=false", false}, {"?prettyPrint=true", true}, {"?prettyPrint=1", true}} {
		rec := httptest.NewRecorder()
		p.Write(rec, httptest.NewRequest(http.MethodGet, "/x"+tc.query, nil), Envelope{Data: []string{"a"}, Total: 1})
		if got := strings.Contains(rec.Body.String(), "\n    "); got != tc.indent {
			t.Errorf("%q: indented = %v, want %v: %s", tc.query, got, tc.indent, rec.Body)
		}
		if rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%q: content type %q", tc.query, rec.Header().Get("Content-Type"))
		}
	}
}
