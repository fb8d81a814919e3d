package logsapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/internal/tail"
	"github.com/vigil-obs/vigil/storage"
)

type noLogs struct{}

func (noLogs) FindLogs(context.Context, storage.LogQuery) (storage.LogPage, error) {
	return storage.LogPage{}, nil
}

func (noLogs) LogHistogram(context.Context, storage.LogQuery, int) ([]storage.LogBucket, time.Duration, bool, error) {
	return nil, 0, false, nil
}

func (noLogs) TraceLogs(context.Context, pcommon.TraceID) ([]storage.LogRecord, error) {
	return nil, nil
}

// TestLogsTailBrowserAuth checks the browser's way into the live tail
// behind read tokens: the token travels as a vigil.bearer.* subprotocol
// and the handshake selects the tail protocol, never echoing the token.
func TestLogsTailBrowserAuth(t *testing.T) {
	hub := tail.New[storage.LogRecord](tail.Config{})
	defer hub.Close()
	tokens, err := auth.NewTokens([]string{"read-secret"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	New(noLogs{}, Options{Tail: hub}).Register(mux)
	srv := httptest.NewServer(tokens.Middleware(mux))
	defer srv.Close()
	u := "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/logs/tail"
	bearer := func(tok string) string {
		return auth.WebSocketProtocolPrefix + base64.RawURLEncoding.EncodeToString([]byte(tok))
	}
	tests := []struct {
		name      string
		protocols []string
		status    int
		selected  string
	}{
		{"tail and token", []string{TailSubprotocol, bearer("read-secret")}, http.StatusSwitchingProtocols, TailSubprotocol},
		{"token first", []string{bearer("read-secret"), TailSubprotocol}, http.StatusSwitchingProtocols, TailSubprotocol},
		{"token alone is echoed", []string{bearer("read-secret")}, http.StatusSwitchingProtocols, bearer("read-secret")},
		{"wrong token", []string{TailSubprotocol, bearer("nope")}, http.StatusUnauthorized, ""},
		{"no token", []string{TailSubprotocol}, http.StatusUnauthorized, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := websocket.Dialer{Subprotocols: tc.protocols}
			conn, resp, err := d.Dial(u, http.Header{"Origin": {srv.URL}})
			if resp == nil {
				t.Fatalf("dial: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tc.status, err)
			}
			if conn == nil {
				return
			}
			defer conn.Close()
			if got := conn.Subprotocol(); got != tc.selected {
				t.Fatalf("selected subprotocol %q, want %q", got, tc.selected)
			}
		})
	}
}
