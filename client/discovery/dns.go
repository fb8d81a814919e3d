package discovery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSConfig configures a DNS resolver. Zero fields take the defaults listed
// on each field.
type DNSConfig struct {
	// Name is the host name to look up (A/AAAA) or the SRV name
	// (_service._proto.name). Required.
	Name string
	// Port is the instances' port for A/AAAA lookups; required unless SRV.
	Port int
	// SRV selects SRV lookups: targets, ports and weights come from the
	// records; only the lowest priority present is used.
	SRV bool
	// Network is "ip" (A and AAAA, the default), "ip4" (A) or "ip6" (AAAA).
	Network string
	// Servers are name servers as host:port. Empty means those of
	// ResolvConf.
	Servers []string
	// ResolvConf is the resolver configuration file (default
	// /etc/resolv.conf). Its search list and ndots apply to Name.
	ResolvConf string
	// MinTTL and MaxTTL bound the refresh interval taken from record TTLs
	// (defaults 5s and 5m): a zero TTL must not turn into a query loop.
	MinTTL time.Duration
	MaxTTL time.Duration
	// Timeout bounds one query to one server (default 2s).
	Timeout time.Duration
}

// DNSConfigFromTarget maps a dns:// or dns+srv:// target to a DNSConfig.
// Query parameters: min_ttl, max_ttl, timeout (Go durations) and network.
func DNSConfigFromTarget(t Target) (DNSConfig, error) {
	cfg := DNSConfig{SRV: t.Scheme == "dns+srv", Network: t.Query.Get("network")}
	if cfg.SRV {
		cfg.Name = t.Endpoint
	} else {
		host, port, err := net.SplitHostPort(t.Endpoint)
		if err != nil {
			return DNSConfig{}, fmt.Errorf("dns target %q: want host:port: %w", t.Endpoint, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return DNSConfig{}, fmt.Errorf("dns target %q: port %q: %w", t.Endpoint, port, err)
		}
		cfg.Name, cfg.Port = host, p
	}
	if t.Authority != "" {
		server := t.Authority
		if _, _, err := net.SplitHostPort(server); err != nil {
			server = net.JoinHostPort(server, "53")
		}
		cfg.Servers = []string{server}
	}
	for key, dst := range map[string]*time.Duration{"min_ttl": &cfg.MinTTL, "max_ttl": &cfg.MaxTTL, "timeout": &cfg.Timeout} {
		if v := t.Query.Get(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return DNSConfig{}, fmt.Errorf("dns target: %s: %w", key, err)
			}
			*dst = d
		}
	}
	return cfg, cfg.Validate()
}

