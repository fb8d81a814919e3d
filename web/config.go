package web

import (
	"fmt"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = time.Minute
	DefaultWriteTimeout      = 3 * time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxBodyBytes      = 1 << 20
)

// Config holds the settings of the main HTTP port (YAML section http).
// Zero fields take the defaults; a negative duration or size turns its
// bound off.
type Config struct {
	// AllowedHosts lists the host names, besides the default ones, that
	// requests may carry in their Host header while read tokens are off;
	// any other name is refused with 421 Misdirected Request. This stops
	// DNS rebinding: a hostile page whose name an attacker re-points at
	// Vigil's address reaches Vigil under that name, which is not
	// allowed. A port in the header or in an entry is ignored; an entry
	// ".example.com" allows example.com and every name under it; "*"
	// turns the check off.
	//
	// Always allowed: IP addresses (a rebinding page cannot make a
	// browser send one: it is reached by name), "localhost" and names
	// under .localhost (browsers resolve them to loopback themselves), the
	// machine's host name, and the host of the listen address when it is
	// a name.
	//
	// With read tokens on the check is skipped: a rebinding page has no
	// token to send. Probes (/healthz, /readyz), /metrics and ingest
	// routes are never checked: orchestrators, Prometheus and senders
	// reach them by service names that nobody lists here, and they serve
	// nothing a page could use (ingest has its own tokens).
	AllowedHosts []string `yaml:"allowed_hosts"`
	// ReadHeaderTimeout bounds the reading of a request's headers
	// (default 10s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds the reading of a whole request, body included
	// (default 1m), so that a client trickling a body cannot hold a
	// handler. Go's server lifts it once the body has been read (for a
	// request without body, at once), so long queries still run to their
	// own timeout and the live tail's WebSocket is not cut by it.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds a request from the end of its headers to the
	// end of its response (default 3m). It must exceed the longest query
	// timeout (PromQL's defaults to 2m) or long queries lose their
	// answers. The live tail's WebSocket is not bound by it.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection that has carried no
	// request for that long (default 2m).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxBodyBytes bounds the body of a request to the APIs (default
	// 1 MiB); ingest routes have their own bound.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Validate reports a setting that cannot work, naming its key.
func (c Config) Validate() error {
	for i, h := range c.AllowedHosts {
		if err := validAllowedHost(h); err != nil {
			return fmt.Errorf("allowed_hosts[%d]: %q %v", i, h, err)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"read_header_timeout", c.ReadHeaderTimeout},
		{"read_timeout", c.ReadTimeout},
		{"write_timeout", c.WriteTimeout},
		{"idle_timeout", c.IdleTimeout},
	} {
		// A bare YAML number is nanoseconds: refuse what is surely a
		// missing unit.
		if d.v > 0 && d.v < time.Millisecond {
			return fmt.Errorf("%s: %s is below 1ms (a duration needs a unit, such as 30s)", d.key, d.v)
		}
	}
	return nil
}

// withDefaults fills zero fields with the defaults and turns negative ones
// into 0 (no bound).
func (c Config) withDefaults() Config {
	dur := func(v *time.Duration, def time.Duration) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = 0
		}
	}
	dur(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	dur(&c.ReadTimeout, DefaultReadTimeout)
	dur(&c.WriteTimeout, DefaultWriteTimeout)
	dur(&c.IdleTimeout, DefaultIdleTimeout)
	switch {
	case c.MaxBodyBytes == 0:
		c.MaxBodyBytes = DefaultMaxBodyBytes
	case c.MaxBodyBytes < 0:
		c.MaxBodyBytes = 0
	}
	return c
}

// validAllowedHost reports what is wrong with an AllowedHosts entry.
func validAllowedHost(h string) error {
	if h == "*" {
		return nil
	}
	if strings.ContainsAny(h, " \t\r\n/\\@,?#*") {
		return fmt.Errorf("is not a host name (no scheme, path or wildcard inside)")
	}
	if hostOnly(strings.TrimPrefix(h, ".")) == "" {
		return fmt.Errorf("is empty")
	}
	return nil
}
