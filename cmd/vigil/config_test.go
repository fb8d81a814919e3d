package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/vigil-obs/vigil/query/promql"
)

// flags returns a parsed serve flag set.
func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	cmd := newServeCmd()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return cmd.Flags()
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no config files in testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := resolveConfig(flags(t), f, env(nil))
			good := strings.HasSuffix(f, ".good.yaml")
			if good && err != nil {
				t.Fatalf("want valid, got %v", err)
			}
			if !good && err == nil {
				t.Fatal("want an error, got none")
			}
		})
	}
}

func TestConfigFullFile(t *testing.T) {
	c, err := resolveConfig(flags(t), "testdata/full.good.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.DB != "postgres://vigil@db.internal:5432/vigil" || c.HTTP.Address != "127.0.0.1:9090" || c.OTLP.HTTPAddress != "" ||
		time.Duration(c.Retention) != 14*24*time.Hour || c.Pipeline.Writers != 1 || c.Limits.MaxAttributes != 64 ||
		c.Limits.MaxFutureSkew != 30*time.Minute || c.Limits.MaxAge != 14*24*time.Hour ||
		len(c.Auth.IngestTokens) != 2 || c.Log.Format != "json" ||
		time.Duration(c.Metrics.CompactionInterval) != 30*time.Second || time.Duration(c.Metrics.CompactionDelay) != 2*time.Hour ||
		c.Logs.Compaction || time.Duration(c.Logs.CompactionInterval) != 2*time.Minute || time.Duration(c.Logs.CompactionDelay) != 30*time.Minute ||
		c.Query.Timeout != 30*time.Second || c.Query.MaxSubquerySteps != 50000 || c.Query.MaxSamplesRead != 1_000_000 ||
		c.Query.MaxSamples != promql.DefaultMaxSamples ||
		c.Ingest.MaxInflightBytes != 64<<20 || c.Ingest.ReadTimeout != 30*time.Second || c.Ingest.UDPSocketBufferBytes != 1<<20 ||
		c.Ingest.UDPQueueSize != 500 || c.Ingest.RetryAfter != 3*time.Second {
		t.Fatalf("config not decoded as written: %+v", c)
	}
}

func TestConfigHTTPMapping(t *testing.T) {
	c, err := resolveConfig(flags(t, "--http-allowed-hosts", "a.example,b.example"), "testdata/http_mapping.good.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Address != "127.0.0.1:9191" || c.HTTP.ReadTimeout != 30*time.Second ||
		strings.Join(c.HTTP.AllowedHosts, ",") != "a.example,b.example" ||
		c.Logs.Tail.MaxPerAddress != 2 || c.Logs.Tail.IdleTimeout != 10*time.Minute || c.Logs.Tail.Buffer != 64 {
		t.Fatalf("http and logs.tail not decoded as written (flag over file): %+v %+v", c.HTTP, c.Logs.Tail)
	}
	for file, key := range map[string]string{
		"testdata/http_unknown_key.bad.yaml":          "bogus",
		"testdata/write_timeout_below_query.bad.yaml": "http.write_timeout",
		"testdata/tail_idle.bad.yaml":                 "logs.tail.idle_timeout",
	} {
		if _, err := resolveConfig(flags(t), file, env(nil)); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: got %v, want an error naming %s", file, err, key)
		}
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(file, []byte("http: ':1111'\notlp_grpc: ':2222'\notlp_http: ':3333'\nretention: 3d\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# readers\nt1\n\nt2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := env(map[string]string{
		"VIGIL_CONFIG":      file,
		"VIGIL_OTLP_GRPC":   ":4444",
		"VIGIL_HTTP":        ":5555",
		"VIGIL_DB":          "postgres://env/db",
		"VIGIL_READ_TOKENS": "",
	})
	c, err := resolveConfig(flags(t, "--http", ":6666", "--ingest-token", "a,b", "--retention", "36h", "--query-timeout", "45s"), "", e)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"flag beats env and file", c.HTTP.Address, ":6666"},
		{"env beats file", c.OTLP.GRPCAddress, ":4444"},
		{"file beats default", c.OTLP.HTTPAddress, ":3333"},
		{"default", c.DataDir, "./data"},
		{"env only", c.DB, "postgres://env/db"},
		{"flag duration", c.Retention.String(), "1d12h"},
		{"flag slice", strings.Join(c.Auth.IngestTokens, ","), "a,b"},
		{"query flag", c.Query.Timeout.String(), "45s"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %q, want %q", ck.name, ck.got, ck.want)
		}
	}

	c, err = resolveConfig(flags(t), "", env(map[string]string{"VIGIL_CONFIG": file}))
	if err != nil {
		t.Fatal(err)
	}
	c.Auth.ReadTokensFile = tokens
	if err := c.resolveSecrets(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Auth.ReadTokens, ",") != "t1,t2" {
		t.Fatalf("tokens from file = %v", c.Auth.ReadTokens)
	}
	if err := newServeCmd().ParseFlags([]string{"--retention", "soon"}); err == nil {
		t.Fatal("bad --retention accepted")
	}
	if _, err := resolveConfig(flags(t), "", env(map[string]string{"VIGIL_RETENTION": "forever"})); err == nil ||
		!strings.Contains(err.Error(), "VIGIL_RETENTION") {
		t.Fatalf("bad VIGIL_RETENTION: err %v does not name the variable", err)
	}
}

