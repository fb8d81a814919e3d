package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/vigil-obs/vigil/alerting/notify"
	"github.com/vigil-obs/vigil/alerting/rules"
	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/derive"
	"github.com/vigil-obs/vigil/ingest/jaeger"
	"github.com/vigil-obs/vigil/ingest/otlp"
	"github.com/vigil-obs/vigil/ingest/pipeline"
	"github.com/vigil-obs/vigil/ingest/promremote"
	"github.com/vigil-obs/vigil/ingest/scrape"
	"github.com/vigil-obs/vigil/internal/tail"
	"github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/registry"
	"github.com/vigil-obs/vigil/storage/postgres/logstore"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
	"github.com/vigil-obs/vigil/web"
	"github.com/vigil-obs/vigil/web/api/logsapi"
)

// Config is everything `vigil serve` can be told. Each field is a key of
// the YAML file; the important ones are also flags and VIGIL_* environment
// variables. Precedence, highest first: flag, environment, file, default.
type Config struct {
	// DB is the PostgreSQL URL; empty starts a managed local Postgres in
	// DataDir. A secret: prefer VIGIL_DB or db_file.
	DB     string `yaml:"db"`
	DBFile string `yaml:"db_file"`
	// DataDir holds the managed Postgres cluster.
	DataDir string `yaml:"data_dir"`
	// HTTP is the main port: the UI and query APIs (and probes, /metrics).
	HTTP HTTPConfig `yaml:"http"`
	// OTLP, Jaeger and Zipkin are the receivers' listeners; an empty
	// address turns one off. What the receivers share (request size,
	// timeouts, budget) is in Ingest and MaxRequestBytes.
	OTLP   OTLPConfig   `yaml:"otlp"`
	Jaeger JaegerConfig `yaml:"jaeger"`
	Zipkin ZipkinConfig `yaml:"zipkin"`
	// Retention is how long telemetry is kept (whole days are dropped).
	Retention model.Duration `yaml:"retention"`
	// WebConfigFile is a Prometheus exporter-toolkit web configuration
	// (tls_server_config) serving TLS on every TCP listener; empty serves
	// plain text.
	WebConfigFile string `yaml:"web_config_file"`
	// MaxRequestBytes bounds one ingest request, before and after
	// decompression.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`

	Ingest IngestConfig `yaml:"ingest"`
	// RemoteWrite configures POST /api/v1/write; its max_request_bytes
	// defaults to the top-level one.
	RemoteWrite promremote.Config `yaml:"remote_write"`
	Logs        LogsConfig        `yaml:"logs"`
	Metrics     MetricsConfig     `yaml:"metrics"`
	Auth        AuthConfig        `yaml:"auth"`
	Log         LogConfig         `yaml:"log"`
	Limits      ingest.Limits     `yaml:"limits"`
	Pipeline    pipeline.Config   `yaml:"pipeline"`
	// Registry is the Consul-compatible service registry.
	Registry RegistryConfig `yaml:"registry"`
	// Scrape holds the scrape jobs (ingest/scrape): a Prometheus file
	// and/or scrape_configs of Vigil's own.
	Scrape scrape.Config `yaml:"scrape"`
	// Derive configures the RED and service-graph series derived from
	// spans at ingest (ingest/derive).
	Derive derive.Config `yaml:"derive"`
	// Query bounds PromQL evaluation (the Prometheus API and, later, rule
	// evaluation).
	Query promql.Config `yaml:"query"`
	// Alerting is rule evaluation and notification delivery.
	Alerting AlertingConfig `yaml:"alerting"`

	// deprecated lists the old keys the file used, each with its new
	// key, for the caller to log once it has a logger.
	deprecated []deprecatedKey
}

// AlertingConfig is the alerting section: the keys of rule evaluation
// (alerting/rules: rule_files, default_rules, evaluation_interval, …) and
// of notification delivery (alerting/notify: alertmanager_config,
// webhooks, …) side by side. external_url is rules' key and serves both.
type AlertingConfig struct {
	Rules  rules.Config  `yaml:",inline"`
	Notify notify.Config `yaml:",inline"`
}

