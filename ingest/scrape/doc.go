// Package scrape scrapes Prometheus targets into Vigil's metric
// pipeline with Prometheus's own scrape and discovery managers
// (github.com/prometheus/prometheus/scrape and discovery): the same HTTP
// client, content negotiation, parsers, relabelling, limits, synthetic
// series (up, scrape_duration_seconds, scrape_samples_scraped,
// scrape_samples_post_metric_relabeling, scrape_series_added) and
// staleness markers as Prometheus. In the data flow it is a receiver
// that pulls: samples go to an AppendableV2 (ingest/pipeline's metric
// pipeline in cmd/vigil), which commits them to the metric store.
//
// # Configuration
//
// Jobs are Prometheus scrape_configs, unchanged, from three sources that
// run together (job names must differ):
//
//   - a Prometheus configuration file (Config.ConfigFile,
//     --scrape-config): its global and scrape_configs sections are read
//     with Prometheus's loader, every other section is ignored with a
//     warning naming it; relative paths are relative to the file;
//   - the scrape section of Vigil's file (global and scrape_configs, see
//     Config), decoded by the same loader;
//   - jobs of cmd/vigil's own (Options.Jobs), such as RegistryJob, which
//     discovers the instances of Vigil's Consul-compatible registry.
//
// Prometheus's defaults apply as Prometheus applies them, except that the
// global scrape_interval defaults to 15s (DefaultScrapeInterval). As in
// Prometheus's own storage, the global external_labels are not added to
// scraped series. The
// supported discovery mechanisms are static_configs, file_sd_configs,
// dns_sd_configs and consul_sd_configs; relabel_configs,
// metric_relabel_configs, honor_labels, honor_timestamps, basic_auth,
// authorization (bearer tokens), oauth2, tls_config, proxies,
// sample_limit, body_size_limit, label limits and target_limit work as in
// Prometheus. A target over sample_limit or body_size_limit is down
// with the reason as its last error, and none of that scrape's samples
// is stored (its up and synthetic series are).
//
// Manager.Reload reads the file again (cmd/vigil calls it on SIGHUP and
// POST /-/reload); an invalid file leaves the running jobs in place,
// returns the error and sets vigil_scrape_last_reload_successful to 0.
// The jobs of Vigil's own file are read once, at start.
//
// # Replicas
//
// Replicas sharing a database scrape each target once: a Manager with an
// Elector (storage/postgres/leader with LeaderKey) runs the scrape and
// discovery managers only while it holds the lock. A replica that dies
// loses the lock within about a second and another one takes over,
// discovering and scraping afresh; no staleness markers are written at a
// handover, so series carry on. Replicas that do not lead have no
// targets (TargetsActive is empty, Leader is false). Only the leader
// asks the discovery sources.
//
// # Metrics
//
// Prometheus's own scrape and discovery metrics (prometheus_target_*,
// prometheus_sd_*) and vigil_scrape_last_reload_successful,
// vigil_scrape_last_reload_success_timestamp_seconds,
// vigil_scrape_reload_failures_total and vigil_scrape_leader, on
// Options.Registerer. The scrape manager's metrics exist only while this
// replica leads, and restart from zero at each leadership.
//
// # Limits
//
// Only the discovery mechanisms above are linked in (not Kubernetes,
// EC2, …); a configuration naming another is refused. scrape_config_files
// and per-job scrape_failure_log_file are not read. Metric metadata is
// kept per target in memory, as in Prometheus, for
// /api/v1/targets/metadata (web/api/scrapeapi).
package scrape
