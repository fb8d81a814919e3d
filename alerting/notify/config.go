package notify

import (
	"fmt"
	"net/url"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Defaults of Config.
const (
	DefaultResolveTimeout      = 5 * time.Minute
	DefaultRetention           = 120 * time.Hour
	DefaultHistoryRetention    = 7 * 24 * time.Hour
	DefaultMaintenanceInterval = 15 * time.Minute
	DefaultSyncInterval        = time.Second
	DefaultIntegrationTimeout  = 30 * time.Second
	DefaultGroupWait           = 30 * time.Second
	DefaultGroupInterval       = 5 * time.Minute
	DefaultRepeatInterval      = 4 * time.Hour
)

// LogReceiver is the name of the built-in receiver that logs
// notifications and records them in the history; it receives everything
// when neither an Alertmanager file nor webhooks are configured.
const LogReceiver = "log"

// Config holds the settings of notification delivery (YAML section
// alerting.notify). Zero fields take the defaults.
//
// Where notifications go, in order of precedence:
//   - AlertmanagerConfig, an Alertmanager configuration file (routes,
//     receivers, inhibit rules, time intervals, templates), plus the
//     Feishu, DingTalk and WeCom robot configs Vigil adds to receivers;
//   - else Webhooks: every notification goes, as an Alertmanager webhook
//     (version 4), to each URL, grouped by alertname and service (alerts
//     without a service label are grouped by alertname alone, since
//     Alertmanager groups a missing label as an empty value);
//   - else the built-in "log" receiver, grouped the same way: it logs
//     each notification and records it in the history.
type Config struct {
	// AlertmanagerConfig is the path of an Alertmanager configuration
	// file. Reload re-reads it.
	AlertmanagerConfig string `yaml:"alertmanager_config"`
	// Webhooks are the URLs notified when no Alertmanager file is set.
	Webhooks []string `yaml:"webhooks"`
	// ExternalURL is the URL Vigil is reached at, for links in
	// notifications (externalURL in webhooks, silence links). It is not a
	// key of this section: Vigil's configuration sets it from
	// alerting.external_url, which rule evaluation shares.
	ExternalURL string `yaml:"-"`
	// ResolveTimeout is how long an alert posted without an end time stays
	// firing unless posted again (default 5m), with the webhook and log
	// configurations; an Alertmanager file sets its own
	// (global.resolve_timeout, whose default is also 5m).
	ResolveTimeout time.Duration `yaml:"resolve_timeout"`
	// GroupWait, GroupInterval and RepeatInterval time the route of the
	// webhook and log configurations (defaults 30s, 5m, 4h, as
	// Alertmanager's); an Alertmanager file sets its own.
	GroupWait      time.Duration `yaml:"group_wait"`
	GroupInterval  time.Duration `yaml:"group_interval"`
	RepeatInterval time.Duration `yaml:"repeat_interval"`
	// Retention is how long silences and notification log entries are
	// kept after they expire (default 120h, as Alertmanager's).
	Retention time.Duration `yaml:"retention"`
	// HistoryRetention is how long the notification history is kept
	// (default 7 days).
	HistoryRetention time.Duration `yaml:"history_retention"`
	// IntegrationTimeout cuts one delivery attempt of one integration
	// (default 30s); Alertmanager retries a cut attempt until the group's
	// deadline.
	IntegrationTimeout time.Duration `yaml:"integration_timeout"`
	// MaintenanceInterval is how often silences and the notification log
	// are garbage collected and snapshotted to the database, and old
	// history and alerts deleted (default 15m).
	MaintenanceInterval time.Duration `yaml:"maintenance_interval"`
	// SyncInterval is how often a replica merges the silences,
	// notification log entries and alerts other replicas wrote
	// (default 1s).
	SyncInterval time.Duration `yaml:"sync_interval"`
}

// Validate reports a setting that cannot work, naming its key. It does
// not read the Alertmanager file: New and Reload do.
func (c Config) Validate() error {
	for i, u := range c.Webhooks {
		if err := validURL(u); err != nil {
			return fmt.Errorf("webhooks[%d]: %w", i, err)
		}
	}
	if c.ExternalURL != "" {
		if err := validURL(c.ExternalURL); err != nil {
			return fmt.Errorf("external_url: %w", err)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"resolve_timeout", c.ResolveTimeout},
		{"group_wait", c.GroupWait},
		{"group_interval", c.GroupInterval},
		{"repeat_interval", c.RepeatInterval},
		{"retention", c.Retention},
		{"history_retention", c.HistoryRetention},
		{"integration_timeout", c.IntegrationTimeout},
		{"maintenance_interval", c.MaintenanceInterval},
		{"sync_interval", c.SyncInterval},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s: %s is negative", d.key, d.v)
		}
		// A bare YAML number is nanoseconds: refuse what is surely a
		// missing unit.
		if d.v > 0 && d.v < time.Millisecond {
			return fmt.Errorf("%s: %s is below 1ms (a duration needs a unit, such as 30s)", d.key, d.v)
		}
	}
	return nil
}

func validURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not an http or https URL", s)
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.ResolveTimeout, DefaultResolveTimeout)
	def(&c.GroupWait, DefaultGroupWait)
	def(&c.GroupInterval, DefaultGroupInterval)
	def(&c.RepeatInterval, DefaultRepeatInterval)
	def(&c.Retention, DefaultRetention)
	def(&c.HistoryRetention, DefaultHistoryRetention)
	def(&c.IntegrationTimeout, DefaultIntegrationTimeout)
	def(&c.MaintenanceInterval, DefaultMaintenanceInterval)
	def(&c.SyncInterval, DefaultSyncInterval)
	return c
}

// generatedConfig returns the Alertmanager configuration used without a
// file: one route grouped by alertname and service to one receiver, made
// of webhooks or, without them, of the built-in log receiver.
func (c Config) generatedConfig() ([]byte, error) {
	type webhook struct {
		URL          string `yaml:"url"`
		SendResolved bool   `yaml:"send_resolved"`
	}
	type receiver struct {
		Name     string    `yaml:"name"`
		Webhooks []webhook `yaml:"webhook_configs,omitempty"`
	}
	name := LogReceiver
	rcv := receiver{Name: name}
	if len(c.Webhooks) > 0 {
		name = "webhook"
		rcv.Name = name
		for _, u := range c.Webhooks {
			rcv.Webhooks = append(rcv.Webhooks, webhook{URL: u, SendResolved: true})
		}
	}
	doc := map[string]any{
		"global": map[string]any{"resolve_timeout": model.Duration(c.ResolveTimeout).String()},
		"route": map[string]any{
			"receiver":        name,
			"group_by":        []string{"alertname", "service"},
			"group_wait":      model.Duration(c.GroupWait).String(),
			"group_interval":  model.Duration(c.GroupInterval).String(),
			"repeat_interval": model.Duration(c.RepeatInterval).String(),
		},
		"receivers": []receiver{rcv},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("generate alertmanager config: %w", err)
	}
	return b, nil
}

// source names where the configuration comes from, for errors and the
// status API.
func (c Config) source() string {
	switch {
	case c.AlertmanagerConfig != "":
		return c.AlertmanagerConfig
	case len(c.Webhooks) > 0:
		return "webhooks"
	default:
		return "built-in log receiver"
	}
}
