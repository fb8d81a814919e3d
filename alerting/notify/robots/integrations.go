package robots

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	amcommoncfg "github.com/prometheus/alertmanager/config/common"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/template"
	commoncfg "github.com/prometheus/common/config"
)

// Options are the dependencies of the notifiers.
type Options struct {
	// Logger is scoped with component=robots; nil discards.
	Logger *slog.Logger
	// Limiter holds the per-URL token buckets, on its own clock; pass the
	// same Limiters to every receiver (and keep it across reloads) so that
	// all notifiers posting to one robot share its limit. Nil means
	// private buckets on Now.
	Limiter *Limiters
	// Now is the clock of signatures and buckets; nil means time.Now.
	Now func() time.Time
}

// Integrations builds one Alertmanager notify.Integration per robot config
// of the receiver name, in the order Feishu, DingTalk, WeCom, with indexes
// continuing after first (the number of integrations Alertmanager's own
// BuildReceiverIntegrations made for the same receiver).
//
// webhook_url_file and secret_file are read here, so that a missing or
// malformed file is a configuration error rather than a failed delivery;
// rebuild the integrations (reload) after changing them. tmpl must have its
// ExternalURL set, as Alertmanager's template data needs it. Errors of all
// configs are returned together; integrations are returned only when every
// config built. A receiver without robot configs has no integrations.
func (r Receiver) Integrations(name string, first int, tmpl *template.Template, opts Options) ([]notify.Integration, error) {
	if r.Len() == 0 {
		return nil, nil
	}
	if tmpl == nil || tmpl.ExternalURL == nil {
		return nil, fmt.Errorf("receiver %q: robots need a template with an external URL", name)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Limiter == nil {
		opts.Limiter = NewLimiters(opts.Now)
	}
	logger := opts.Logger.With("component", "robots", "receiver", name)

	var (
		out  []notify.Integration
		errs []error
		idx  = first
	)
	add := func(rb robot, key string, i int, rs notify.ResolvedSender, base *BaseConfig, signed *SignedConfig) {
		n, err := newNotifier(rb, base, signed, tmpl, opts, logger.With("integration", fmt.Sprintf("%s[%d]", rb.kind(), idx)))
		if err != nil {
			errs = append(errs, fmt.Errorf("receiver %q: %s[%d]: %w", name, key, i, err))
			return
		}
		out = append(out, notify.NewIntegration(n, rs, rb.kind(), idx, name))
		idx++
	}
	for i, c := range r.Feishu {
		if c == nil {
			errs = append(errs, fmt.Errorf("receiver %q: %s[%d]: empty config", name, keyFeishu, i))
			continue
		}
		add(feishu{}, keyFeishu, i, c, &c.BaseConfig, &c.SignedConfig)
	}
	for i, c := range r.DingTalk {
		if c == nil {
			errs = append(errs, fmt.Errorf("receiver %q: %s[%d]: empty config", name, keyDingTalk, i))
			continue
		}
		add(dingTalk{}, keyDingTalk, i, c, &c.BaseConfig, &c.SignedConfig)
	}
	for i, c := range r.WeCom {
		if c == nil {
			errs = append(errs, fmt.Errorf("receiver %q: %s[%d]: empty config", name, keyWeCom, i))
			continue
		}
		add(weCom{}, keyWeCom, i, c, &c.BaseConfig, nil)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func newNotifier(rb robot, base *BaseConfig, signed *SignedConfig, tmpl *template.Template, opts Options, logger *slog.Logger) (*notifier, error) {
	if err := base.Validate(); err != nil {
		return nil, err
	}
	target, err := webhookURL(base)
	if err != nil {
		return nil, err
	}
	var secret string
	if signed != nil {
		if err := signed.Validate(); err != nil {
			return nil, err
		}
		secret = string(signed.Secret)
		if signed.SecretFile != "" {
			b, err := os.ReadFile(signed.SecretFile)
			if err != nil {
				return nil, fmt.Errorf("read secret_file: %w", err)
			}
			if secret = strings.TrimSpace(string(b)); secret == "" {
				return nil, fmt.Errorf("secret_file %s is empty", signed.SecretFile)
			}
		}
	}
	httpConfig := commoncfg.DefaultHTTPClientConfig
	if base.HTTPConfig != nil {
		httpConfig = *base.HTTPConfig
	}
	client, err := notify.NewClientWithTracing(httpConfig, rb.kind())
	if err != nil {
		return nil, fmt.Errorf("http_config: %w", err)
	}
	title, message := base.Title, base.Message
	if title == "" {
		title = DefaultTitle
	}
	if message == "" {
		message = DefaultMessage
	}
	return &notifier{
		robot:     rb,
		target:    target,
		secret:    secret,
		title:     title,
		message:   message,
		maxAlerts: base.MaxAlerts,
		tmpl:      tmpl,
		client:    client,
		limiter:   opts.Limiter.get(rb.kind()+" "+target.String(), rb.rates()),
		now:       opts.Now,
		logger:    logger,
		redact:    sensitive(target, secret),
	}, nil
}

// webhookURL returns the config's URL, reading webhook_url_file if set.
// Errors never show the URL.
func webhookURL(base *BaseConfig) (*url.URL, error) {
	if base.WebhookURL != nil {
		if base.WebhookURL.URL == nil || base.WebhookURL.Host == "" {
			return nil, errors.New("webhook_url is empty")
		}
		u := *base.WebhookURL.URL
		return &u, nil
	}
	b, err := os.ReadFile(base.WebhookURLFile)
	if err != nil {
		return nil, fmt.Errorf("read webhook_url_file: %w", err)
	}
	u, err := amcommoncfg.ParseURL(strings.TrimSpace(string(b)))
	if err != nil {
		// url.Parse's errors quote the URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("webhook_url_file %s: invalid URL: %w", base.WebhookURLFile, err)
	}
	return u.URL, nil
}