// notifyConfig is the notification configuration with the shared
// external URL.
func (a AlertingConfig) notifyConfig() notify.Config {
	n := a.Notify
	n.ExternalURL = a.Rules.ExternalURL
	return n
}

// Validate checks both halves, naming keys under alerting.
func (a AlertingConfig) Validate() error {
	if err := a.Rules.Validate(); err != nil {
		return fmt.Errorf("alerting: %w", err)
	}
	if err := a.notifyConfig().Validate(); err != nil {
		return fmt.Errorf("alerting: %w", err)
	}
	return nil
}

// OTLPConfig is the OTLP receiver's listeners (YAML section otlp).
type OTLPConfig struct {
	// GRPCAddress is the OTLP/gRPC address (4317).
	GRPCAddress string `yaml:"grpc_address"`
	// HTTPAddress is the OTLP/HTTP address (4318).
	HTTPAddress string `yaml:"http_address"`
}

// JaegerConfig is the Jaeger receiver's listeners (YAML section jaeger).
// Each UDP port accepts both compact and binary thrift.
type JaegerConfig struct {
	// UDPCompactAddress is the agent's compact thrift port (6831).
	UDPCompactAddress string `yaml:"udp_compact_address"`
	// UDPBinaryAddress is the agent's binary thrift port (6832).
	UDPBinaryAddress string `yaml:"udp_binary_address"`
	// HTTPAddress is the collector's HTTP thrift endpoint (14268).
	HTTPAddress string `yaml:"http_address"`
	// GRPCAddress is the collector's gRPC API (14250).
	GRPCAddress string `yaml:"grpc_address"`
}

// RegistryConfig is the Consul-compatible service registry (YAML section
// registry): its listener and the registry's own settings.
type RegistryConfig struct {
	// Address is the Consul HTTP API's address (8500); empty turns the
	// registry off.
	Address         string `yaml:"address"`
	registry.Config `yaml:",inline"`
}

// ZipkinConfig is the Zipkin v2 receiver's listener (YAML section
// zipkin), served by the Jaeger receiver.
type ZipkinConfig struct {
	// Address is the Zipkin v2 HTTP address (9411).
	Address string `yaml:"address"`
}

// otlpConfig is the OTLP receiver's configuration: its listeners and
// what every receiver shares.
func (c *Config) otlpConfig() otlp.Config {
	return otlp.Config{
		GRPCAddr: c.OTLP.GRPCAddress, HTTPAddr: c.OTLP.HTTPAddress,
		MaxRequestBytes: c.MaxRequestBytes, Limits: c.Limits,
		ReadTimeout: c.Ingest.ReadTimeout, IdleTimeout: c.Ingest.IdleTimeout, MaxConcurrentStreams: c.Ingest.MaxConcurrentStreams,
		RetryAfter: c.Ingest.RetryAfter, ShutdownTimeout: c.Ingest.ShutdownTimeout,
	}
}

// jaegerConfig is the Jaeger and Zipkin receiver's configuration: their
// listeners and what every receiver shares.
func (c *Config) jaegerConfig() jaeger.Config {
	return jaeger.Config{
		UDPCompactAddr: c.Jaeger.UDPCompactAddress, UDPBinaryAddr: c.Jaeger.UDPBinaryAddress,
		HTTPAddr: c.Jaeger.HTTPAddress, GRPCAddr: c.Jaeger.GRPCAddress, ZipkinAddr: c.Zipkin.Address,
		MaxRequestBytes: c.MaxRequestBytes,
		ReadTimeout:     c.Ingest.ReadTimeout, IdleTimeout: c.Ingest.IdleTimeout, MaxConcurrentStreams: c.Ingest.MaxConcurrentStreams,
		UDPSocketBufferBytes: c.Ingest.UDPSocketBufferBytes, UDPQueueSize: c.Ingest.UDPQueueSize, UDPWorkers: c.Ingest.UDPWorkers,
		RetryAfter: c.Ingest.RetryAfter, ShutdownTimeout: c.Ingest.ShutdownTimeout,
	}
}

