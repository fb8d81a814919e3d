package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/exporter-toolkit/web"
	"gopkg.in/yaml.v3"
)

// clientAuthTypes are the values of client_auth_type the exporter-toolkit
// accepts ("RequireClientCert" is its older name of RequireAnyClientCert).
var clientAuthTypes = map[string]tls.ClientAuthType{
	"":                           tls.NoClientCert,
	"NoClientCert":               tls.NoClientCert,
	"RequestClientCert":          tls.RequestClientCert,
	"RequireAnyClientCert":       tls.RequireAnyClientCert,
	"RequireClientCert":          tls.RequireAnyClientCert,
	"VerifyClientCertIfGiven":    tls.VerifyClientCertIfGiven,
	"RequireAndVerifyClientCert": tls.RequireAndVerifyClientCert,
}

// parse decodes a web configuration file strictly and checks that it asks
// only for what Vigil does, naming the offending key in its errors. The
// relative paths it returns are resolved against the directory of path.
func parse(path string, data []byte) (web.TLSConfig, error) {
	// The exporter-toolkit's defaults.
	c := web.Config{
		TLSConfig:  web.TLSConfig{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13},
		HTTPConfig: web.HTTPConfig{HTTP2: true},
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return web.TLSConfig{}, err
	}
	switch {
	case len(c.Users) > 0:
		return web.TLSConfig{}, errors.New("basic_auth_users: not supported; Vigil authenticates requests with bearer tokens (auth.read_tokens, auth.ingest_tokens)")
	case c.RateLimiterConfig != (web.RateLimiterConfig{}):
		return web.TLSConfig{}, errors.New("rate_limit: not supported")
	case len(c.HTTPConfig.Header) > 0:
		return web.TLSConfig{}, errors.New("http_server_config.headers: not supported")
	case !c.HTTPConfig.HTTP2:
		return web.TLSConfig{}, errors.New("http_server_config.http2: false is not supported: the gRPC listeners need HTTP/2")
	}
	tc := c.TLSConfig
	if err := validate(&tc); err != nil {
		return web.TLSConfig{}, err
	}
	tc.SetDirectory(filepath.Dir(path))
	return tc, nil
}

// validate checks the settings of tls_server_config that the
// exporter-toolkit leaves unchecked or reports without naming the key.
func validate(tc *web.TLSConfig) error {
	const p = "tls_server_config"
	if !tc.IsEnabled() {
		return errors.New(p + ": missing; cert_file and key_file are required")
	}
	for _, pair := range []struct {
		file, inline string
		fileSet      bool
		inlineSet    bool
	}{
		{"cert_file", "cert", tc.TLSCertPath != "", tc.TLSCert != ""},
		{"key_file", "key", tc.TLSKeyPath != "", tc.TLSKey != ""},
		{"client_ca_file", "client_ca", tc.ClientCAs != "", tc.ClientCAsText != ""},
	} {
		switch {
		case pair.fileSet && pair.inlineSet:
			return fmt.Errorf("%s.%s: set together with %s; use one", p, pair.file, pair.inline)
		case !pair.fileSet && !pair.inlineSet && pair.file != "client_ca_file":
			return fmt.Errorf("%s.%s: required", p, pair.file)
		}
	}
	auth, ok := clientAuthTypes[tc.ClientAuth]
	if !ok {
		return fmt.Errorf("%s.client_auth_type: %q is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert", p, tc.ClientAuth)
	}
	hasCA := tc.ClientCAs != "" || tc.ClientCAsText != ""
	switch {
	case auth >= tls.VerifyClientCertIfGiven && !hasCA:
		// Without it Go would verify client certificates against the
		// system's roots, which is never what is meant.
		return fmt.Errorf("%s.client_ca_file: required when client_auth_type is %s", p, tc.ClientAuth)
	case hasCA && auth < tls.VerifyClientCertIfGiven:
		return fmt.Errorf("%s.client_auth_type: must be VerifyClientCertIfGiven or RequireAndVerifyClientCert when client_ca_file is set (it is %q, so the CA would not be used)", p, tc.ClientAuth)
	case tc.ClientAllowedSans != nil && auth != tls.RequireAndVerifyClientCert:
		// The exporter-toolkit's check reads the first client
		// certificate, which only this policy guarantees.
		return fmt.Errorf("%s.client_allowed_sans: requires client_auth_type RequireAndVerifyClientCert", p)
	case tc.MinVersion > tc.MaxVersion:
		return fmt.Errorf("%s.min_version: above max_version", p)
	}
	return nil
}

