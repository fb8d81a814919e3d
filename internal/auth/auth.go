package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
)

var (
	// ErrMissingToken is returned when authentication is on and the request
	// carries no bearer token (no Authorization header, or another scheme).
	ErrMissingToken = errors.New("missing bearer token")
	// ErrInvalidToken is returned when the request carries a bearer token
	// that is not one of the accepted tokens.
	ErrInvalidToken = errors.New("invalid bearer token")
)

// Tokens is an immutable set of accepted bearer tokens. A nil or empty
// Tokens turns authentication off: every check passes. Safe for concurrent
// use.
type Tokens struct {
	// digests holds SHA-256 digests of the accepted tokens so that every
	// comparison handles equal-length inputs and the length of an accepted
	// token does not leak through timing.
	digests [][sha256.Size]byte
}

// NewTokens returns the set of accepted tokens. An empty list turns
// authentication off. A token must be non-empty and consist of visible
// ASCII characters (no spaces or control characters), as a token that
// cannot be written in an Authorization header could never match;
// otherwise NewTokens returns an error naming its index (never the token).
func NewTokens(tokens []string) (*Tokens, error) {
	t := &Tokens{digests: make([][sha256.Size]byte, 0, len(tokens))}
	for i, tok := range tokens {
		if tok == "" {
			return nil, fmt.Errorf("new tokens: token %d is empty", i)
		}
		for j := 0; j < len(tok); j++ {
			if c := tok[j]; c <= ' ' || c >= 0x7f {
				return nil, fmt.Errorf("new tokens: token %d contains a space, control or non-ASCII character", i)
			}
		}
		t.digests = append(t.digests, sha256.Sum256([]byte(tok)))
	}
	return t, nil
}

// Enabled reports whether authentication is on, that is whether at least
// one token is accepted.
func (t *Tokens) Enabled() bool {
	return t != nil && len(t.digests) > 0
}

// Check checks the value of an Authorization header (or of the gRPC
// "authorization" metadata). It returns nil when authentication is off or
// the value is "Bearer <token>" (scheme case-insensitive) with an accepted
// token, ErrMissingToken when there is no bearer token, and ErrInvalidToken
// when the token is not accepted. The comparison with the accepted tokens
// takes the same time whichever token, if any, matches.
func (t *Tokens) Check(authorization string) error {
	if !t.Enabled() {
		return nil
	}
	token, ok := bearerToken(authorization)
	if !ok {
		return ErrMissingToken
	}
	d := sha256.Sum256([]byte(token))
	match := 0
	for i := range t.digests {
		match |= subtle.ConstantTimeCompare(d[:], t.digests[i][:])
	}
	if match != 1 {
		return ErrInvalidToken
	}
	return nil
}

// CheckRequest checks the Authorization header of r, as Check does. A
// WebSocket handshake without an Authorization header may carry the token
// as a subprotocol instead (see WebSocketToken), since browsers cannot set
// headers on a WebSocket.
func (t *Tokens) CheckRequest(r *http.Request) error {
	if !t.Enabled() {
		return nil
	}
	authorization := r.Header.Get("Authorization")
	if authorization == "" && isWebSocketUpgrade(r) {
		if tok, ok := WebSocketToken(r); ok {
			authorization = "Bearer " + tok
		}
	}
	return t.Check(authorization)
}

// WebSocketProtocolPrefix starts the WebSocket subprotocol that carries a
// bearer token: "vigil.bearer." followed by the token in unpadded
// base64url (RFC 4648 section 5), so that any token is a valid protocol
// name. A browser offers it next to the protocol it speaks, e.g.
// new WebSocket(url, ["vigil.tail", "vigil.bearer." + base64url(token)]).
const WebSocketProtocolPrefix = "vigil.bearer."

// WebSocketToken returns the token of the first vigil.bearer.* subprotocol
// offered in r's Sec-WebSocket-Protocol headers, if any decodes.
func WebSocketToken(r *http.Request) (string, bool) {
	for _, p := range WebSocketProtocols(r) {
		enc, ok := strings.CutPrefix(p, WebSocketProtocolPrefix)
		if !ok {
			continue
		}
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(enc, "="))
		if err != nil || len(b) == 0 {
			continue
		}
		return string(b), true
	}
	return "", false
}

// WebSocketProtocols returns the subprotocols offered in r's
// Sec-WebSocket-Protocol headers, in order.
func WebSocketProtocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// bearerToken extracts the token of "Bearer <token>" (RFC 6750 section
// 2.1; the scheme is case-insensitive per RFC 9110 section 11.1).
func bearerToken(authorization string) (string, bool) {
	const scheme = "bearer"
	if len(authorization) <= len(scheme) || !strings.EqualFold(authorization[:len(scheme)], scheme) {
		return "", false
	}
	rest := authorization[len(scheme):]
	if rest[0] != ' ' {
		return "", false
	}
	token := strings.TrimLeft(rest, " ")
	if token == "" {
		return "", false
	}
	return token, true
}

// Challenge returns the WWW-Authenticate header value to send with a 401
// answer caused by err, a result of Check: per RFC 6750 section 3, an
// invalid token is reported as error="invalid_token" while a missing token
// gets the bare challenge.
func Challenge(err error) string {
	if errors.Is(err, ErrInvalidToken) {
		return `Bearer realm="vigil", error="invalid_token"`
	}
	return `Bearer realm="vigil"`
}

// Middleware returns a handler that calls next only for requests that pass
// CheckRequest. Any other request is answered 401 Unauthorized with a
// WWW-Authenticate challenge and a short body naming the problem: JSON
// ({"status":"error","errorType":"unauthorized","error":"..."}) when the
// request accepts or sends application/json, plain text otherwise. When
// authentication is off it returns next unchanged.
func (t *Tokens) Middleware(next http.Handler) http.Handler {
	if !t.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := t.CheckRequest(r); err != nil {
			writeUnauthorized(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeUnauthorized(w http.ResponseWriter, r *http.Request, err error) {
	h := w.Header()
	h.Set("WWW-Authenticate", Challenge(err))
	h.Set("X-Content-Type-Options", "nosniff")
	if wantsJSON(r) {
		body, _ := json.Marshal(struct {
			Status    string `json:"status"`
			ErrorType string `json:"errorType"`
			Error     string `json:"error"`
		}{"error", "unauthorized", err.Error()})
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write(append(body, '\n'))
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte(err.Error() + "\n"))
}

func wantsJSON(r *http.Request) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/json" {
		return true
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "application/json" {
			return true
		}
	}
	return false
}
