package web

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/vigil-obs/vigil/internal/auth"
)

func TestHostPolicy(t *testing.T) {
	hostname, _ := os.Hostname()
	p := newHostPolicy([]string{"vigil.example.com", ".corp.example", "Grafana.Example:3000"}, "vigil.internal")
	tests := []struct {
		host string
		want bool
	}{
		{"", true},
		{"localhost", true},
		{"localhost:8080", true},
		{"LOCALHOST.", true},
		{"ui.localhost:5173", true},
		{"127.0.0.1:8080", true},
		{"10.1.2.3", true},
		{"[::1]:8080", true},
		{"[::1]", true},
		{"[fe80::1%25eth0]:8080", true},
		{hostname + ":8080", true},
		{"vigil.internal:8080", true},
		{"vigil.example.com", true},
		{"vigil.example.com:443", true},
		{"grafana.example", true},
		{"corp.example", true},
		{"a.b.corp.example:8080", true},
		{"evil.example", false},
		{"evil.example:8080", false},
		{"vigil.example.com.evil.example", false},
		{"xcorp.example", false},
		{"localhost.evil.example", false},
		{"127.0.0.1.nip.io:8080", false},
		{"0x7f.1", false},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			if got := p.allows(tc.host); got != tc.want {
				t.Fatalf("allows(%q) = %v, want %v", tc.host, got, tc.want)
			}
		})
	}
	if !newHostPolicy([]string{"*"}, "").allows("evil.example") {
		t.Fatal(`"*" does not allow every host`)
	}
}

// TestHandlerHostCheck: with read tokens off, a request under a name that
// is not allowed is refused before any route, except probes, /metrics
// and ingest routes; with tokens on, the token check alone decides.
func TestHandlerHostCheck(t *testing.T) {
	tokens, err := auth.NewTokens([]string{"secret"})
	if err != nil {
		t.Fatal(err)
	}
	ingest := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ingest")) })
	ui := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ui")) })
	open := Handler(Options{
		Config: Config{AllowedHosts: []string{"vigil.example.com"}},
		APIs:   []Mounter{apiStub{}},
		Ingest: map[string]http.Handler{"POST /api/v1/write": ingest},
		UI:     ui,
	})
	closed := Handler(Options{APIs: []Mounter{apiStub{}}, Auth: tokens, UI: ui})
	tests := []struct {
		name    string
		h       http.Handler
		method  string
		host    string
		path    string
		token   string
		status  int
		body    string
		nosniff bool
	}{
		{"api on loopback", open, "GET", "127.0.0.1:8080", "/api/services", "", 200, "api", true},
		{"api on localhost", open, "GET", "localhost:8080", "/api/services", "", 200, "api", true},
		{"api on allowed name", open, "GET", "vigil.example.com", "/api/services", "", 200, "api", true},
		{"api on rebinding name", open, "GET", "evil.example:8080", "/api/services", "", 421, `host "evil.example:8080" is not allowed`, true},
		{"tail on rebinding name", open, "GET", "evil.example:8080", "/api/logs/tail", "", 421, "not allowed", true},
		{"ui on rebinding name", open, "GET", "evil.example:8080", "/", "", 421, "not allowed", true},
		{"probe by service name", open, "GET", "vigil.monitoring.svc:8080", "/healthz", "", 200, "ok\n", true},
		{"ingest by service name", open, "POST", "vigil.monitoring.svc:8080", "/api/v1/write", "", 200, "ingest", true},
		{"tokens on, any host", closed, "GET", "evil.example:8080", "/api/services", "secret", 200, "api", true},
		{"tokens on, no token", closed, "GET", "evil.example:8080", "/api/services", "", 401, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			r.Host = tc.host
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			w := httptest.NewRecorder()
			tc.h.ServeHTTP(w, r)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.body) {
				t.Fatalf("%d %q, want %d containing %q", w.Code, w.Body.String(), tc.status, tc.body)
			}
			if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Fatalf("X-Content-Type-Options %q, want nosniff", got)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // prefix of the error; "" for none
	}{
		{"zero", Config{}, ""},
		{"hosts", Config{AllowedHosts: []string{"vigil.example.com", ".example.org", "*", "[::1]:8080", "10.0.0.1"}}, ""},
		{"off", Config{ReadTimeout: -1, WriteTimeout: -1, IdleTimeout: -1, ReadHeaderTimeout: -1, MaxBodyBytes: -1}, ""},
		{"empty host", Config{AllowedHosts: []string{"ok.example", ""}}, "allowed_hosts[1]"},
		{"url", Config{AllowedHosts: []string{"https://vigil.example.com/"}}, "allowed_hosts[0]"},
		{"wildcard inside", Config{AllowedHosts: []string{"*.example.com"}}, "allowed_hosts[0]"},
		{"bare dot", Config{AllowedHosts: []string{"."}}, "allowed_hosts[0]"},
		{"duration without unit", Config{WriteTimeout: 300}, "write_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.HasPrefix(err.Error(), tc.want+":") {
				t.Fatalf("Validate: %v, want an error starting %q", err, tc.want)
			}
		})
	}
}
