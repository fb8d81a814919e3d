package tlsconfig_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/internal/tlsconfig"
	"github.com/vigil-obs/vigil/internal/tlstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestConfigFiles loads each testdata file next to freshly made
// certificates: *.good.yaml must load, *.bad.yaml must fail with an error
// containing the text of its first line "# want: ...".
func TestConfigFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no config files in testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dir := tlstest.NewFiles(t, "")
			dir.Write(t, "other.key", dir.ServerCA.IssueServer(t, "other").KeyPEM)
			dir.Write(t, tlstest.WebConfig, data)
			_, err = tlsconfig.Load(dir.WebConfigPath(), nil)
			if strings.HasSuffix(f, ".good.yaml") {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("a bad file starts with \"# want: <part of the error>\", not %q", first)
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want one containing %q", err, want)
			}
			if !strings.Contains(err.Error(), dir.WebConfigPath()) {
				t.Errorf("error %v does not name the file", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yml")
	_, err := tlsconfig.Load(path, nil)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "load web config: open "+path) {
		t.Fatalf("Load(absent) = %v, want a not-exist error naming the file", err)
	}
}

// serve runs an HTTP server behind tls.NewListener(ln, cfg.ServerTLS()),
// as the components do, until the test ends. Its handler answers the
// protocol and the common name of the client certificate, if any.
func serve(t *testing.T, cfg *tlsconfig.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cn := "-"
			if certs := r.TLS.PeerCertificates; len(certs) > 0 {
				cn = certs[0].Subject.CommonName
			}
			_, _ = io.WriteString(w, r.Proto+" "+cn)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(tls.NewListener(ln, cfg.ServerTLS()))
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// get requests https://addr/ with a client using tlsCfg and returns the
// body.
func get(t *testing.T, addr string, tlsCfg *tls.Config, http2 bool) (string, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: http2}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// resumed makes two requests on fresh connections sharing a session
// cache and reports whether the second resumed the first's session.
func resumed(t *testing.T, addr string, tlsCfg *tls.Config) bool {
	t.Helper()
	tlsCfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	tr := &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var did bool
	for range 2 {
		resp, err := client.Get("https://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		did = resp.TLS.DidResume
	}
	return did
}

func load(t *testing.T, f *tlstest.Files, logger *slog.Logger) *tlsconfig.Config {
	t.Helper()
	cfg, err := tlsconfig.Load(f.WebConfigPath(), logger)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestServeHTTP(t *testing.T) {
	f := tlstest.NewFiles(t, "")
	addr := serve(t, load(t, f, nil))

	if got, err := get(t, addr, f.ClientTLS(), false); err != nil || got != "HTTP/1.1 -" {
		t.Errorf("HTTP/1.1 over TLS: %q, %v", got, err)
	}
	if got, err := get(t, addr, f.ClientTLS(), true); err != nil || got != "HTTP/2.0 -" {
		t.Errorf("HTTP/2 over TLS (ALPN h2): %q, %v", got, err)
	}
	if got := tlstest.PeerCertificate(t, addr, f.ClientTLS()); got.Subject.CommonName != "server-1" {
		t.Errorf("served certificate %q, want server-1", got.Subject.CommonName)
	}
	if !resumed(t, addr, f.ClientTLS()) {
		t.Error("no session resumption without client certificates")
	}
	// A client that does not trust the server's CA refuses it.
	other := tlstest.NewCA(t, "other CA")
	if _, err := get(t, addr, &tls.Config{RootCAs: other.Pool()}, false); err == nil {
		t.Error("a client trusting another CA connected")
	}
	// Plain HTTP gets no answer it can read.
	resp, err := http.Get("http://" + addr + "/")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP to a TLS listener: %s", resp.Status)
		}
	}
	// TLS 1.1 is below the default minimum.
	if _, err := get(t, addr, &tls.Config{RootCAs: f.ServerCA.Pool(), MaxVersion: tls.VersionTLS11}, false); err == nil {
		t.Error("a TLS 1.1 client connected")
	}
}

func TestClientCertRequired(t *testing.T) {
	f := tlstest.NewFiles(t, "RequireAndVerifyClientCert")
	addr := serve(t, load(t, f, nil))
	other := tlstest.NewCA(t, "other client CA")
	tests := []struct {
		name   string
		certs  []tls.Certificate
		wantCN string // "" = refused
	}{
		{"cert from the client CA", []tls.Certificate{f.ClientCert(t, "collector-1")}, "collector-1"},
		{"no cert", nil, ""},
		{"cert from another CA", []tls.Certificate{other.IssueClient(t, "intruder").TLS(t)}, ""},
		{"server cert from the server CA", []tls.Certificate{f.Server.TLS(t)}, ""},
	}
	if resumed(t, addr, f.ClientTLS(f.ClientCert(t, "collector-1"))) {
		t.Error("a session was resumed while client certificates are verified")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := get(t, addr, f.ClientTLS(tt.certs...), false)
			if tt.wantCN == "" {
				if err == nil {
					t.Fatalf("connected and got %q, want the handshake refused", got)
				}
				return
			}
			if err != nil || got != "HTTP/1.1 "+tt.wantCN {
				t.Fatalf("got %q, %v, want HTTP/1.1 %s", got, err, tt.wantCN)
			}
		})
	}
}