// remoteWriteConfig is the remote_write section, its max_request_bytes
// defaulting to the top-level one.
func (c *Config) remoteWriteConfig() promremote.Config {
	rw := c.RemoteWrite
	if rw.MaxRequestBytes == 0 {
		rw.MaxRequestBytes = c.MaxRequestBytes
	}
	return rw
}

// IngestConfig bounds what the receivers hold and how long they wait for
// a client. Zero fields take the receivers' defaults.
type IngestConfig struct {
	// MaxInflightBytes is the request bytes all receivers may hold at
	// once (bodies as read, decompressed, until answered); 0 means
	// inflight.DefaultMaxBytes() (GOMEMLIMIT/32, at least 48 MiB).
	MaxInflightBytes int64 `yaml:"max_inflight_bytes"`
	// ReadTimeout bounds the receipt of one request (HTTP body, gRPC
	// message) on the OTLP, Jaeger and Zipkin ports.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout closes idle keep-alive connections of those ports.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxConcurrentStreams bounds the gRPC calls in progress per
	// connection.
	MaxConcurrentStreams uint32 `yaml:"max_concurrent_streams"`
	// UDPSocketBufferBytes is the kernel receive buffer of each Jaeger UDP
	// socket.
	UDPSocketBufferBytes int `yaml:"udp_socket_buffer_bytes"`
	// UDPQueueSize and UDPWorkers size each Jaeger UDP port's queue of
	// datagrams and the workers decoding it.
	UDPQueueSize int `yaml:"udp_queue_size"`
	UDPWorkers   int `yaml:"udp_workers"`
	// RetryAfter is the delay suggested to clients told to retry.
	RetryAfter time.Duration `yaml:"retry_after"`
	// ShutdownTimeout bounds how long a receiver waits for requests in
	// flight when Vigil stops.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Validate reports a setting that cannot work, naming its key.
func (c IngestConfig) Validate(maxRequestBytes int64) error {
	switch {
	case c.MaxInflightBytes < 0:
		return fmt.Errorf("ingest.max_inflight_bytes: %d is negative", c.MaxInflightBytes)
	case c.MaxInflightBytes > 0 && c.MaxInflightBytes < 2*maxRequestBytes:
		return fmt.Errorf("ingest.max_inflight_bytes: %d cannot hold one request of max_request_bytes (%d), compressed and decompressed", c.MaxInflightBytes, maxRequestBytes)
	case c.ReadTimeout < 0:
		return fmt.Errorf("ingest.read_timeout: %s is negative", c.ReadTimeout)
	case c.IdleTimeout < 0:
		return fmt.Errorf("ingest.idle_timeout: %s is negative", c.IdleTimeout)
	case c.UDPSocketBufferBytes < 0:
		return fmt.Errorf("ingest.udp_socket_buffer_bytes: %d is negative", c.UDPSocketBufferBytes)
	case c.UDPQueueSize < 0:
		return fmt.Errorf("ingest.udp_queue_size: %d is negative", c.UDPQueueSize)
	case c.UDPWorkers < 0:
		return fmt.Errorf("ingest.udp_workers: %d is negative", c.UDPWorkers)
	case c.RetryAfter < 0:
		return fmt.Errorf("ingest.retry_after: %s is negative", c.RetryAfter)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("ingest.shutdown_timeout: %s is negative", c.ShutdownTimeout)
	}
	return nil
}

// LogsConfig configures the log signal.
type LogsConfig struct {
	// Retention is how long log records are kept; zero means the same as
	// the top-level retention.
	Retention model.Duration `yaml:"retention"`
	// AllowedOrigins lists the browser origins, besides the server's own,
	// allowed to open the live-tail WebSocket.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// Pipeline sizes the log pipeline.
	Pipeline pipeline.LogConfig `yaml:"pipeline"`
	// Tail bounds the live tail.
	Tail LogsTailConfig `yaml:"tail"`
	// Compaction turns the compaction of closed windows into compressed
	// blocks on (the default) or off.
	Compaction bool `yaml:"compaction"`
	// CompactionInterval is the time between log compaction passes.
	CompactionInterval model.Duration `yaml:"compaction_interval"`
	// CompactionDelay is how long after its end a two-hour window of log
	// records is compacted into blocks.
	CompactionDelay model.Duration `yaml:"compaction_delay"`
	// PendingMergeInterval is the time between two merges of the raw
	// partitions' pending text-index entries into the index
	// (logstore.Store.CleanPending); 0 leaves them to the writers and
	// autovacuum.
	PendingMergeInterval model.Duration `yaml:"pending_merge_interval"`
}

// LogsTailConfig bounds the live tail: the hub of all clients together
// and each client's connections.
type LogsTailConfig struct {
	tail.Config        `yaml:",inline"`
	logsapi.TailConfig `yaml:",inline"`
}

// HTTPConfig is the main HTTP port: its address and the server's limits.
// In the file, the address alone (`http: ":8080"`) is still accepted.
type HTTPConfig struct {
	Address    string `yaml:"address"`
	web.Config `yaml:",inline"`
}

// UnmarshalYAML accepts a scalar (the address) or a mapping, decoded as
// strictly as the rest of the file.
func (h *HTTPConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&h.Address)
	}
	// A node's Decode does not inherit the file decoder's KnownFields.
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	type plain HTTPConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode((*plain)(h))
}

