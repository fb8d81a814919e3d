package scrape

import (
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/consul"
	"github.com/prometheus/prometheus/model/relabel"
)

// RegistryJobName is the job (scrape pool) of RegistryJob. The series it
// scrapes carry their service's name as job, not this.
const RegistryJobName = "vigil-registry"

// Service metadata keys RegistryJob reads from each registered instance.
const (
	// MetaScrape set to "false" leaves the instance unscraped.
	MetaScrape = "scrape"
	// MetaMetricsPath is the path of the instance's metrics (default
	// /metrics).
	MetaMetricsPath = "metrics_path"
	// MetaScrapeInterval is the instance's scrape interval, a Prometheus
	// duration (default the global scrape_interval, 15s).
	MetaScrapeInterval = "scrape_interval"
	// MetaScrapeTimeout is the instance's scrape timeout (default 10s,
	// or the scrape interval when that is shorter).
	MetaScrapeTimeout = "scrape_timeout"
)

// RegistryRefreshInterval is the least time between two questions the
// registry job asks the registry; each question blocks until the
// registry changes, so changes arrive at once unless they follow each
// other more closely.
const RegistryRefreshInterval = 5 * time.Second

// RegistryJob returns a scrape job that discovers the instances
// registered in Vigil's Consul-compatible registry at addr (host:port)
// with Prometheus's consul_sd_configs, and scrapes each one over HTTP
// with these labels:
//
//	job       the service's name (__meta_consul_service)
//	instance  the instance's address:port
//
// Each instance's service metadata may set its metrics path
// (MetaMetricsPath), scrape interval and timeout (MetaScrapeInterval,
// MetaScrapeTimeout); MetaScrape "false" drops it. Instances are scraped
// whatever their health (__meta_consul_health): an unhealthy one that
// does not answer gets up 0. The job is meant for Options.Jobs; its
// fields may be changed before New.
func RegistryJob(addr string) *promconfig.ScrapeConfig {
	sd := consul.DefaultSDConfig
	sd.Server = addr
	sd.RefreshInterval = model.Duration(RegistryRefreshInterval)
	sc := promconfig.DefaultScrapeConfig
	sc.JobName = RegistryJobName
	sc.ServiceDiscoveryConfigs = discovery.Configs{&sd}
	meta := func(key string) model.LabelName {
		return model.LabelName("__meta_consul_service_metadata_" + key)
	}
	sc.RelabelConfigs = []*relabel.Config{
		relabelRule(relabel.Drop, []model.LabelName{meta(MetaScrape)}, "false", "", ""),
		relabelRule(relabel.Replace, []model.LabelName{"__meta_consul_service"}, "(.*)", model.JobLabel, "$1"),
		relabelRule(relabel.Replace, []model.LabelName{model.AddressLabel}, "(.*)", model.InstanceLabel, "$1"),
		relabelRule(relabel.Replace, []model.LabelName{meta(MetaMetricsPath)}, "(.+)", model.MetricsPathLabel, "$1"),
		relabelRule(relabel.Replace, []model.LabelName{meta(MetaScrapeInterval)}, "(.+)", model.ScrapeIntervalLabel, "$1"),
		relabelRule(relabel.Replace, []model.LabelName{meta(MetaScrapeTimeout)}, "(.+)", model.ScrapeTimeoutLabel, "$1"),
		// An interval under the default 10s timeout without a timeout of
		// its own: the timeout is the interval, as Prometheus's defaults
		// would make it (a longer timeout drops the target).
		relabelRule(relabel.Replace, []model.LabelName{meta(MetaScrapeInterval), meta(MetaScrapeTimeout)}, "([0-9]+ms|[0-9]s);", model.ScrapeTimeoutLabel, "$1"),
	}
	return &sc
}

func relabelRule(action relabel.Action, source []model.LabelName, regex string, target, replacement string) *relabel.Config {
	c := relabel.DefaultRelabelConfig
	c.Action = action
	c.SourceLabels = source
	c.Regex = relabel.MustNewRegexp(regex)
	c.TargetLabel = target
	c.Replacement = replacement
	return &c
}
