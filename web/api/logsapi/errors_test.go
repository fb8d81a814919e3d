package logsapi

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vigil-obs/vigil/internal/tail"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/web/api"
)

func TestErrorStatus(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantMsg    string
	}{
		{"tail quota", fmt.Errorf("subscribe: %w", &tail.QuotaError{Quota: tail.Quota{Key: tailKeyToken + "abc", Limit: 2}}), 429,
			"too many live-tail connections with this token (at most 2); close one and retry"},
		{"tail quota by address", &tail.QuotaError{Quota: tail.Quota{Key: tailKeyAddr + "10.0.0.1", Limit: 8}}, 429,
			"too many live-tail connections from this address (at most 8); close one and retry"},
		{"tail full", fmt.Errorf("subscribe: %w", tail.ErrTooManySubscribers), 503, "too many live-tail subscribers"},
		{"tail closed", tail.ErrClosed, 503, "live tail closed"},
		{"handshake", &handshakeError{status: 403, err: errors.New("origin not allowed")}, 403, "origin not allowed"},
		{"param", api.ParamError("limit", "must be an integer", nil), 400, "parameter 'limit' must be an integer"},
		{"tail off", storage.ErrNotFound, 404, "resource not found"},
		{"other", errors.New("pq: secret"), 500, "internal server error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, msg := errorStatus(tt.err)
			if status != tt.wantStatus || msg != tt.wantMsg {
				t.Errorf("errorStatus = %d %q, want %d %q", status, msg, tt.wantStatus, tt.wantMsg)
			}
		})
	}
}
