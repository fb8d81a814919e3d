package discovery

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// fakeDNS is an authoritative DNS server on loopback (UDP and TCP on the same
// port) answering from a table.
type fakeDNS struct {
	addr string

	mu       sync.Mutex
	records  map[string][]dnsmessage.Resource // key: lower-case name + "/" + type
	extra    map[string][]dnsmessage.Resource // additionals for SRV answers
	rcode    dnsmessage.RCode
	truncate bool // answer UDP queries with TC set and no records
	queries  []string
	tcp      int
}

func key(name string, t dnsmessage.Type) string { return strings.ToLower(name) + "/" + t.String() }

func newFakeDNS(t *testing.T) *fakeDNS {
	t.Helper()
	f := &fakeDNS{records: map[string][]dnsmessage.Resource{}, extra: map[string][]dnsmessage.Resource{}}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no free port for udp and tcp")
	}
	f.addr = pc.LocalAddr().String()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := f.answer(buf[:n], true); resp != nil {
				// A lost answer is a lost datagram: the client retries.
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var lb [2]byte
			if _, err := io.ReadFull(c, lb[:]); err == nil {
				q := make([]byte, binary.BigEndian.Uint16(lb[:]))
				if _, err := io.ReadFull(c, q); err == nil {
					f.mu.Lock()
					f.tcp++
					f.mu.Unlock()
					resp := f.answer(q, false)
					out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
					if _, err := c.Write(append(out, resp...)); err != nil {
						return // the client hung up
					}
				}
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		ln.Close()
		wg.Wait()
	})
	return f
}

func (f *fakeDNS) add(name string, ttl uint32, body dnsmessage.ResourceBody) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := dnsmessage.MustNewName(absolute(name))
	rr := dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: n, Class: dnsmessage.ClassINET, TTL: ttl}, Body: body}
	f.records[key(absolute(name), typeOf(body))] = append(f.records[key(absolute(name), typeOf(body))], rr)
}

func (f *fakeDNS) addGlue(srvName, target string, ttl uint32, ip string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := netip.MustParseAddr(ip)
	var body dnsmessage.ResourceBody
	if a.Is4() {
		body = &dnsmessage.AResource{A: a.As4()}
	} else {
		body = &dnsmessage.AAAAResource{AAAA: a.As16()}
	}
	rr := dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(absolute(target)), Class: dnsmessage.ClassINET, TTL: ttl}, Body: body}
	k := strings.ToLower(absolute(srvName))
	f.extra[k] = append(f.extra[k], rr)
}

func typeOf(b dnsmessage.ResourceBody) dnsmessage.Type {
	switch b.(type) {
	case *dnsmessage.AResource:
		return dnsmessage.TypeA
	case *dnsmessage.AAAAResource:
		return dnsmessage.TypeAAAA
	}
	// The fake server holds only A, AAAA and SRV records.
	return dnsmessage.TypeSRV
}

func (f *fakeDNS) answer(q []byte, udp bool) []byte {
	var msg dnsmessage.Message
	if err := msg.Unpack(q); err != nil || len(msg.Questions) != 1 {
		return nil
	}
	question := msg.Questions[0]
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, strings.ToLower(question.Name.String())+" "+question.Type.String())
	resp := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: msg.ID, Response: true, Authoritative: true, RCode: f.rcode},
		Questions: msg.Questions,
	}
	if udp && f.truncate {
		resp.Truncated = true
	} else if f.rcode == dnsmessage.RCodeSuccess {
		k := key(question.Name.String(), question.Type)
		resp.Answers = f.records[k]
		if len(resp.Answers) == 0 {
			anyName := false
			for rk := range f.records {
				if strings.HasPrefix(rk, strings.ToLower(question.Name.String())+"/") {
					anyName = true
				}
			}
			if !anyName {
				resp.RCode = dnsmessage.RCodeNameError
			}
		}
		if question.Type == dnsmessage.TypeSRV {
			resp.Additionals = f.extra[strings.ToLower(question.Name.String())]
		}
	}
	b, err := resp.Pack()
	if err != nil {
		return nil
	}
	return b
}

func (f *fakeDNS) set(rcode dnsmessage.RCode, truncate bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rcode, f.truncate = rcode, truncate
}

func (f *fakeDNS) tcpQueries() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tcp
}

func (f *fakeDNS) queryLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.queries...)
}
