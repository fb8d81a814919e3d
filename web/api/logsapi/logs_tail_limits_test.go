package logsapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/internal/tail"
	"github.com/vigil-obs/vigil/storage"
)

type tailSetup struct {
	hub *tail.Hub[storage.LogRecord]
	url string // ws://…/api/logs/tail
}

// newTailSetup serves the log API's live tail, behind tokens when given.
func newTailSetup(t *testing.T, hubCfg tail.Config, limits TailConfig, tokens ...string) tailSetup {
	t.Helper()
	hub := tail.New[storage.LogRecord](hubCfg)
	mux := http.NewServeMux()
	New(noLogs{}, Options{Tail: hub, TailLimits: limits}).Register(mux)
	var h http.Handler = mux
	if len(tokens) > 0 {
		tok, err := auth.NewTokens(tokens)
		if err != nil {
			t.Fatal(err)
		}
		h = tok.Middleware(mux)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		hub.Close() // ends the handlers of connections still open
		srv.Close()
	})
	return tailSetup{hub: hub, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/logs/tail"}
}

// dial opens a live tail with an optional bearer token; it returns the
// connection, or nil and the refusal's status and message.
func (s tailSetup) dial(t *testing.T, token string) (*websocket.Conn, int, string) {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	conn, resp, err := websocket.DefaultDialer.Dial(s.url+"?service=quiet", h)
	if err == nil {
		resp.Body.Close()
		t.Cleanup(func() { conn.Close() })
		return conn, resp.StatusCode, ""
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env logsEnvelope
	if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) != 1 {
		t.Fatalf("refusal %d %q is not a log API error", resp.StatusCode, body)
	}
	return nil, resp.StatusCode, env.Errors[0].Msg
}

// waitHeld waits until the hub counts n subscriptions under key: a
// handler releases its place once it notices that its client left.
func (s tailSetup) waitHeld(t *testing.T, key string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.hub.Held(key) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s held by %d subscriptions, want %d", key, s.hub.Held(key), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLogsTailPerClientLimits: idle clients of one address or one token
// cannot take every place of the hub; others still get in, and a closed
// connection frees its place.
func TestLogsTailPerClientLimits(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		s := newTailSetup(t, tail.Config{MaxSubscribers: 10}, TailConfig{MaxPerAddress: 2})
		first, _, _ := s.dial(t, "")
		s.dial(t, "")
		conn, status, msg := s.dial(t, "")
		if conn != nil || status != http.StatusTooManyRequests || !strings.Contains(msg, "from this address (at most 2)") {
			t.Fatalf("third connection: %d %q, want 429 naming the address limit", status, msg)
		}
		first.Close()
		s.waitHeld(t, tailKeyAddr+"127.0.0.1", 1)
		if conn, status, msg := s.dial(t, ""); conn == nil {
			t.Fatalf("after a close: %d %q", status, msg)
		}
	})
	t.Run("per token", func(t *testing.T) {
		s := newTailSetup(t, tail.Config{MaxSubscribers: 10}, TailConfig{MaxPerAddress: -1, MaxPerToken: 2}, "alice", "bob")
		s.dial(t, "alice")
		s.dial(t, "alice")
		conn, status, msg := s.dial(t, "alice")
		if conn != nil || status != http.StatusTooManyRequests || !strings.Contains(msg, "with this token (at most 2)") {
			t.Fatalf("third connection of a token: %d %q, want 429 naming the token limit", status, msg)
		}
		if conn, status, msg := s.dial(t, "bob"); conn == nil {
			t.Fatalf("another token: %d %q", status, msg)
		}
	})
	t.Run("whole hub", func(t *testing.T) {
		s := newTailSetup(t, tail.Config{MaxSubscribers: 1}, TailConfig{})
		s.dial(t, "")
		if conn, status, msg := s.dial(t, ""); conn != nil || status != http.StatusServiceUnavailable || msg == "" {
			t.Fatalf("full hub: %d %q, want 503", status, msg)
		}
	})
}

