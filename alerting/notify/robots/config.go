package robots

import (
	"errors"
	"fmt"
	"path/filepath"

	amcommoncfg "github.com/prometheus/alertmanager/config/common"
	commoncfg "github.com/prometheus/common/config"
)

// Receiver is the robot configs of one Alertmanager receiver.
type Receiver struct {
	Feishu   []*FeishuConfig   `yaml:"feishu_configs,omitempty" json:"feishu_configs,omitempty"`
	DingTalk []*DingTalkConfig `yaml:"dingtalk_configs,omitempty" json:"dingtalk_configs,omitempty"`
	WeCom    []*WeComConfig    `yaml:"wecom_robot_configs,omitempty" json:"wecom_robot_configs,omitempty"`
}

// Len returns the number of robot configs of the receiver.
func (r Receiver) Len() int {
	return len(r.Feishu) + len(r.DingTalk) + len(r.WeCom)
}

// Default templates, written for Alertmanager's template data (.Status,
// .Alerts, .CommonLabels, .ExternalURL …). They are English; labels and
// annotations carry the user's own language. The message lists one block
// per alert so that a long group can be cut between alerts.
const (
	DefaultTitle = `[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] ` +
		`{{ with .CommonLabels.alertname }}{{ . }}{{ else }}{{ .GroupLabels.Values | join " " }}{{ end }}`
	DefaultMessage = `{{ range .Alerts -}}
**{{ if eq .Status "firing" }}[FIRING]{{ else }}[RESOLVED]{{ end }} {{ .Labels.alertname }}**{{ with .Labels.severity }} ({{ . }}){{ end }}
{{ with .Annotations.summary }}{{ . }}
{{ end }}{{ with .Annotations.description }}{{ . }}
{{ end }}{{ with .Labels.Remove (stringSlice "alertname" "severity") }}Labels: {{ .SortedPairs }}
{{ end }}Started: {{ .StartsAt.UTC.Format "2006-01-02 15:04:05 UTC" }}
{{ if eq .Status "resolved" }}Ended: {{ .EndsAt.UTC.Format "2006-01-02 15:04:05 UTC" }}
{{ end }}
{{ end }}{{ if .ExternalURL }}[View in Vigil]({{ .ExternalURL }}/alerts)
{{ end }}`
)

// BaseConfig is what every robot config has: where to post, how, and what.
type BaseConfig struct {
	amcommoncfg.NotifierConfig `yaml:",inline" json:",inline"`

	// HTTPConfig configures the HTTP client; nil takes the file's
	// global.http_config (as Alertmanager's own receivers do).
	HTTPConfig *commoncfg.HTTPClientConfig `yaml:"http_config,omitempty" json:"http_config,omitempty"`
	// WebhookURL is the robot's webhook, which holds its access token.
	// Exactly one of WebhookURL and WebhookURLFile is set.
	WebhookURL *amcommoncfg.SecretURL `yaml:"webhook_url,omitempty" json:"webhook_url,omitempty"`
	// WebhookURLFile names a file holding the webhook URL; it is read
	// when the notifier is built.
	WebhookURLFile string `yaml:"webhook_url_file,omitempty" json:"webhook_url_file,omitempty"`
	// Title and Message are Alertmanager templates (text).
	Title   string `yaml:"title,omitempty" json:"title,omitempty"`
	Message string `yaml:"message,omitempty" json:"message,omitempty"`
	// MaxAlerts caps the alerts listed in one message; the rest are
	// counted in a final "…and N more" line. Zero lists all that fit.
	MaxAlerts int `yaml:"max_alerts,omitempty" json:"max_alerts,omitempty"`
}

func defaultBase() BaseConfig {
	return BaseConfig{
		NotifierConfig: amcommoncfg.NotifierConfig{VSendResolved: true},
		Title:          DefaultTitle,
		Message:        DefaultMessage,
	}
}

// Validate checks the fields shared by every robot.
func (c *BaseConfig) Validate() error {
	if c.WebhookURL == nil && c.WebhookURLFile == "" {
		return errors.New("one of webhook_url or webhook_url_file must be configured")
	}
	if c.WebhookURL != nil && c.WebhookURLFile != "" {
		return errors.New("at most one of webhook_url and webhook_url_file must be configured")
	}
	if c.MaxAlerts < 0 {
		return fmt.Errorf("max_alerts must not be negative, got %d", c.MaxAlerts)
	}
	return nil
}