// MetricsConfig configures the metric store.
type MetricsConfig struct {
	// CompactionInterval is the time between compaction passes.
	CompactionInterval model.Duration `yaml:"compaction_interval"`
	// CompactionDelay is how long after its end a two-hour window of raw
	// samples is compacted into chunks.
	CompactionDelay model.Duration `yaml:"compaction_delay"`
	// HeadRange is how far back reads are served from the head, the
	// in-process copy of recently read samples that spares rule
	// evaluation reading the same samples every interval; 0 turns it off.
	HeadRange model.Duration `yaml:"head_range"`
	// HeadMaxSamples bounds the samples the head holds.
	HeadMaxSamples int `yaml:"head_max_samples"`
	// Pipeline sizes the metric pipeline (remote_write and OTLP metrics).
	Pipeline pipeline.MetricConfig `yaml:"pipeline"`
	// OTLP configures the translation of OTLP metrics.
	OTLP pipeline.OTLPMetricsConfig `yaml:"otlp"`
}

// AuthConfig holds the optional bearer tokens. Empty lists turn a check off.
type AuthConfig struct {
	IngestTokens     []string `yaml:"ingest_tokens"`
	IngestTokensFile string   `yaml:"ingest_tokens_file"`
	ReadTokens       []string `yaml:"read_tokens"`
	ReadTokensFile   string   `yaml:"read_tokens_file"`
}

// LogConfig selects Vigil's own log output.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

func defaultConfig() Config {
	return Config{
		DataDir: "./data",
		HTTP:    HTTPConfig{Address: ":8080"},
		OTLP:    OTLPConfig{GRPCAddress: ":4317", HTTPAddress: ":4318"},
		Jaeger: JaegerConfig{UDPCompactAddress: ":6831", UDPBinaryAddress: ":6832",
			HTTPAddress: ":14268", GRPCAddress: ":14250"},
		Zipkin:          ZipkinConfig{Address: ":9411"},
		Registry:        RegistryConfig{Address: ":8500", Config: registry.DefaultConfig()},
		Retention:       model.Duration(7 * 24 * time.Hour),
		MaxRequestBytes: 16 << 20,
		Log:             LogConfig{Level: "info", Format: "text"},
		Pipeline:        pipeline.DefaultConfig(),
		Derive:          derive.DefaultConfig(),
		Logs: LogsConfig{Pipeline: pipeline.DefaultLogConfig(), Compaction: true,
			CompactionInterval: model.Duration(time.Minute), CompactionDelay: model.Duration(time.Hour),
			PendingMergeInterval: model.Duration(logstore.DefaultPendingInterval)},
		Metrics: MetricsConfig{CompactionInterval: model.Duration(time.Minute), CompactionDelay: model.Duration(time.Hour),
			HeadRange: model.Duration(metricstore.DefaultHeadRange), HeadMaxSamples: metricstore.DefaultHeadMaxSamples,
			Pipeline: pipeline.DefaultMetricConfig()},
		Query:    promql.DefaultConfig(),
		Alerting: AlertingConfig{Rules: rules.DefaultConfig()},
	}
}