// TestLogsTailIdleClose: a connection that is sent no record for
// IdleTimeout is closed with TailCloseIdle and a reason, and frees its
// place; records keep an active one open.
func TestLogsTailIdleClose(t *testing.T) {
	const idle = 200 * time.Millisecond
	s := newTailSetup(t, tail.Config{}, TailConfig{IdleTimeout: idle})
	conn, _, msg := s.dial(t, "")
	if conn == nil {
		t.Fatalf("dial: %s", msg)
	}
	// Records every idle/4 for 3×idle: the connection stays open.
	stop := time.Now().Add(3 * idle)
	for time.Now().Before(stop) {
		s.hub.Publish([]storage.LogRecord{quietRecord("still here")})
		_ = conn.SetReadDeadline(time.Now().Add(idle))
		var f tailFrame
		if err := conn.ReadJSON(&f); err != nil || f.Type != "record" {
			t.Fatalf("active connection: %+v, %v", f, err)
		}
		time.Sleep(idle / 4)
	}
	// Then nothing: closed after idle.
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(10 * idle))
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != TailCloseIdle || !strings.Contains(ce.Text, "idle") {
		t.Fatalf("idle connection: %v, want close %d with a reason", err, TailCloseIdle)
	}
	if waited := time.Since(start); waited < idle/2 {
		t.Fatalf("closed after %v, before the idle timeout of %v", waited, idle)
	}
	s.waitHeld(t, tailKeyAddr+"127.0.0.1", 0)
}

func quietRecord(body string) storage.LogRecord {
	lr := plog.NewLogRecord()
	lr.Body().SetStr(body)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	return storage.LogRecord{Service: "quiet", Resource: pcommon.NewResource(), Scope: pcommon.NewInstrumentationScope(), Record: lr}
}

func TestClientAddr(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"192.0.2.7:51000", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:51000", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::1]:443", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"[::1]:80", "::/64"},
		{"pipe", "pipe"},
	}
	for _, tc := range tests {
		t.Run(tc.remote, func(t *testing.T) {
			if got := clientAddr(tc.remote); got != tc.want {
				t.Fatalf("clientAddr(%q) = %q, want %q", tc.remote, got, tc.want)
			}
		})
	}
}

func TestRequestToken(t *testing.T) {
	tests := []struct {
		name      string
		header    http.Header
		want      string
		wantFound bool
	}{
		{"none", http.Header{}, "", false},
		{"bearer", http.Header{"Authorization": {"Bearer abc"}}, "abc", true},
		{"scheme case and spaces", http.Header{"Authorization": {"  bEaReR   abc "}}, "abc", true},
		{"other scheme", http.Header{"Authorization": {"Basic abc"}}, "", false},
		{"subprotocol", http.Header{"Sec-Websocket-Protocol": {TailSubprotocol + ", " + auth.WebSocketProtocolPrefix + "YWJj"}}, "abc", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/api/logs/tail", nil)
			r.Header = tc.header
			got, ok := requestToken(r)
			if got != tc.want || ok != tc.wantFound {
				t.Fatalf("requestToken = %q, %v; want %q, %v", got, ok, tc.want, tc.wantFound)
			}
		})
	}
}

func TestTailConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     TailConfig
		want    TailConfig
		invalid bool
	}{
		{"defaults", TailConfig{}, TailConfig{MaxPerAddress: 8, MaxPerToken: 16, IdleTimeout: 30 * time.Minute}, false},
		{"off", TailConfig{MaxPerAddress: -1, MaxPerToken: -1, IdleTimeout: -1}, TailConfig{}, false},
		{"set", TailConfig{MaxPerAddress: 2, MaxPerToken: 3, IdleTimeout: time.Hour}, TailConfig{MaxPerAddress: 2, MaxPerToken: 3, IdleTimeout: time.Hour}, false},
		{"unitless idle timeout", TailConfig{IdleTimeout: 30}, TailConfig{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err != nil) != tc.invalid {
				t.Fatalf("Validate: %v", err)
			}
			if tc.invalid {
				return
			}
			if got := tc.cfg.withDefaults(); got != tc.want {
				t.Fatalf("withDefaults: %+v, want %+v", got, tc.want)
			}
		})
	}
}
