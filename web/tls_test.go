package web

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/internal/tlsconfig"
	"github.com/vigil-obs/vigil/internal/tlstest"
)

type buildInfoAPI struct{}

func (buildInfoAPI) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/status/buildinfo", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"status":"success"}`))
	})
}

// serveTLS runs a Server with the TLS configuration of a fresh web config
// (client_auth_type clientAuth, none when empty) until the test ends.
func serveTLS(t *testing.T, clientAuth string) (*Server, *tlstest.Files) {
	t.Helper()
	files := tlstest.NewFiles(t, clientAuth)
	cfg, err := tlsconfig.Load(files.WebConfigPath(), nil)
	if err != nil {
		t.Fatal(err)
	}
	write := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv, err := New("127.0.0.1:0", Options{
		APIs:   []Mounter{buildInfoAPI{}},
		Ingest: map[string]http.Handler{"POST /api/v1/write": write},
		TLS:    cfg.ServerTLS(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return srv, files
}

// do sends a request to the server with a client using c (nil: plain
// HTTP) and returns the status and body.
func do(t *testing.T, s *Server, c *tls.Config, method, path string) (int, string, error) {
	t.Helper()
	scheme := "https://"
	if c == nil {
		scheme = "http://"
	}
	tr := &http.Transport{TLSClientConfig: c, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, scheme+s.Addr()+path, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestServerTLS(t *testing.T) {
	s, files := serveTLS(t, "")
	tests := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/healthz", 200, "ok\n"},
		{"GET", "/readyz", 200, "ready\n"},
		{"GET", "/api/v1/status/buildinfo", 200, `{"status":"success"}`},
		{"POST", "/api/v1/write", 204, ""},
	}
	for _, tc := range tests {
		code, body, err := do(t, s, files.ClientTLS(), tc.method, tc.path)
		if err != nil || code != tc.status || body != tc.body {
			t.Errorf("%s https %s: %d %q %v, want %d %q", tc.method, tc.path, code, body, err, tc.status, tc.body)
		}
	}
	if code, _, err := do(t, s, nil, "GET", "/healthz"); err == nil && code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the HTTPS port: %d, want 400", code)
	}
}

func TestServerTLSClientCertRequired(t *testing.T) {
	s, files := serveTLS(t, "RequireAndVerifyClientCert")
	if code, body, err := do(t, s, files.ClientTLS(files.ClientCert(t, "grafana")), "GET", "/api/v1/status/buildinfo"); err != nil || code != 200 {
		t.Fatalf("with a client certificate: %d %q %v", code, body, err)
	}
	if code, _, err := do(t, s, files.ClientTLS(), "GET", "/healthz"); err == nil {
		t.Fatalf("without a client certificate: %d, want the handshake refused", code)
	}
	other := tlstest.NewCA(t, "other client CA")
	if code, _, err := do(t, s, files.ClientTLS(other.IssueClient(t, "intruder").TLS(t)), "GET", "/healthz"); err == nil {
		t.Fatalf("with a certificate from another CA: %d, want the handshake refused", code)
	}
}