// WithDefaults returns c with zero fields set to their defaults.
func (c DNSConfig) WithDefaults() DNSConfig {
	if c.Network == "" {
		c.Network = "ip"
	}
	if c.ResolvConf == "" {
		c.ResolvConf = "/etc/resolv.conf"
	}
	if c.MinTTL == 0 {
		c.MinTTL = 5 * time.Second
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = 5 * time.Minute
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	return c
}

// Validate reports the first invalid field after defaults are applied.
func (c DNSConfig) Validate() error {
	c = c.WithDefaults()
	if c.Name == "" || len(c.Name) > 253 {
		return fmt.Errorf("dns name: must have 1 to 253 characters, got %d", len(c.Name))
	}
	if err := checkName(c.Name); err != nil {
		return fmt.Errorf("dns name %q: %w", c.Name, err)
	}
	if !c.SRV && (c.Port < 1 || c.Port > 65535) {
		return fmt.Errorf("dns port: must be in [1, 65535], got %d", c.Port)
	}
	switch c.Network {
	case "ip", "ip4", "ip6":
	default:
		return fmt.Errorf("dns network: must be ip, ip4 or ip6, got %q", c.Network)
	}
	for _, s := range c.Servers {
		if _, err := netip.ParseAddrPort(s); err != nil {
			return fmt.Errorf("dns server %q: want ip:port: %w", s, err)
		}
	}
	if c.MinTTL < 0 || c.MaxTTL < c.MinTTL {
		return fmt.Errorf("dns ttl bounds: want 0 <= min_ttl <= max_ttl, got %v and %v", c.MinTTL, c.MaxTTL)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("dns timeout: must be positive, got %v", c.Timeout)
	}
	return nil
}

// DNS resolves a service through DNS A/AAAA or SRV records and refreshes at
// the records' TTL. It speaks DNS itself (UDP with EDNS0, TCP when
// truncated) because the standard library hides TTLs.
type DNS struct {
	cfg DNSConfig
}

// NewDNS returns a DNS resolver for cfg.
func NewDNS(cfg DNSConfig) (*DNS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &DNS{cfg: cfg.WithDefaults()}, nil
}

// Resolve looks the name up once and returns the instances with the smallest
// TTL among the records used, bounded by MinTTL and MaxTTL. An answer with no
// records is ErrNoInstances.
func (d *DNS) Resolve(ctx context.Context, _ Snapshot) (Snapshot, error) {
	conf := d.resolvConf()
	servers := d.cfg.Servers
	if len(servers) == 0 {
		servers = conf.Servers
	}
	var lastErr error
	for _, name := range conf.candidates(d.cfg.Name) {
		var snap Snapshot
		var err error
		if d.cfg.SRV {
			snap, err = d.resolveSRV(ctx, servers, name)
		} else {
			snap, err = d.resolveHost(ctx, servers, name, d.cfg.Port)
		}
		if err == nil {
			snap.TTL = min(max(snap.TTL, d.cfg.MinTTL), d.cfg.MaxTTL)
			return snap, nil
		}
		if ctx.Err() != nil {
			return Snapshot{}, ctx.Err()
		}
		lastErr = err
		if !errors.Is(err, ErrNoInstances) {
			// A server failure is not an answer; do not fall through to
			// other search domains, which would hide it.
			break
		}
	}
	return Snapshot{}, fmt.Errorf("resolve %s: %w", d.cfg.Name, lastErr)
}

func (d *DNS) resolvConf() ResolvConf {
	data, err := os.ReadFile(d.cfg.ResolvConf)
	if err != nil {
		// No file: glibc's defaults.
		data = nil
	}
	conf, _ := ParseResolvConf(data)
	return conf
}

func (d *DNS) qtypes() []dnsmessage.Type {
	switch d.cfg.Network {
	case "ip4":
		return []dnsmessage.Type{dnsmessage.TypeA}
	case "ip6":
		return []dnsmessage.Type{dnsmessage.TypeAAAA}
	}
	return []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA}
}

// resolveHost returns one instance per address of name.
func (d *DNS) resolveHost(ctx context.Context, servers []string, name string, port int) (Snapshot, error) {
	var snap Snapshot
	ttl := uint32(0)
	first := true
	for _, qt := range d.qtypes() {
		msg, err := d.query(ctx, servers, name, qt)
		if err != nil {
			return Snapshot{}, err
		}
		for _, a := range addrRecords(msg.Answers) {
			snap.Instances = append(snap.Instances, Instance{Addr: net.JoinHostPort(a.ip.String(), strconv.Itoa(port)), Weight: 1})
			if first || a.ttl < ttl {
				ttl, first = a.ttl, false
			}
		}
	}
	if len(snap.Instances) == 0 {
		return Snapshot{}, fmt.Errorf("%s: %w", name, ErrNoInstances)
	}
	snap.Instances = dedupe(snap.Instances)
	snap.TTL = time.Duration(ttl) * time.Second
	return snap, nil
}

type addrRecord struct {
	name string
	ip   netip.Addr
	ttl  uint32
}

func addrRecords(rrs []dnsmessage.Resource) []addrRecord {
	var out []addrRecord
	for _, rr := range rrs {
		switch b := rr.Body.(type) {
		case *dnsmessage.AResource:
			out = append(out, addrRecord{strings.ToLower(rr.Header.Name.String()), netip.AddrFrom4(b.A), rr.Header.TTL})
		case *dnsmessage.AAAAResource:
			out = append(out, addrRecord{strings.ToLower(rr.Header.Name.String()), netip.AddrFrom16(b.AAAA), rr.Header.TTL})
		}
	}
	return out
}

