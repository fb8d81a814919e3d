package web

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
)

// hostPolicy decides which Host headers the server answers while read
// tokens are off (see Config.AllowedHosts). It is immutable once built.
type hostPolicy struct {
	any      bool
	names    map[string]bool // normalized by hostOnly
	suffixes []string        // ".example.com": the name and every one under it
}

// newHostPolicy builds the policy of the AllowedHosts entries allowed plus
// the default names: localhost, the machine's host name, and listenHost
// when it is a name.
func newHostPolicy(allowed []string, listenHost string) *hostPolicy {
	p := &hostPolicy{names: map[string]bool{"localhost": true}}
	if h, err := os.Hostname(); err == nil && h != "" {
		p.names[hostOnly(h)] = true
	}
	if h := hostOnly(listenHost); h != "" {
		p.names[h] = true
	}
	for _, a := range allowed {
		switch {
		case a == "*":
			p.any = true
		case validAllowedHost(a) != nil:
			// Config.Validate reports it; it allows nothing.
		case strings.HasPrefix(a, "."):
			p.suffixes = append(p.suffixes, "."+hostOnly(a[1:]))
		default:
			p.names[hostOnly(a)] = true
		}
	}
	return p
}

// allows reports whether the server answers a request with Host header
// host. An empty header (HTTP/1.0) is allowed: browsers always send one.
func (p *hostPolicy) allows(host string) bool {
	if p.any || host == "" {
		return true
	}
	h := hostOnly(host)
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || p.names[h] {
		return true
	}
	for _, s := range p.suffixes {
		if h == s[1:] || strings.HasSuffix(h, s) {
			return true
		}
	}
	return false
}

// hostOnly returns the host of a Host header or an address: without port
// and IPv6 brackets, in lower case, without a final dot.
func hostOnly(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// checkHost refuses, with 421 Misdirected Request and a plain-text
// reason, requests whose Host p does not allow, except to the exempt
// paths (probes, /metrics, ingest routes).
func checkHost(p *hostPolicy, exempt map[string]bool, logger *slog.Logger, next http.Handler) http.Handler {
	if p.any {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.allows(r.Host) || exempt[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		logger.DebugContext(r.Context(), "host not allowed", "host", r.Host, "path", r.URL.Path, "remote", r.RemoteAddr)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusMisdirectedRequest)
		_, _ = fmt.Fprintf(w, "host %q is not allowed: add it to the allowed hosts (http.allowed_hosts) or turn on read tokens\n", truncateHost(r.Host))
	})
}

// truncateHost keeps a hostile Host header from filling the answer.
func truncateHost(h string) string {
	if len(h) > 255 {
		return h[:255] + "…"
	}
	return h
}