// Validate reports the first invalid setting, naming its key.
func (c *Config) Validate() error {
	if time.Duration(c.Retention) < 24*time.Hour {
		return fmt.Errorf("retention: %s is shorter than one day (data is dropped by whole days)", c.Retention)
	}
	if c.MaxRequestBytes < 1024 {
		return fmt.Errorf("max_request_bytes: %d is below 1024", c.MaxRequestBytes)
	}
	if err := c.Ingest.Validate(c.MaxRequestBytes); err != nil {
		return err
	}
	if c.HTTP.Address == "" {
		return errors.New("http.address: an address is required")
	}
	if err := c.HTTP.Validate(); err != nil {
		return fmt.Errorf("http.%w", err)
	}
	if w, q := c.HTTP.WriteTimeout, c.Query.Timeout; w > 0 && q > 0 && w <= q {
		return fmt.Errorf("http.write_timeout: %s must exceed query.timeout (%s), or long queries lose their answers", w, q)
	}
	if err := c.Logs.Tail.Config.Validate(); err != nil {
		return fmt.Errorf("logs.tail.%w", err)
	}
	if err := c.Logs.Tail.TailConfig.Validate(); err != nil {
		return fmt.Errorf("logs.tail.%w", err)
	}
	if c.DB == "" && c.DataDir == "" {
		return errors.New("data_dir: required when no database URL is given")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format: %q is not text or json", c.Log.Format)
	}
	if err := c.Registry.Validate(); err != nil {
		return err
	}
	if err := c.Scrape.Validate(); err != nil {
		return err
	}
	if err := c.Derive.Validate(); err != nil {
		return err
	}
	if err := c.Pipeline.Validate(); err != nil {
		return err
	}
	if err := c.Query.Validate(); err != nil {
		return err
	}
	if err := c.Metrics.Pipeline.Validate(); err != nil {
		return err
	}
	if err := c.Metrics.OTLP.Validate(); err != nil {
		return err
	}
	if err := c.RemoteWrite.Validate(); err != nil {
		return err
	}
	if r := time.Duration(c.Logs.Retention); r != 0 && r < 24*time.Hour {
		return fmt.Errorf("logs.retention: %s is shorter than one day", c.Logs.Retention)
	}
	if time.Duration(c.Logs.CompactionInterval) < time.Second {
		return fmt.Errorf("logs.compaction_interval: %s is below 1s", c.Logs.CompactionInterval)
	}
	if time.Duration(c.Logs.CompactionDelay) < 0 {
		return fmt.Errorf("logs.compaction_delay: %s is negative", c.Logs.CompactionDelay)
	}
	if time.Duration(c.Logs.PendingMergeInterval) < 0 {
		return fmt.Errorf("logs.pending_merge_interval: %s is negative", c.Logs.PendingMergeInterval)
	}
	if time.Duration(c.Metrics.CompactionInterval) < time.Second {
		return fmt.Errorf("metrics.compaction_interval: %s is below 1s", c.Metrics.CompactionInterval)
	}
	if time.Duration(c.Metrics.HeadRange) < 0 {
		return fmt.Errorf("metrics.head_range: %s is negative", c.Metrics.HeadRange)
	}
	if c.Metrics.HeadMaxSamples < 1 {
		return fmt.Errorf("metrics.head_max_samples: %d is below 1", c.Metrics.HeadMaxSamples)
	}
	if time.Duration(c.Metrics.CompactionDelay) < 0 {
		return fmt.Errorf("metrics.compaction_delay: %s is negative", c.Metrics.CompactionDelay)
	}
	if err := c.Alerting.Validate(); err != nil {
		return err
	}
	return c.Logs.Pipeline.Validate()
}

