package rules

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/prometheus/common/model"
)

// Config is the rules section of Vigil's configuration.
type Config struct {
	// RuleFiles are glob patterns of Prometheus rule files, as
	// Prometheus's rule_files. Relative patterns are relative to the
	// working directory.
	RuleFiles []string `yaml:"rule_files"`
	// DefaultRules loads Vigil's shipped rule pack (DefaultRules) beside
	// RuleFiles; nil means true.
	DefaultRules *bool `yaml:"default_rules"`
	// EvaluationInterval is how often a group without its own interval
	// is evaluated (default 1m, Prometheus's global default).
	EvaluationInterval model.Duration `yaml:"evaluation_interval"`
	// OutageTolerance is how long an outage of the evaluating replica may
	// last for a pending or firing alert's `for` state to be restored
	// from ALERTS_FOR_STATE (default 1h, --rules.alert.for-outage-tolerance).
	OutageTolerance model.Duration `yaml:"outage_tolerance"`
	// ForGracePeriod is the least time a restored alert waits before it
	// fires (default 10m, --rules.alert.for-grace-period).
	ForGracePeriod model.Duration `yaml:"for_grace_period"`
	// ResendDelay is the least time between two notifications of one
	// firing alert (default 1m, --rules.alert.resend-delay).
	ResendDelay model.Duration `yaml:"resend_delay"`
	// ExternalLabels are added to every alert (not to recorded series),
	// and are $externalLabels in templates.
	ExternalLabels map[string]string `yaml:"external_labels"`
	// ExternalURL is the URL Vigil is reached at: $externalURL in
	// templates and the base of alerts' generator links.
	ExternalURL string `yaml:"external_url"`
	// WatchInterval is how often the rule files are checked for changes
	// (default 5s); a change reloads them as SIGHUP does.
	WatchInterval model.Duration `yaml:"watch_interval"`
}

// Defaults of Config.
const (
	DefaultEvaluationInterval = time.Minute
	DefaultOutageTolerance    = time.Hour
	DefaultForGracePeriod     = 10 * time.Minute
	DefaultResendDelay        = time.Minute
	DefaultWatchInterval      = 5 * time.Second
)

// DefaultConfig returns the defaults: the shipped rule pack and no rule
// files.
func DefaultConfig() Config {
	on := true
	return Config{
		DefaultRules:       &on,
		EvaluationInterval: model.Duration(DefaultEvaluationInterval),
		OutageTolerance:    model.Duration(DefaultOutageTolerance),
		ForGracePeriod:     model.Duration(DefaultForGracePeriod),
		ResendDelay:        model.Duration(DefaultResendDelay),
		WatchInterval:      model.Duration(DefaultWatchInterval),
	}
}

// withDefaults fills unset fields with the defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.DefaultRules == nil {
		c.DefaultRules = d.DefaultRules
	}
	for _, f := range []struct{ v, d *model.Duration }{
		{&c.EvaluationInterval, &d.EvaluationInterval},
		{&c.OutageTolerance, &d.OutageTolerance},
		{&c.ForGracePeriod, &d.ForGracePeriod},
		{&c.ResendDelay, &d.ResendDelay},
		{&c.WatchInterval, &d.WatchInterval},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	return c
}

// Validate reports a setting that cannot work, naming its key. Zero
// durations mean the defaults.
func (c Config) Validate() error {
	for _, f := range []struct {
		key string
		v   model.Duration
	}{
		{"evaluation_interval", c.EvaluationInterval},
		{"outage_tolerance", c.OutageTolerance},
		{"for_grace_period", c.ForGracePeriod},
		{"resend_delay", c.ResendDelay},
		{"watch_interval", c.WatchInterval},
	} {
		if f.v < 0 {
			return fmt.Errorf("rules.%s: must not be negative", f.key)
		}
	}
	for _, p := range c.RuleFiles {
		if p == "" {
			return errors.New("rules.rule_files: empty pattern")
		}
		if _, err := filepath.Match(p, ""); err != nil {
			return fmt.Errorf("rules.rule_files: pattern %q: %w", p, err)
		}
	}
	for k := range c.ExternalLabels {
		if !model.UTF8Validation.IsValidLabelName(k) || k == model.MetricNameLabel {
			return fmt.Errorf("rules.external_labels: invalid label name %q", k)
		}
	}
	if c.ExternalURL != "" {
		u, err := url.Parse(c.ExternalURL)
		if err != nil {
			return fmt.Errorf("external_url: %w", err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("external_url: %q is not an absolute http(s) URL", c.ExternalURL)
		}
	}
	return nil
}
