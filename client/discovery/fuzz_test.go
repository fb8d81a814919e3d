package discovery

import (
	"testing"
)

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"dns:///user.svc:8080", "dns://10.0.0.53:53/a:1?min_ttl=5s", "dns+srv:///_http._tcp.user", "static:///a:1,b:2=3", "a:1", "x://y/z?%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tgt, err := ParseTarget(s)
		if err != nil {
			return
		}
		if tgt.Scheme == "" || tgt.Endpoint == "" {
			t.Fatalf("accepted %q with empty scheme or endpoint: %+v", s, tgt)
		}
		// A parsed target must survive a round trip through String.
		again, err := ParseTarget(tgt.String())
		if err != nil {
			t.Fatalf("String() of %q = %q does not parse: %v", s, tgt.String(), err)
		}
		if again.Scheme != tgt.Scheme || again.Authority != tgt.Authority || again.Endpoint != tgt.Endpoint {
			t.Fatalf("round trip changed %+v into %+v", tgt, again)
		}
		if tgt.Scheme == "dns" || tgt.Scheme == "dns+srv" {
			if cfg, err := DNSConfigFromTarget(tgt); err == nil {
				if err := cfg.Validate(); err != nil {
					t.Fatalf("DNSConfigFromTarget accepted an invalid config: %v", err)
				}
			}
		}
	})
}

func FuzzParseStatic(f *testing.F) {
	for _, s := range []string{"a:1", "a:1=3,b:2", "[::1]:80", "a:1,a:1", ",,", "a:1=1001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in, err := ParseStatic(s)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, i := range in {
			if i.Weight < 1 || i.Weight > 1000 {
				t.Fatalf("weight %d out of range", i.Weight)
			}
			if seen[i.Addr] {
				t.Fatalf("duplicate %s", i.Addr)
			}
			seen[i.Addr] = true
			if err := checkHostPort(i.Addr); err != nil {
				t.Fatalf("accepted bad address %q: %v", i.Addr, err)
			}
		}
		if _, err := NewStatic(in); err != nil {
			t.Fatalf("NewStatic rejected ParseStatic output: %v", err)
		}
	})
}

func FuzzParseResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 10.0.0.1\nsearch a b\noptions ndots:5\n"))
	f.Add([]byte("nameserver fe80::1%eth0\ndomain x.\n"))
	f.Add([]byte("options ndots:99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		conf, _ := ParseResolvConf(data)
		if len(conf.Servers) == 0 || len(conf.Servers) > 3 {
			t.Fatalf("%d servers", len(conf.Servers))
		}
		if conf.Ndots < 0 || conf.Ndots > 15 {
			t.Fatalf("ndots %d", conf.Ndots)
		}
		for _, name := range []string{"user", "user.ns", "user."} {
			if len(conf.candidates(name)) == 0 {
				t.Fatalf("no candidates for %q", name)
			}
		}
	})
}

func FuzzDecodeConsulHealth(f *testing.F) {
	f.Add([]byte(`[{"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"a","Service":"s","Port":80,"Tags":["v1"],"Meta":{"k":"v"},"Weights":{"Passing":3,"Warning":1}},"Checks":[{"CheckID":"c","Status":"passing"}]}]`))
	f.Add([]byte(`[{"Node":{"Address":"10.0.0.1"},"Service":{"ID":"b","Address":"fd00::1","Port":65535}},{"Node":{"Address":"10.0.0.1"},"Service":{"ID":"a","Address":"fd00::1","Port":65535,"Weights":{"Passing":-4}}}]`))
	f.Add([]byte(`[{"Node":{},"Service":{"Port":70000}},{"Service":{"Address":"h:1","Port":1}},{"Checks":[{"Status":"warning"}],"Service":{"Address":"h","Port":1}}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		for _, unhealthy := range []bool{false, true} {
			in, err := DecodeConsulHealth(data, unhealthy)
			if err != nil {
				continue
			}
			for i, x := range in {
				if x.Weight < 1 {
					t.Fatalf("weight %d", x.Weight)
				}
				if err := checkHostPort(x.Addr); err != nil {
					t.Fatalf("accepted bad address %q: %v", x.Addr, err)
				}
				if i > 0 && in[i-1].Addr >= x.Addr {
					t.Fatalf("not sorted or duplicate: %q then %q", in[i-1].Addr, x.Addr)
				}
				if !unhealthy && x.Meta[MetaConsulHealth] != "passing" {
					t.Fatalf("unhealthy %q kept: %q", x.Addr, x.Meta[MetaConsulHealth])
				}
			}
			if len(in) > 0 {
				if _, err := NewStatic(in); err != nil {
					t.Fatalf("NewStatic rejected decoded instances: %v", err)
				}
			}
		}
	})
}