func TestConfigReceiverSections(t *testing.T) {
	c, err := resolveConfig(flags(t, "--zipkin", ":29411"), "testdata/full.good.yaml", env(map[string]string{"VIGIL_JAEGER_GRPC": ":34250"}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		OTLP:   OTLPConfig{GRPCAddress: ":14317"},
		Jaeger: JaegerConfig{UDPCompactAddress: ":16831", HTTPAddress: ":24268", GRPCAddress: ":34250"},
		Zipkin: ZipkinConfig{Address: ":29411"},
	}
	if c.OTLP != want.OTLP || c.Jaeger != want.Jaeger || c.Zipkin != want.Zipkin {
		t.Fatalf("receiver sections = %+v %+v %+v, want %+v %+v %+v", c.OTLP, c.Jaeger, c.Zipkin, want.OTLP, want.Jaeger, want.Zipkin)
	}
	if len(c.deprecated) != 0 {
		t.Errorf("deprecated keys reported for a current file: %v", c.deprecated)
	}
	// The receivers get their listeners and the shared ingest settings.
	o, j := c.otlpConfig(), c.jaegerConfig()
	if o.GRPCAddr != ":14317" || o.HTTPAddr != "" || o.MaxRequestBytes != c.MaxRequestBytes || o.ReadTimeout != 30*time.Second ||
		o.RetryAfter != 3*time.Second || o.Limits.MaxAttributes != 64 {
		t.Errorf("otlp config = %+v", o)
	}
	if j.UDPCompactAddr != ":16831" || j.UDPBinaryAddr != "" || j.HTTPAddr != ":24268" || j.GRPCAddr != ":34250" ||
		j.ZipkinAddr != ":29411" || j.MaxRequestBytes != c.MaxRequestBytes || j.UDPQueueSize != 500 ||
		j.UDPSocketBufferBytes != 1<<20 || j.ReadTimeout != 30*time.Second {
		t.Errorf("jaeger config = %+v", j)
	}
}

func TestConfigDeprecatedKeys(t *testing.T) {
	c, err := resolveConfig(flags(t, "--otlp-http", ":5318"), "testdata/deprecated_keys.good.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.OTLP != (OTLPConfig{GRPCAddress: ":14317", HTTPAddress: ":5318"}) ||
		c.Jaeger != (JaegerConfig{UDPCompactAddress: ":16831", UDPBinaryAddress: ":16832", HTTPAddress: ":24268", GRPCAddress: ":24250"}) ||
		c.Zipkin.Address != ":19411" {
		t.Fatalf("old keys not moved (flag over file): %+v %+v %+v", c.OTLP, c.Jaeger, c.Zipkin)
	}
	var got []string
	for _, d := range c.deprecated {
		got = append(got, d.old+"→"+d.new)
	}
	var logs strings.Builder
	warnDeprecated(t.Context(), slog.New(slog.NewTextHandler(&logs, nil)), c)
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "key=otlp_grpc new_key=otlp.grpc_address") {
		t.Errorf("warnings = %q", logs.String())
	}
	want := "otlp_grpc→otlp.grpc_address otlp_http→otlp.http_address jaeger_udp_compact→jaeger.udp_compact_address " +
		"jaeger_udp_binary→jaeger.udp_binary_address jaeger_grpc→jaeger.grpc_address zipkin→zipkin.address"
	if strings.Join(got, " ") != want {
		t.Errorf("deprecated = %q, want %q", strings.Join(got, " "), want)
	}

	for file, key := range map[string]string{
		"testdata/deprecated_key_twice.bad.yaml":   "otlp_grpc: deprecated and given together with otlp.grpc_address",
		"testdata/deprecated_unknown_key.bad.yaml": "bogus",
	} {
		if _, err := resolveConfig(flags(t), file, env(nil)); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: got %v, want an error containing %q", file, err, key)
		}
	}
}
