package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func mustTokens(t *testing.T, tokens ...string) *Tokens {
	t.Helper()
	tk, err := NewTokens(tokens)
	if err != nil {
		t.Fatalf("NewTokens: %v", err)
	}
	return tk
}

func TestNewTokens(t *testing.T) {
	tests := []struct {
		name    string
		tokens  []string
		enabled bool
		wantErr string
	}{
		{name: "nil", tokens: nil, enabled: false},
		{name: "empty list", tokens: []string{}, enabled: false},
		{name: "one", tokens: []string{"s3cret"}, enabled: true},
		{name: "several", tokens: []string{"a", "b.c-d_e~f+g/h="}, enabled: true},
		{name: "empty token", tokens: []string{"a", ""}, wantErr: "token 1 is empty"},
		{name: "space", tokens: []string{"a b"}, wantErr: "token 0 contains"},
		{name: "control", tokens: []string{"a\tb"}, wantErr: "token 0 contains"},
		{name: "non ascii", tokens: []string{"jeton-é"}, wantErr: "token 0 contains"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk, err := NewTokens(tt.tokens)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "jeton") {
					t.Fatalf("error leaks the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if got := tk.Enabled(); got != tt.enabled {
				t.Fatalf("Enabled() = %v, want %v", got, tt.enabled)
			}
		})
	}
	var nilTokens *Tokens
	if nilTokens.Enabled() {
		t.Fatal("nil Tokens is enabled")
	}
	if err := nilTokens.Check(""); err != nil {
		t.Fatalf("nil Tokens Check = %v", err)
	}
}

func TestCheck(t *testing.T) {
	tk := mustTokens(t, "alpha", "beta-2")
	tests := []struct {
		name   string
		header string
		want   error
	}{
		{name: "first token", header: "Bearer alpha", want: nil},
		{name: "second token", header: "Bearer beta-2", want: nil},
		{name: "scheme case-insensitive", header: "bearer alpha", want: nil},
		{name: "scheme upper case", header: "BEARER alpha", want: nil},
		{name: "extra spaces", header: "Bearer   alpha", want: nil},
		{name: "empty", header: "", want: ErrMissingToken},
		{name: "scheme only", header: "Bearer", want: ErrMissingToken},
		{name: "scheme and space", header: "Bearer ", want: ErrMissingToken},
		{name: "basic auth", header: "Basic YWxwaGE6", want: ErrMissingToken},
		{name: "no space", header: "Beareralpha", want: ErrMissingToken},
		{name: "wrong token", header: "Bearer gamma", want: ErrInvalidToken},
		{name: "prefix of token", header: "Bearer alph", want: ErrInvalidToken},
		{name: "token with suffix", header: "Bearer alphaa", want: ErrInvalidToken},
		{name: "trailing garbage", header: "Bearer alpha x", want: ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tk.Check(tt.header); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Check(%q) = %v, want %v", tt.header, err, tt.want)
			}
		})
	}
}

