// Package tlstest makes throwaway certificate authorities and
// certificates for tests of Vigil's TLS listeners, and writes them, with a
// web configuration file referring to them, into a test's temporary
// directory. Nothing it makes is meant to outlive a test: keys are
// ECDSA P-256, certificates are valid for one day.
package tlstest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority made for one test.
type CA struct {
	// Cert is the self-signed CA certificate.
	Cert *x509.Certificate
	// PEM is Cert, PEM-encoded.
	PEM []byte
	key *ecdsa.PrivateKey
}

// NewCA returns a new certificate authority named cn.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}
}

// Pool returns a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// KeyPair is a leaf certificate and its private key.
type KeyPair struct {
	// Leaf is the parsed certificate.
	Leaf *x509.Certificate
	// CertPEM and KeyPEM are the certificate and the PKCS #8 key,
	// PEM-encoded, as cert_file and key_file hold them.
	CertPEM, KeyPEM []byte
}

// TLS returns the pair as a tls.Certificate (for a client's
// Certificates).
func (k KeyPair) TLS(t testing.TB) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(k.CertPEM, k.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// IssueServer returns a server certificate named cn, signed by ca, valid
// for localhost, 127.0.0.1 and ::1.
func (ca *CA) IssueServer(t testing.TB, cn string) KeyPair {
	t.Helper()
	return ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// IssueClient returns a client certificate named cn, signed by ca, with
// the DNS name cn as its subject alternative name.
func (ca *CA) IssueClient(t testing.TB, cn string) KeyPair {
	t.Helper()
	return ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    []string{cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

func (ca *CA) issue(t testing.TB, tmpl *x509.Certificate) KeyPair {
	t.Helper()
	key := newKey(t)
	tmpl.SerialNumber = serial(t)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("create certificate %s: %v", tmpl.Subject.CommonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return KeyPair{
		Leaf:    leaf,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// File names in Files.Dir.
const (
	CertFile     = "server.crt"
	KeyFile      = "server.key"
	ClientCAFile = "client-ca.crt"
	WebConfig    = "web-config.yml"
)

// Files is a server key pair and a client CA written to a temporary
// directory, with a web configuration file that names them by relative
// paths.
type Files struct {
	// Dir holds CertFile, KeyFile, ClientCAFile and WebConfig.
	Dir string
	// ServerCA signed Server; ClientCA is the one client_ca_file holds.
	ServerCA, ClientCA *CA
	// Server is the pair in CertFile and KeyFile, named "server-1".
	Server KeyPair
}

// NewFiles writes a fresh server key pair (CN "server-1") and client CA
// to t.TempDir() and a web configuration with tls_server_config's
// cert_file and key_file. When clientAuth is not empty, the configuration
// also sets client_auth_type to it and client_ca_file to the client CA.
func NewFiles(t testing.TB, clientAuth string) *Files {
	t.Helper()
	f := &Files{
		Dir:      t.TempDir(),
		ServerCA: NewCA(t, "test server CA"),
		ClientCA: NewCA(t, "test client CA"),
	}
	f.Server = f.ServerCA.IssueServer(t, "server-1")
	f.Write(t, CertFile, f.Server.CertPEM)
	f.Write(t, KeyFile, f.Server.KeyPEM)
	f.Write(t, ClientCAFile, f.ClientCA.PEM)
	conf := "tls_server_config:\n  cert_file: " + CertFile + "\n  key_file: " + KeyFile + "\n"
	if clientAuth != "" {
		conf += "  client_auth_type: " + clientAuth + "\n  client_ca_file: " + ClientCAFile + "\n"
	}
	f.Write(t, WebConfig, []byte(conf))
	return f
}

// WebConfigPath returns the path of the web configuration file.
func (f *Files) WebConfigPath() string { return filepath.Join(f.Dir, WebConfig) }

// Write replaces the file name of Dir with data, in place (the file is
// truncated and rewritten, as an editor or a copy would).
func (f *Files) Write(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.Dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Rotate issues a new server certificate named cn from ServerCA, writes
// it and its key over CertFile and KeyFile, and returns it.
func (f *Files) Rotate(t testing.TB, cn string) KeyPair {
	t.Helper()
	kp := f.ServerCA.IssueServer(t, cn)
	f.Write(t, CertFile, kp.CertPEM)
	f.Write(t, KeyFile, kp.KeyPEM)
	f.Server = kp
	return kp
}

// ClientTLS returns a client configuration that trusts ServerCA only and
// presents certs (none when empty).
func (f *Files) ClientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: f.ServerCA.Pool(), Certificates: certs, MinVersion: tls.VersionTLS12}
}

// ClientCert returns a certificate named cn signed by ClientCA.
func (f *Files) ClientCert(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	return f.ClientCA.IssueClient(t, cn).TLS(t)
}

// PeerCertificate connects to addr over TLS with cfg, completes the
// handshake and returns the certificate the server presented.
func PeerCertificate(t testing.TB, addr string, cfg *tls.Config) *x509.Certificate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("tls handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		t.Fatalf("tls handshake with %s: no server certificate", addr)
	}
	return certs[0]
}
