package auth

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWebSocketToken(t *testing.T) {
	tk := mustTokens(t, "s3cret/with+odd=chars")
	enc := WebSocketProtocolPrefix + base64.RawURLEncoding.EncodeToString([]byte("s3cret/with+odd=chars"))
	upgrade := http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}}
	tests := []struct {
		name    string
		header  http.Header
		wantErr error
	}{
		{"token protocol next to the tail protocol", withProto(upgrade, "vigil.tail, "+enc), nil},
		{"token protocol in a second header", withProto(withProto(upgrade, "vigil.tail"), enc), nil},
		{"padded base64url", withProto(upgrade, enc+"="), nil},
		{"wrong token", withProto(upgrade, WebSocketProtocolPrefix+base64.RawURLEncoding.EncodeToString([]byte("nope"))), ErrInvalidToken},
		{"not base64", withProto(upgrade, WebSocketProtocolPrefix+"***"), ErrMissingToken},
		{"empty token", withProto(upgrade, WebSocketProtocolPrefix), ErrMissingToken},
		{"no token protocol", withProto(upgrade, "vigil.tail"), ErrMissingToken},
		{"not a WebSocket upgrade", withProto(http.Header{}, enc), ErrMissingToken},
		{"Authorization wins", withProto(withAuth(upgrade, "Bearer wrong"), enc), ErrInvalidToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/api/logs/tail", nil)
			r.Header = tc.header
			if err := tk.CheckRequest(r); !errors.Is(err, tc.wantErr) {
				t.Fatalf("CheckRequest = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestWebSocketProtocols(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Add("Sec-WebSocket-Protocol", " a ,b")
	r.Header.Add("Sec-WebSocket-Protocol", "c,,")
	got := WebSocketProtocols(r)
	if len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Fatalf("WebSocketProtocols = %q", got)
	}
}

func withProto(h http.Header, v string) http.Header {
	h = h.Clone()
	h.Add("Sec-WebSocket-Protocol", v)
	return h
}

func withAuth(h http.Header, v string) http.Header {
	h = h.Clone()
	h.Set("Authorization", v)
	return h
}