// lockedBuffer collects log lines from concurrent handshakes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

func TestReload(t *testing.T) {
	f := tlstest.NewFiles(t, "")
	logs := &lockedBuffer{}
	addr := serve(t, load(t, f, slog.New(slog.NewTextHandler(logs, nil))))
	served := func() string {
		t.Helper()
		c := tlstest.PeerCertificate(t, addr, f.ClientTLS())
		return c.Subject.CommonName + " " + c.SerialNumber.String()
	}
	want := func(kp tlstest.KeyPair) string {
		return kp.Leaf.Subject.CommonName + " " + kp.Leaf.SerialNumber.String()
	}
	first := f.Server
	if got := served(); got != want(first) {
		t.Fatalf("served %s, want %s", got, want(first))
	}

	// A certificate and key replaced in place are served at the next
	// handshake.
	second := f.Rotate(t, "server-2")
	if got := served(); got != want(second) {
		t.Fatalf("after rotation served %s, want %s", got, want(second))
	}
	if n := logs.count("tls configuration reloaded"); n != 1 {
		t.Errorf("%d reload notices, want 1:\n%s", n, logs.buf.String())
	}

	// A key that does not match keeps the previous pair in service,
	// with one warning however many handshakes see it.
	f.Write(t, tlstest.KeyFile, f.ServerCA.IssueServer(t, "unrelated").KeyPEM)
	for range 3 {
		if got := served(); got != want(second) {
			t.Fatalf("with a mismatched key served %s, want the previous %s", got, want(second))
		}
	}
	if n := logs.count("does not load"); n != 1 || logs.count("private key does not match public key") != 1 {
		t.Errorf("%d warnings, want 1 naming the mismatch:\n%s", n, logs.buf.String())
	}

	// A missing file too.
	if err := os.Remove(filepath.Join(f.Dir, tlstest.CertFile)); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != want(second) {
		t.Fatalf("with the certificate removed served %s, want the previous %s", got, want(second))
	}

	third := f.Rotate(t, "server-3")
	if got := served(); got != want(third) {
		t.Fatalf("after the repair served %s, want %s", got, want(third))
	}

	// An edit of the web configuration itself applies too: now client
	// certificates are required.
	f.Write(t, tlstest.WebConfig, []byte("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"+
		"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n"))
	if got, err := get(t, addr, f.ClientTLS(), false); err == nil {
		t.Fatalf("without a client certificate after requiring one: %q", got)
	}
	if got, err := get(t, addr, f.ClientTLS(f.ClientCert(t, "collector-1")), false); err != nil || got != "HTTP/1.1 collector-1" {
		t.Fatalf("with a client certificate: %q, %v", got, err)
	}

	// A client CA replaced in place is used at the next handshake.
	newClientCA := tlstest.NewCA(t, "rotated client CA")
	f.Write(t, tlstest.ClientCAFile, newClientCA.PEM)
	if _, err := get(t, addr, f.ClientTLS(f.ClientCert(t, "collector-1")), false); err == nil {
		t.Fatal("a certificate of the replaced client CA still connects")
	}
	if got, err := get(t, addr, f.ClientTLS(newClientCA.IssueClient(t, "collector-2").TLS(t)), false); err != nil || got != "HTTP/1.1 collector-2" {
		t.Fatalf("with a certificate of the new client CA: %q, %v", got, err)
	}
}

// TestReloadConcurrent rotates the certificate while clients connect: no
// handshake fails and each sees one of the pairs written.
func TestReloadConcurrent(t *testing.T) {
	f := tlstest.NewFiles(t, "")
	addr := serve(t, load(t, f, nil))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				conn, err := tls.Dial("tcp", addr, f.ClientTLS())
				if err != nil {
					t.Errorf("handshake during rotation: %v", err)
					return
				}
				_ = conn.Close()
			}
		})
	}
	for i := range 10 {
		f.Rotate(t, "server-"+string(rune('a'+i)))
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if got := tlstest.PeerCertificate(t, addr, f.ClientTLS()); got.SerialNumber.Cmp(f.Server.Leaf.SerialNumber) != 0 {
		t.Errorf("served %s after the last rotation, want %s", got.Subject.CommonName, f.Server.Leaf.Subject.CommonName)
	}
}