// resolveSecrets reads the *_file settings.
func (c *Config) resolveSecrets() error {
	if c.DB == "" && c.DBFile != "" {
		b, err := os.ReadFile(c.DBFile)
		if err != nil {
			return fmt.Errorf("db_file: %w", err)
		}
		c.DB = strings.TrimSpace(string(b))
	}
	for _, f := range []struct {
		path string
		dst  *[]string
		key  string
	}{
		{c.Auth.IngestTokensFile, &c.Auth.IngestTokens, "auth.ingest_tokens_file"},
		{c.Auth.ReadTokensFile, &c.Auth.ReadTokens, "auth.read_tokens_file"},
	} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("%s: %w", f.key, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				*f.dst = append(*f.dst, line)
			}
		}
	}
	return nil
}

// loadFile decodes a YAML file strictly (unknown keys are errors) over c.
// The listener keys of earlier versions are moved to their sections
// first (see moveDeprecatedKeys) and recorded in c.deprecated.
func loadFile(path string, c *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var doc yaml.Node
	// An empty file (io.EOF) means "no settings".
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	moved, err := moveDeprecatedKeys(&doc)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if len(moved) > 0 {
		// Decode the rewritten document, as strictly as the file.
		if b, err = yaml.Marshal(&doc); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	c.deprecated = append(c.deprecated, moved...)
	return nil
}

// deprecatedKey is a key of an earlier version's file and the key that
// replaces it.
type deprecatedKey struct{ old, new string }

// deprecatedKeys are the flat listener keys of earlier versions, each
// with the section and key that replace it. They still work (with a
// warning); a file that gives both an old key and its new one is
// refused.
var deprecatedKeys = []struct{ old, section, key string }{
	{"otlp_grpc", "otlp", "grpc_address"},
	{"otlp_http", "otlp", "http_address"},
	{"jaeger_udp_compact", "jaeger", "udp_compact_address"},
	{"jaeger_udp_binary", "jaeger", "udp_binary_address"},
	{"jaeger_http", "jaeger", "http_address"},
	{"jaeger_grpc", "jaeger", "grpc_address"},
	{"zipkin", "zipkin", "address"}, // zipkin: ":9411", a scalar
}

// moveDeprecatedKeys rewrites the top-level mapping of doc so that every
// deprecated key sits at its new place, and returns the keys it moved.
func moveDeprecatedKeys(doc *yaml.Node) ([]deprecatedKey, error) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil // empty, or not a mapping: the strict decoder says why
	}
	top := doc.Content[0]
	var moved []deprecatedKey
	for _, d := range deprecatedKeys {
		i := mappingIndex(top, d.old)
		if i < 0 {
			continue
		}
		val := top.Content[i+1]
		if d.old == d.section && val.Kind != yaml.ScalarNode {
			continue // the section itself
		}
		top.Content = append(top.Content[:i], top.Content[i+2:]...)
		newKey := d.section + "." + d.key
		j := mappingIndex(top, d.section)
		if j < 0 {
			top.Content = append(top.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: d.section},
				&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"})
			j = len(top.Content) - 2
		}
		section := top.Content[j+1]
		if section.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s: deprecated, and %s is not a section", d.old, d.section)
		}
		if mappingIndex(section, d.key) >= 0 {
			return nil, fmt.Errorf("%s: deprecated and given together with %s, which replaces it; remove %s", d.old, newKey, d.old)
		}
		section.Content = append(section.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: d.key}, val)
		moved = append(moved, deprecatedKey{old: d.old, new: newKey})
	}
	return moved, nil
}

// mappingIndex returns the index in m.Content of the key node named key,
// or -1.
func mappingIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

// durationValue is a pflag.Value for Prometheus-style durations ("7d",
// "36h", "1w").
type durationValue struct{ d *model.Duration }