// resolveSRV returns one instance per address of each SRV target of the
// lowest priority present.
func (d *DNS) resolveSRV(ctx context.Context, servers []string, name string) (Snapshot, error) {
	msg, err := d.query(ctx, servers, name, dnsmessage.TypeSRV)
	if err != nil {
		return Snapshot{}, err
	}
	type srv struct {
		target           string
		port             uint16
		priority, weight uint16
		ttl              uint32
	}
	var recs []srv
	for _, rr := range msg.Answers {
		if b, ok := rr.Body.(*dnsmessage.SRVResource); ok {
			recs = append(recs, srv{strings.ToLower(b.Target.String()), b.Port, b.Priority, b.Weight, rr.Header.TTL})
		}
	}
	if len(recs) == 0 {
		return Snapshot{}, fmt.Errorf("%s: %w", name, ErrNoInstances)
	}
	best := recs[0].priority
	for _, r := range recs {
		best = min(best, r.priority)
	}
	ttl := recs[0].ttl
	extra := addrRecords(msg.Additionals)
	var out []Instance
	for _, r := range recs {
		if r.priority != best || r.target == "." || r.port == 0 {
			continue
		}
		ttl = min(ttl, r.ttl)
		var addrs []addrRecord
		for _, a := range extra {
			if a.name == r.target {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) == 0 {
			// The server left the glue out: look the target up.
			for _, qt := range d.qtypes() {
				m, err := d.query(ctx, servers, r.target, qt)
				if err != nil {
					return Snapshot{}, err
				}
				addrs = append(addrs, addrRecords(m.Answers)...)
			}
		}
		for _, a := range addrs {
			if d.cfg.Network == "ip4" && !a.ip.Is4() || d.cfg.Network == "ip6" && a.ip.Is4() {
				continue
			}
			ttl = min(ttl, a.ttl)
			out = append(out, Instance{
				Addr:   net.JoinHostPort(a.ip.String(), strconv.Itoa(int(r.port))),
				Weight: max(int(r.weight), 1),
				Meta:   map[string]string{"srv_target": r.target, "srv_priority": strconv.Itoa(int(r.priority))},
			})
		}
	}
	if len(out) == 0 {
		return Snapshot{}, fmt.Errorf("%s: %w", name, ErrNoInstances)
	}
	return Snapshot{Instances: dedupe(out), TTL: time.Duration(ttl) * time.Second}, nil
}

func dedupe(in []Instance) []Instance {
	sortInstances(in)
	return slices.CompactFunc(in, func(a, b Instance) bool { return a.Addr == b.Addr })
}

// errServer marks a server that failed to answer usefully; the next one is
// tried.
var errServer = errors.New("dns server failure")

// query asks each server in turn until one answers with NOERROR or NXDOMAIN.
// NXDOMAIN and empty answers yield a message without answers.
func (d *DNS) query(ctx context.Context, servers []string, name string, qt dnsmessage.Type) (*dnsmessage.Message, error) {
	qname, err := dnsmessage.NewName(absolute(name))
	if err != nil {
		return nil, fmt.Errorf("dns name %q: %w", name, err)
	}
	var lastErr error
	for _, server := range servers {
		msg, err := d.exchange(ctx, server, qname, qt)
		if err == nil {
			switch msg.RCode {
			case dnsmessage.RCodeSuccess, dnsmessage.RCodeNameError:
				return msg, nil
			}
			err = fmt.Errorf("%w: %s answered %s", errServer, server, msg.RCode)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = errors.New("no name servers")
	}
	return nil, fmt.Errorf("query %s %s: %w", name, qt, lastErr)
}

// udpSize is the EDNS0 buffer size advertised (the DNS flag day value).
const udpSize = 1232

func (d *DNS) exchange(ctx context.Context, server string, name dnsmessage.Name, qt dnsmessage.Type) (*dnsmessage.Message, error) {
	id := uint16(rand.Uint32())
	b := dnsmessage.NewBuilder(make([]byte, 2, 512), dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: name, Type: qt, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	if err := b.StartAdditionals(); err != nil {
		return nil, err
	}
	var opt dnsmessage.ResourceHeader
	if err := opt.SetEDNS0(udpSize, dnsmessage.RCodeSuccess, false); err != nil {
		return nil, err
	}
	if err := b.OPTResource(opt, dnsmessage.OPTResource{}); err != nil {
		return nil, err
	}
	// The first two bytes are room for the TCP length prefix.
	buf, err := b.Finish()
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint16(buf, uint16(len(buf)-2))

	qctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	msg, err := exchangeUDP(qctx, server, buf[2:], id, name, qt)
	if err == nil && msg.Truncated {
		msg, err = exchangeTCP(qctx, server, buf, id, name, qt)
	}
	return msg, err
}

func exchangeUDP(ctx context.Context, server string, query []byte, id uint16, name dnsmessage.Name, qt dnsmessage.Type) (*dnsmessage.Message, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// A deadline in the past interrupts the exchange when ctx ends; it
	// fails only on a closed connection, which has nothing to interrupt.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(query); err != nil {
		return nil, ctxErr(ctx, err)
	}
	resp := make([]byte, 65535)
	for {
		n, err := conn.Read(resp)
		if err != nil {
			return nil, ctxErr(ctx, err)
		}
		msg, ok := parseResponse(resp[:n], id, name, qt)
		if ok {
			return msg, nil
		}
		// A stray or spoofed datagram: keep waiting for ours.
	}
}

func exchangeTCP(ctx context.Context, server string, framed []byte, id uint16, name dnsmessage.Name, qt dnsmessage.Type) (*dnsmessage.Message, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// A deadline in the past interrupts the exchange when ctx ends; it
	// fails only on a closed connection, which has nothing to interrupt.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(framed); err != nil {
		return nil, ctxErr(ctx, err)
	}
	r := bufio.NewReader(conn)
	var lenBuf [2]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, ctxErr(ctx, err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
	if _, err := io.ReadFull(r, resp); err != nil {
		return nil, ctxErr(ctx, err)
	}
	msg, ok := parseResponse(resp, id, name, qt)
	if !ok {
		return nil, errors.New("mismatched dns response over tcp")
	}
	return msg, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// parseResponse accepts only a response to our question.
func parseResponse(b []byte, id uint16, name dnsmessage.Name, qt dnsmessage.Type) (*dnsmessage.Message, bool) {
	var msg dnsmessage.Message
	if err := msg.Unpack(b); err != nil {
		return nil, false
	}
	if !msg.Response || msg.ID != id || len(msg.Questions) != 1 {
		return nil, false
	}
	q := msg.Questions[0]
	if q.Type != qt || !strings.EqualFold(q.Name.String(), name.String()) {
		return nil, false
	}
	return &msg, true
}

// checkName accepts names of 1-63 byte labels separated by dots, with an
// optional trailing dot.
func checkName(name string) error {
	for label := range strings.SplitSeq(strings.TrimSuffix(name, "."), ".") {
		if label == "" || len(label) > 63 {
			return errors.New("labels must have 1 to 63 characters")
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; c <= ' ' || c >= 0x7f {
				return fmt.Errorf("invalid byte %#x", c)
			}
		}
	}
	return nil
}

func absolute(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

// ResolvConf is what the resolver uses from resolv.conf(5).
type ResolvConf struct {
	// Servers are name servers as ip:port.
	Servers []string
	// Search is the search list.
	Search []string
	// Ndots: names with fewer dots are tried with the search list first.
	Ndots int
}

// maxResolvConf bounds what ParseResolvConf reads.
const maxResolvConf = 64 << 10

// ParseResolvConf parses resolv.conf(5) content as glibc does: unknown
// keywords and malformed addresses are ignored, the last search or domain
// line wins, at most three name servers count. With no name server it
// returns the loopback ones. An error is returned only for oversized input.
func ParseResolvConf(data []byte) (ResolvConf, error) {
	conf := ResolvConf{Ndots: 1}
	var err error
	if len(data) > maxResolvConf {
		data = data[:maxResolvConf]
		err = fmt.Errorf("resolv.conf: larger than %d bytes, truncated", maxResolvConf)
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if i := bytes.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 || len(conf.Servers) >= 3 {
				continue
			}
			host, _, _ := strings.Cut(f[1], "%") // drop an IPv6 zone
			ip, perr := netip.ParseAddr(host)
			if perr != nil {
				continue
			}
			conf.Servers = append(conf.Servers, netip.AddrPortFrom(ip, 53).String())
		case "domain":
			if len(f) >= 2 {
				conf.Search = []string{strings.TrimSuffix(f[1], ".")}
			}
		case "search":
			conf.Search = conf.Search[:0]
			for _, s := range f[1:] {
				if s = strings.TrimSuffix(s, "."); s != "" && len(conf.Search) < 6 {
					conf.Search = append(conf.Search, s)
				}
			}
		case "options":
			for _, o := range f[1:] {
				if v, ok := strings.CutPrefix(o, "ndots:"); ok {
					if n, perr := strconv.Atoi(v); perr == nil && n >= 0 {
						conf.Ndots = min(n, 15)
					}
				}
			}
		}
	}
	if len(conf.Servers) == 0 {
		conf.Servers = []string{"127.0.0.1:53", "[::1]:53"}
	}
	return conf, err
}

// candidates lists the names to try for name, in order.
func (c ResolvConf) candidates(name string) []string {
	if strings.HasSuffix(name, ".") {
		return []string{name}
	}
	var out []string
	if strings.Count(name, ".") >= c.Ndots {
		out = append(out, name+".")
	}
	for _, s := range c.Search {
		out = append(out, name+"."+s+".")
	}
	if strings.Count(name, ".") < c.Ndots {
		out = append(out, name+".")
	}
	return out
}