// SignedConfig is the signing secret of robots that verify a signature
// (Feishu, DingTalk). Neither field set means unsigned requests.
type SignedConfig struct {
	Secret     commoncfg.Secret `yaml:"secret,omitempty" json:"secret,omitempty"`
	SecretFile string           `yaml:"secret_file,omitempty" json:"secret_file,omitempty"`
}

// Validate checks that at most one of the secret fields is set.
func (c *SignedConfig) Validate() error {
	if c.Secret != "" && c.SecretFile != "" {
		return errors.New("at most one of secret and secret_file must be configured")
	}
	return nil
}

// FeishuConfig configures a Feishu (Lark) custom bot.
type FeishuConfig struct {
	BaseConfig   `yaml:",inline" json:",inline"`
	SignedConfig `yaml:",inline" json:",inline"`
}

// UnmarshalYAML applies the defaults, decodes and validates.
func (c *FeishuConfig) UnmarshalYAML(unmarshal func(any) error) error {
	*c = FeishuConfig{BaseConfig: defaultBase()}
	type plain FeishuConfig
	if err := unmarshal((*plain)(c)); err != nil {
		return err
	}
	return c.Validate()
}

// Validate checks the config.
func (c *FeishuConfig) Validate() error {
	return errors.Join(c.BaseConfig.Validate(), c.SignedConfig.Validate())
}

// DingTalkConfig configures a DingTalk custom robot.
type DingTalkConfig struct {
	BaseConfig   `yaml:",inline" json:",inline"`
	SignedConfig `yaml:",inline" json:",inline"`
}

// UnmarshalYAML applies the defaults, decodes and validates.
func (c *DingTalkConfig) UnmarshalYAML(unmarshal func(any) error) error {
	*c = DingTalkConfig{BaseConfig: defaultBase()}
	type plain DingTalkConfig
	if err := unmarshal((*plain)(c)); err != nil {
		return err
	}
	return c.Validate()
}

// Validate checks the config.
func (c *DingTalkConfig) Validate() error {
	return errors.Join(c.BaseConfig.Validate(), c.SignedConfig.Validate())
}

// WeComConfig configures a WeCom (WeChat Work) group robot. Its key is
// part of the webhook URL; it signs nothing.
type WeComConfig struct {
	BaseConfig `yaml:",inline" json:",inline"`
}

// UnmarshalYAML applies the defaults, decodes and validates.
func (c *WeComConfig) UnmarshalYAML(unmarshal func(any) error) error {
	*c = WeComConfig{BaseConfig: defaultBase()}
	type plain WeComConfig
	if err := unmarshal((*plain)(c)); err != nil {
		return err
	}
	return c.Validate()
}

// Validate checks the config.
func (c *WeComConfig) Validate() error {
	return c.BaseConfig.Validate()
}

// SetDirectory makes the relative file paths of every robot config
// (webhook_url_file, secret_file, and those of http_config) relative to
// dir, as Alertmanager's config.LoadFile does for its own receivers. Call
// it with the directory of the configuration file before Integrations.
// The directory is made absolute first: configs may share parts of the
// global http_config, and an absolute path is left alone by a second join.
func (r Receiver) SetDirectory(dir string) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	base := func(b *BaseConfig) {
		b.WebhookURLFile = commoncfg.JoinDir(dir, b.WebhookURLFile)
		if b.HTTPConfig != nil {
			b.HTTPConfig.SetDirectory(dir)
		}
	}
	for _, c := range r.Feishu {
		if c != nil {
			base(&c.BaseConfig)
			c.SecretFile = commoncfg.JoinDir(dir, c.SecretFile)
		}
	}
	for _, c := range r.DingTalk {
		if c != nil {
			base(&c.BaseConfig)
			c.SecretFile = commoncfg.JoinDir(dir, c.SecretFile)
		}
	}
	for _, c := range r.WeCom {
		if c != nil {
			base(&c.BaseConfig)
		}
	}
}
