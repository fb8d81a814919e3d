package scrape

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	yamlv2 "go.yaml.in/yaml/v2"
	"gopkg.in/yaml.v3"
)

// DefaultScrapeInterval is Vigil's global scrape_interval: the interval
// of a job that sets none, when the global section sets none either
// (Prometheus's own default is 1m). The global scrape_timeout then
// defaults to 10s, as in Prometheus.
const DefaultScrapeInterval = 15 * time.Second

// Config is the scrape section of Vigil's configuration. Scrape jobs come
// from a Prometheus configuration file (ConfigFile), from the section
// itself (ScrapeConfigs, with Global) and from cmd/vigil (Options.Jobs);
// all of them run together, and their job names must differ.
//
// In YAML the section reads
//
//	scrape:
//	  config_file: /etc/prometheus/prometheus.yml
//	  global:            # Prometheus's global section, for scrape_configs below
//	    scrape_interval: 30s
//	  scrape_configs:    # Prometheus's scrape_configs, unchanged
//	    - job_name: node
//	      static_configs: [{targets: ["10.0.0.7:9100"]}]
//
// global and scrape_configs are decoded by Prometheus's own configuration
// loader, strictly, with the defaults Prometheus applies, except that the
// global scrape_interval defaults to DefaultScrapeInterval.
type Config struct {
	// ConfigFile is a Prometheus configuration file (--scrape-config):
	// its global and scrape_configs sections are read, every other
	// top-level section is ignored with a warning. Relative paths in it
	// (file_sd_configs files, TLS and password files) are relative to
	// its directory, as in Prometheus. Reload reads it again.
	ConfigFile string `yaml:"config_file"`
	// Global is the global section that applies to ScrapeConfigs
	// (DefaultGlobalConfig when its ScrapeInterval is zero).
	Global promconfig.GlobalConfig `yaml:"global"`
	// ScrapeConfigs are the section's own jobs. Built in Go, they start
	// from a copy of promconfig.DefaultScrapeConfig and are completed by
	// New with Global's defaults, in place, as Prometheus's loader does.
	ScrapeConfigs []*promconfig.ScrapeConfig `yaml:"scrape_configs"`
}

// DefaultGlobalConfig returns Prometheus's default global section with
// Vigil's scrape interval, DefaultScrapeInterval.
func DefaultGlobalConfig() promconfig.GlobalConfig {
	g := promconfig.DefaultGlobalConfig
	g.ScrapeInterval = model.Duration(DefaultScrapeInterval)
	g.ScrapeTimeout = min(promconfig.DefaultGlobalConfig.ScrapeTimeout, g.ScrapeInterval)
	return g
}

// sectionKeys are the keys of the scrape section of Vigil's file.
const (
	keyConfigFile    = "config_file"
	keyGlobal        = "global"
	keyScrapeConfigs = "scrape_configs"
)

// UnmarshalYAML decodes the scrape section of Vigil's configuration file
// (gopkg.in/yaml.v3, as cmd/vigil reads it): config_file, and global and
// scrape_configs through Prometheus's configuration loader. Unknown keys
// are errors.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return fmt.Errorf("scrape: %w", err)
	}
	var section yamlv2.MapSlice
	if err := yamlv2.UnmarshalStrict(b, &section); err != nil {
		return fmt.Errorf("scrape: %w", err)
	}
	var doc yamlv2.MapSlice
	out := Config{}
	for _, item := range section {
		key, _ := item.Key.(string)
		switch key {
		case keyConfigFile:
			s, ok := item.Value.(string)
			if !ok && item.Value != nil {
				return fmt.Errorf("scrape.%s: not a string", keyConfigFile)
			}
			out.ConfigFile = s
		case keyGlobal, keyScrapeConfigs:
			doc = append(doc, item)
		default:
			return fmt.Errorf("scrape: unknown key %q", item.Key)
		}
	}
	if len(doc) > 0 {
		pc, err := parsePrometheus(doc)
		if err != nil {
			return fmt.Errorf("scrape: %w", err)
		}
		out.Global = pc.GlobalConfig
		out.ScrapeConfigs = pc.ScrapeConfigs
	}
	*c = out
	return nil
}

