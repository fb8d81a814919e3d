// Package scrapeapi serves the scrape targets of ingest/scrape over
// HTTP, in Prometheus's JSON, so that Grafana and other Prometheus
// clients read them unchanged:
//
//   - GET /api/v1/targets: activeTargets (labels, discoveredLabels,
//     scrapePool, scrapeUrl, globalUrl, health, lastError, lastScrape,
//     lastScrapeDuration, scrapeInterval, scrapeTimeout), droppedTargets
//     and droppedTargetCounts; state=active|dropped|any and scrapePool=
//     narrow the answer.
//   - GET /api/v1/targets/metadata: the metric metadata the targets
//     expose; match_target (a series selector over target labels),
//     metric and limit.
//
// Every parameter is first checked with web/api's CheckParams (400
// bad_data naming it). Targets come sorted by job, then scrape URL,
// where Prometheus's order is random.
//
// With several replicas only the one holding the scrape lock has
// targets; the others answer with empty lists, and every answer carries
// HeaderLeader saying whether this replica scrapes. The API reads a
// Source, which *ingest/scrape.Manager implements; New returns a
// web.Mounter that cmd/vigil hands to web.New beside the other APIs.
package scrapeapi