// sources is what one load read: the web configuration file and the
// contents of the files it names (nil for a setting given inline or not
// at all).
type sources struct {
	web, cert, key, ca []byte
}

func (s sources) equal(o sources) bool {
	return bytes.Equal(s.web, o.web) && bytes.Equal(s.cert, o.cert) && bytes.Equal(s.key, o.key) && bytes.Equal(s.ca, o.ca)
}

// readFiles reads the files tc names.
func readFiles(tc web.TLSConfig) (sources, error) {
	var s sources
	for _, f := range []struct {
		key, path string
		dst       *[]byte
	}{
		{"cert_file", tc.TLSCertPath, &s.cert},
		{"key_file", tc.TLSKeyPath, &s.key},
		{"client_ca_file", tc.ClientCAs, &s.ca},
	} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return s, fmt.Errorf("tls_server_config.%s: %w", f.key, err)
		}
		*f.dst = b
	}
	return s, nil
}

// alpn is offered on every listener: h2 for gRPC and HTTP/2 clients,
// http/1.1 for the others. net/http serves HTTP/2 on a connection that
// negotiated h2 when it accepts from a tls.NewListener.
var alpn = []string{"h2", "http/1.1"}

// build makes the server configuration from tc with the file contents of
// src, through the exporter-toolkit, so that every setting means what it
// means there.
func build(tc web.TLSConfig, src sources) (*tls.Config, error) {
	certKey, keyKey, caKey := "cert", "key", "client_ca"
	certPEM, keyPEM, caPEM := []byte(tc.TLSCert), []byte(tc.TLSKey), []byte(tc.ClientCAsText)
	if tc.TLSCertPath != "" {
		certKey, certPEM = "cert_file", src.cert
	}
	if tc.TLSKeyPath != "" {
		keyKey, keyPEM = "key_file", src.key
	}
	if tc.ClientCAs != "" {
		caKey, caPEM = "client_ca_file", src.ca
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls_server_config.%s and %s: %w", certKey, keyKey, err)
	}
	if len(caPEM) > 0 || tc.ClientCAs != "" {
		if !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("tls_server_config.%s: no PEM certificate in it", caKey)
		}
	}
	// Hand the toolkit the contents read here rather than the paths, so
	// that the result matches src exactly.
	inline := tc
	inline.TLSCertPath, inline.TLSKeyPath, inline.ClientCAs = "", "", ""
	inline.TLSCert, inline.TLSKey, inline.ClientCAsText = string(certPEM), promconfig.Secret(keyPEM), string(caPEM)
	cfg, err := web.ConfigToTLSConfig(&inline)
	if err != nil {
		return nil, fmt.Errorf("tls_server_config: %w", err)
	}
	// The toolkit's GetCertificate parses the key pair again at every
	// handshake; the pair parsed above is the same one.
	cfg.GetCertificate = nil
	cfg.Certificates = []tls.Certificate{pair}
	cfg.NextProtos = slices.Clone(alpn)
	if cfg.ClientAuth >= tls.VerifyClientCertIfGiven {
		// A resumed session is not verified again: without tickets, a
		// client whose CA was removed from client_ca_file is refused at
		// its next connection rather than for the days a ticket lives.
		cfg.SessionTicketsDisabled = true
	}
	return cfg, nil
}