func TestMiddleware(t *testing.T) {
	tests := []struct {
		name       string
		tokens     []string
		header     http.Header
		wantStatus int
		wantCalled bool
		wantType   string
		wantBody   string
		wantChall  string
	}{
		{
			name: "auth off", tokens: nil, header: http.Header{},
			wantStatus: http.StatusNoContent, wantCalled: true,
		},
		{
			name: "valid token", tokens: []string{"tok"},
			header:     http.Header{"Authorization": {"Bearer tok"}},
			wantStatus: http.StatusNoContent, wantCalled: true,
		},
		{
			name: "missing plain", tokens: []string{"tok"}, header: http.Header{},
			wantStatus: http.StatusUnauthorized, wantType: "text/plain; charset=utf-8",
			wantBody: "missing bearer token\n", wantChall: `Bearer realm="vigil"`,
		},
		{
			name: "wrong json by accept", tokens: []string{"tok"},
			header:     http.Header{"Authorization": {"Bearer nope"}, "Accept": {"text/html, application/json;q=0.9"}},
			wantStatus: http.StatusUnauthorized, wantType: "application/json",
			wantBody:  `{"status":"error","errorType":"unauthorized","error":"invalid bearer token"}` + "\n",
			wantChall: `Bearer realm="vigil", error="invalid_token"`,
		},
		{
			name: "missing json by content type", tokens: []string{"tok"},
			header:     http.Header{"Content-Type": {"application/json; charset=utf-8"}},
			wantStatus: http.StatusUnauthorized, wantType: "application/json",
			wantBody:  `{"status":"error","errorType":"unauthorized","error":"missing bearer token"}` + "\n",
			wantChall: `Bearer realm="vigil"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				called = true
				w.WriteHeader(http.StatusNoContent)
			})
			h := mustTokens(t, tt.tokens...).Middleware(next)
			req := httptest.NewRequest(http.MethodPost, "/v1/traces", strings.NewReader("{}"))
			req.Header = tt.header
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus || called != tt.wantCalled {
				t.Fatalf("status %d called %v, want %d %v", rec.Code, called, tt.wantStatus, tt.wantCalled)
			}
			if tt.wantStatus != http.StatusUnauthorized {
				return
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.wantChall {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantChall)
			}
			if got := rec.Header().Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			if got := rec.Body.String(); got != tt.wantBody {
				t.Errorf("body = %q, want %q", got, tt.wantBody)
			}
			if tt.wantType == "application/json" && !json.Valid(rec.Body.Bytes()) {
				t.Errorf("body is not JSON: %q", rec.Body.String())
			}
		})
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }

func TestInterceptors(t *testing.T) {
	tests := []struct {
		name     string
		tokens   []string
		md       metadata.MD
		wantCode codes.Code
		wantMsg  string
	}{
		{name: "auth off", tokens: nil, md: nil, wantCode: codes.OK},
		{name: "valid", tokens: []string{"tok"}, md: metadata.Pairs("authorization", "Bearer tok"), wantCode: codes.OK},
		{name: "no metadata", tokens: []string{"tok"}, md: nil, wantCode: codes.Unauthenticated, wantMsg: "missing bearer token"},
		{name: "empty metadata", tokens: []string{"tok"}, md: metadata.MD{}, wantCode: codes.Unauthenticated, wantMsg: "missing bearer token"},
		{name: "wrong", tokens: []string{"tok"}, md: metadata.Pairs("authorization", "Bearer tak"), wantCode: codes.Unauthenticated, wantMsg: "invalid bearer token"},
		{name: "first value counts", tokens: []string{"tok"}, md: metadata.Pairs("authorization", "Bearer bad", "authorization", "Bearer tok"), wantCode: codes.Unauthenticated, wantMsg: "invalid bearer token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := mustTokens(t, tt.tokens...)
			ctx := context.Background()
			if tt.md != nil {
				ctx = metadata.NewIncomingContext(ctx, tt.md)
			}
			check := func(kind string, called bool, err error) {
				t.Helper()
				st, _ := status.FromError(err)
				if st.Code() != tt.wantCode {
					t.Fatalf("%s: code %v (%v), want %v", kind, st.Code(), err, tt.wantCode)
				}
				if called != (tt.wantCode == codes.OK) {
					t.Fatalf("%s: handler called = %v with code %v", kind, called, tt.wantCode)
				}
				if st.Message() != tt.wantMsg {
					t.Fatalf("%s: message %q, want %q", kind, st.Message(), tt.wantMsg)
				}
			}

			unaryCalled := false
			_, err := tk.UnaryServerInterceptor()(ctx, "req", &grpc.UnaryServerInfo{FullMethod: "/x/Y"},
				func(context.Context, any) (any, error) { unaryCalled = true; return "resp", nil })
			check("unary", unaryCalled, err)

			streamCalled := false
			err = tk.StreamServerInterceptor()(nil, fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: "/x/Z"},
				func(any, grpc.ServerStream) error { streamCalled = true; return nil })
			check("stream", streamCalled, err)
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	tk, err := NewTokens([]string{"alpha", "beta", "gamma"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = tk.Check("Bearer gamma")
	}
}