func (v durationValue) String() string { return v.d.String() }
func (v durationValue) Type() string   { return "duration" }
func (v durationValue) Set(s string) error {
	d, err := model.ParseDuration(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

// bindFlags registers the serve flags on fs, bound to c.
func bindFlags(fs *pflag.FlagSet, c *Config) {
	fs.StringVar(&c.DB, "db", c.DB, "PostgreSQL URL (postgres://user@host:5432/db); empty starts a managed local Postgres in --data-dir")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the managed Postgres cluster")
	fs.StringVar(&c.HTTP.Address, "http", c.HTTP.Address, "address of the web UI, query APIs, /healthz, /readyz and /metrics")
	fs.StringSliceVar(&c.HTTP.AllowedHosts, "http-allowed-hosts", c.HTTP.AllowedHosts, "host names requests may use while read tokens are off, besides IP addresses, localhost and this host's name (repeat or comma-separate; * = any)")
	fs.StringVar(&c.OTLP.GRPCAddress, "otlp-grpc", c.OTLP.GRPCAddress, "OTLP/gRPC receiver address (empty = off)")
	fs.StringVar(&c.OTLP.HTTPAddress, "otlp-http", c.OTLP.HTTPAddress, "OTLP/HTTP receiver address (empty = off)")
	fs.StringVar(&c.Jaeger.UDPCompactAddress, "jaeger-udp-compact", c.Jaeger.UDPCompactAddress, "Jaeger agent UDP address, compact (and binary) thrift (empty = off)")
	fs.StringVar(&c.Jaeger.UDPBinaryAddress, "jaeger-udp-binary", c.Jaeger.UDPBinaryAddress, "Jaeger agent UDP address, binary (and compact) thrift (empty = off)")
	fs.StringVar(&c.Jaeger.HTTPAddress, "jaeger-http", c.Jaeger.HTTPAddress, "Jaeger collector HTTP thrift address, POST /api/traces (empty = off)")
	fs.StringVar(&c.Jaeger.GRPCAddress, "jaeger-grpc", c.Jaeger.GRPCAddress, "Jaeger collector gRPC address, api_v2 PostSpans (empty = off)")
	fs.StringVar(&c.Zipkin.Address, "zipkin", c.Zipkin.Address, "Zipkin v2 address, POST /api/v2/spans (empty = off)")
	fs.StringVar(&c.WebConfigFile, "web-config", c.WebConfigFile, "web configuration file (Prometheus exporter-toolkit format, tls_server_config) serving TLS on every TCP listener; empty = plain text")
	fs.Var(durationValue{&c.Retention}, "retention", "how long telemetry is kept (e.g. 7d, 36h, 2w)")
	fs.Var(durationValue{&c.Logs.Retention}, "logs-retention", "how long log records are kept (default: --retention)")
	fs.Int64Var(&c.MaxRequestBytes, "max-request-bytes", c.MaxRequestBytes, "largest ingest request in bytes, before and after decompression")
	fs.Int64Var(&c.Ingest.MaxInflightBytes, "ingest-max-inflight-bytes", c.Ingest.MaxInflightBytes, "request bytes all receivers may hold at once; beyond it clients are told to retry (0 = GOMEMLIMIT/32, at least 48 MiB)")
	fs.DurationVar(&c.Ingest.ReadTimeout, "ingest-read-timeout", c.Ingest.ReadTimeout, "time to receive one OTLP, Jaeger or Zipkin request (0 = 1m)")
	fs.StringSliceVar(&c.Auth.IngestTokens, "ingest-token", c.Auth.IngestTokens, "bearer token accepted by the receivers (repeat or comma-separate; none = no check)")
	fs.StringSliceVar(&c.Auth.ReadTokens, "read-token", c.Auth.ReadTokens, "bearer token accepted by the query APIs (repeat or comma-separate; none = no check)")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "log level: debug, info, warn, error")
	fs.StringVar(&c.Log.Format, "log-format", c.Log.Format, "log format: text or json")
	fs.DurationVar(&c.Query.Timeout, "query-timeout", c.Query.Timeout, "longest evaluation of one PromQL query, waiting for a slot included")
	fs.IntVar(&c.Query.MaxSamples, "query-max-samples", c.Query.MaxSamples, "most samples one PromQL query may hold in memory at once")
	fs.Int64Var(&c.Query.MaxSamplesRead, "query-max-samples-read", c.Query.MaxSamplesRead, "most samples one PromQL query may read from PostgreSQL")
	fs.IntVar(&c.Query.MaxConcurrent, "query-max-concurrent", c.Query.MaxConcurrent, "most PromQL queries evaluated at once; others wait")
	fs.DurationVar(&c.Query.LookbackDelta, "query-lookback-delta", c.Query.LookbackDelta, "how far back an instant selector looks for a sample")
	fs.StringVar(&c.Query.LogFile, "query-log-file", c.Query.LogFile, "file receiving one JSON line per PromQL query (empty = off)")
	fs.StringSliceVar(&c.Alerting.Rules.RuleFiles, "rules", c.Alerting.Rules.RuleFiles, "Prometheus rule files to evaluate, as globs (repeat or comma-separate)")
	fs.Var(boolPtrValue{&c.Alerting.Rules.DefaultRules}, "default-rules", "evaluate the shipped rule pack (vigil rules defaults prints it)")
	fs.Lookup("default-rules").NoOptDefVal = "true"
	fs.StringVar(&c.Registry.Address, "consul-api", c.Registry.Address, "address of the Consul-compatible service registry's HTTP API (empty = off)")
	fs.StringVar(&c.Scrape.ConfigFile, "scrape-config", c.Scrape.ConfigFile, "Prometheus configuration file whose global and scrape_configs are scraped (other sections are ignored); reloaded with the rules")
	fs.StringVar(&c.Alerting.Notify.AlertmanagerConfig, "alertmanager-config", c.Alerting.Notify.AlertmanagerConfig, "Alertmanager configuration file (routes, receivers, inhibit rules, templates; plus feishu_configs, dingtalk_configs, wecom_robot_configs)")
	fs.StringSliceVar(&c.Alerting.Notify.Webhooks, "alert-webhook", c.Alerting.Notify.Webhooks, "without --alertmanager-config: URL sent Alertmanager webhook v4 notifications, grouped by alertname and service (repeat)")
	fs.StringVar(&c.Alerting.Rules.ExternalURL, "external-url", c.Alerting.Rules.ExternalURL, "URL Vigil is reached at, for links in alerts and notifications")
}

// boolPtrValue is a pflag.Value for an optional boolean (nil = default).
type boolPtrValue struct{ b **bool }

func (v boolPtrValue) String() string {
	if *v.b == nil {
		return "true"
	}
	return strconv.FormatBool(**v.b)
}

func (v boolPtrValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*v.b = &b
	return nil
}

func (v boolPtrValue) Type() string { return "bool" }

// envName is the environment variable of a flag: VIGIL_ and the flag name
// in upper case with dashes as underscores. Token flags are plural there.
func envName(flag string) string {
	name := "VIGIL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
	if strings.HasSuffix(name, "_TOKEN") {
		name += "S"
	}
	return name
}

// resolveConfig builds the effective configuration: defaults, then the
// YAML file (--config or VIGIL_CONFIG), then VIGIL_* variables, then the
// flags given on the command line.
func resolveConfig(fs *pflag.FlagSet, configPath string, getenv func(string) string) (Config, error) {
	c := defaultConfig()
	if configPath == "" {
		configPath = getenv("VIGIL_CONFIG")
	}
	if configPath != "" {
		if err := loadFile(configPath, &c); err != nil {
			return c, err
		}
	}
	final := pflag.NewFlagSet("final", pflag.ContinueOnError)
	bindFlags(final, &c)
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || final.Lookup(f.Name) == nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if serr := final.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s: %w", envName(f.Name), serr)
				return
			}
		}
		if !f.Changed {
			return
		}
		dst := final.Lookup(f.Name).Value
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			err = dst.(pflag.SliceValue).Replace(sv.GetSlice())
			return
		}
		if serr := dst.Set(f.Value.String()); serr != nil {
			err = fmt.Errorf("--%s: %w", f.Name, serr)
		}
	})
	if err != nil {
		return c, err
	}
	if err := c.resolveSecrets(); err != nil {
		return c, err
	}
	if c.Logs.Retention == 0 {
		c.Logs.Retention = c.Retention
	}
	// Data older than its retention would land in dropped partitions.
	oldest := min(time.Duration(c.Retention), time.Duration(c.Logs.Retention))
	if c.Limits.MaxAge <= 0 || c.Limits.MaxAge > oldest {
		c.Limits.MaxAge = oldest
	}
	return c, c.Validate()
}
