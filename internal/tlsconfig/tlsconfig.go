package tlsconfig

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"

	"github.com/prometheus/exporter-toolkit/web"
)

// Config is a loaded web configuration file. It is safe for concurrent
// use; the configurations ServerTLS returns share it.
type Config struct {
	path   string
	logger *slog.Logger

	mu      sync.Mutex
	current *loaded // never nil
	// failed is the last attempt that did not load, so that a broken
	// file is neither rebuilt nor logged again at every handshake.
	failed *attempt
}

// loaded is a configuration in service and what it was built from.
type loaded struct {
	src sources
	tc  web.TLSConfig
	tls *tls.Config
}

// attempt is what a handshake read from disk, and the error reading or
// decoding it, if any.
type attempt struct {
	src sources
	err string
}

// Load reads the web configuration file at path and the files it names,
// and checks that they make a working server configuration: the key
// matches the certificate, the client CA file holds certificates,
// client_auth_type is consistent with client_ca_file. Relative paths in
// the file are relative to its directory. The error names the offending
// key (e.g. "tls_server_config.client_ca_file: required when
// client_auth_type is RequireAndVerifyClientCert").
//
// logger receives a warning when a later reload fails and a notice when
// one succeeds; nil discards them.
func Load(path string, logger *slog.Logger) (*Config, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load web config: %w", err)
	}
	l, err := load(path, data)
	if err != nil {
		return nil, fmt.Errorf("load web config %s: %w", path, err)
	}
	c := &Config{path: path, logger: logger.With("component", "tls", "web_config", path), current: l}
	c.logger.Info("tls configuration loaded", certAttrs(l.tls)...)
	return c, nil
}

// certAttrs describes the certificate and client verification of cfg for
// the log.
func certAttrs(cfg *tls.Config) []any {
	attrs := []any{"client_auth", cfg.ClientAuth.String()}
	if leaf := cfg.Certificates[0].Leaf; leaf != nil {
		attrs = append(attrs, "subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
	}
	return attrs
}

func load(path string, data []byte) (*loaded, error) {
	tc, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	src, err := readFiles(tc)
	if err != nil {
		return nil, err
	}
	src.web = data
	cfg, err := build(tc, src)
	if err != nil {
		return nil, err
	}
	return &loaded{src: src, tc: tc, tls: cfg}, nil
}

// ServerTLS returns the configuration of one listener: give it to
// tls.NewListener for an HTTP server, or to credentials.NewTLS for a gRPC
// server. It offers ALPN h2 and http/1.1. Its GetConfigForClient supplies
// the configuration of each handshake from the files as they are then
// (it reads them, a few kilobytes, and rebuilds only when they changed),
// so a rotated certificate is served from the next connection on;
// connections already open keep theirs. Each call returns a new value;
// other fields set on it have no effect on handshakes, which use what
// GetConfigForClient returns.
func (c *Config) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         slices.Clone(alpn),
		GetConfigForClient: c.configForClient,
	}
}

// configForClient returns the configuration in service, reloaded first
// when a file changed. It never fails a handshake for a reload error: the
// previous configuration stays.
func (c *Config) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	c.mu.Lock()
	cur := c.current
	c.mu.Unlock()
	a, tc := c.read(cur)
	if a.err == "" && a.src.equal(cur.src) {
		return cur.tls, nil
	}
	return c.reload(hello.Context(), a, tc), nil
}

// read reads the web configuration file and the files it names. An
// unchanged web configuration is not decoded again.
func (c *Config) read(cur *loaded) (attempt, web.TLSConfig) {
	data, err := os.ReadFile(c.path)
	if err != nil {
		return attempt{err: err.Error()}, web.TLSConfig{}
	}
	tc := cur.tc
	if !bytes.Equal(data, cur.src.web) {
		if tc, err = parse(c.path, data); err != nil {
			return attempt{src: sources{web: data}, err: err.Error()}, web.TLSConfig{}
		}
	}
	src, err := readFiles(tc)
	src.web = data
	if err != nil {
		return attempt{src: src, err: err.Error()}, tc
	}
	return attempt{src: src}, tc
}

// reload builds the configuration from what a handshake read and puts it
// in service when it loads; it returns the configuration in service.
func (c *Config) reload(ctx context.Context, a attempt, tc web.TLSConfig) *tls.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a.err == "" && a.src.equal(c.current.src) { // reloaded by a concurrent handshake
		return c.current.tls
	}
	if c.failed != nil && c.failed.err == a.err && c.failed.src.equal(a.src) {
		return c.current.tls
	}
	msg := a.err
	if a.err == "" {
		cfg, err := build(tc, a.src)
		if err == nil {
			c.current = &loaded{src: a.src, tc: tc, tls: cfg}
			c.failed = nil
			c.logger.InfoContext(ctx, "tls configuration reloaded", certAttrs(cfg)...)
			return cfg
		}
		msg = err.Error()
	}
	c.failed = &a
	c.logger.WarnContext(ctx, "tls configuration changed but does not load, serving the previous one", "err", msg)
	return c.current.tls
}