// Validate reports a setting that cannot work: an empty job, a job
// without a name or with the name of another. It neither reads
// ConfigFile nor completes the jobs: New does both, with Prometheus's
// validation.
func (c Config) Validate() error {
	seen := map[string]bool{}
	for _, sc := range c.ScrapeConfigs {
		if sc == nil {
			return errors.New("scrape.scrape_configs: empty scrape config")
		}
		if sc.JobName == "" {
			return errors.New("scrape.scrape_configs: job_name is empty")
		}
		if seen[sc.JobName] {
			return fmt.Errorf("scrape.scrape_configs: found multiple scrape configs with job name %q", sc.JobName)
		}
		seen[sc.JobName] = true
	}
	return nil
}

// global returns the global section of the inline jobs.
func (c Config) global() promconfig.GlobalConfig {
	if c.Global.ScrapeInterval == 0 {
		return DefaultGlobalConfig()
	}
	return c.Global
}

// LoadFile reads the global and scrape_configs sections of a Prometheus
// configuration file with Prometheus's loader, strictly, and returns
// them as a Prometheus configuration holding nothing else, its relative
// paths resolved against the file's directory. The global scrape_interval
// defaults to DefaultScrapeInterval. Every other top-level section
// (rule_files, alerting, remote_write, …) is ignored with a warning on
// logger (nil discards).
func LoadFile(path string, logger *slog.Logger) (*promconfig.Config, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scrape config: %w", err)
	}
	var top yamlv2.MapSlice
	if err := yamlv2.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("scrape config %s: %w", path, err)
	}
	var doc yamlv2.MapSlice
	for _, item := range top {
		key, _ := item.Key.(string)
		switch key {
		case keyGlobal, keyScrapeConfigs:
			doc = append(doc, item)
		default:
			logger.Warn("section of the scrape config file ignored", "file", path, "section", fmt.Sprint(item.Key))
		}
	}
	cfg, err := parsePrometheus(doc)
	if err != nil {
		return nil, fmt.Errorf("scrape config %s: %w", path, err)
	}
	cfg.SetDirectory(filepath.Dir(path))
	return cfg, nil
}

// parsePrometheus loads a document of global and scrape_configs with
// Prometheus's loader, the global scrape_interval defaulting to
// DefaultScrapeInterval.
func parsePrometheus(doc yamlv2.MapSlice) (*promconfig.Config, error) {
	doc = withDefaultInterval(doc)
	b, err := yamlv2.Marshal(doc)
	if err != nil {
		return nil, err
	}
	// Prometheus's Load logs only about empty environment variables in
	// external labels.
	cfg, err := promconfig.Load(string(b), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// withDefaultInterval sets the global scrape_interval to
// DefaultScrapeInterval when the document does not set it.
func withDefaultInterval(doc yamlv2.MapSlice) yamlv2.MapSlice {
	def := yamlv2.MapItem{Key: "scrape_interval", Value: model.Duration(DefaultScrapeInterval).String()}
	out := make(yamlv2.MapSlice, 0, len(doc)+1)
	found := false
	for _, item := range doc {
		if key, _ := item.Key.(string); key == keyGlobal {
			found = true
			g, _ := item.Value.(yamlv2.MapSlice)
			has := false
			for _, gi := range g {
				if k, _ := gi.Key.(string); k == "scrape_interval" {
					has = true
				}
			}
			if !has && (item.Value == nil || g != nil) {
				item.Value = append(append(yamlv2.MapSlice{}, g...), def)
			}
		}
		out = append(out, item)
	}
	if !found {
		out = append(yamlv2.MapSlice{{Key: keyGlobal, Value: yamlv2.MapSlice{def}}}, out...)
	}
	return out
}
