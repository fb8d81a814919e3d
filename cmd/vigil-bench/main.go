// Command vigil-bench measures Vigil's trace path end to end and prints the
// figures of docs/benchmarks.md: OTLP/gRPC ingest rate against a bare pgx
// COPY of the same rows into the same tables (measured in the same run),
// CPU per span for Vigil and for PostgreSQL, bytes on disk per span, trace
// by id and search latency with the data in place, and Vigil's peak RSS.
// With -signal it measures instead the Jaeger and Zipkin receivers, the
// log path, the metric path (remote_write ingest, bytes per sample
// before and after compaction), or Vigil's peak memory under 64
// concurrent maximum-size OTLP/HTTP requests and 64 slow connections,
// against its GOMEMLIMIT (memory), or the time from a scripted fault to
// its webhook for Vigil and for Debian's Prometheus + Alertmanager fed the
// same samples (alerting).
//
// It starts the vigil binary (build it first: make build) on a fresh
// database of the given server, so that Vigil's CPU and memory are its own
// and not mixed with the load generator's.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

type options struct {
	adminURL    string
	vigilBin    string
	workers     int
	tracesPerRq int
	targetSpans int
	maxDuration time.Duration
	queries     int
	spread      time.Duration // traces: span start times spread over this much of the past, searched over it
	keep        bool
	signal      string
	series      int     // metrics: active series
	samples     int     // metrics: samples to ingest through remote_write
	hours       float64 // metrics: hours of every series backfilled for the size figure
	cpuProfile  string  // metrics, logs: file for a CPU profile of Vigil taken during the ingest
	logWriters  int     // logs: logs.pipeline.writers of Vigil; 0 keeps its default
	logsDB      string  // logs-queries: the kept database to query
	baseline    string  // logs-queries: a second vigil binary to compare with
	logRounds   int     // logs-queries: rounds of each binary

	memLimit      int64 // memory: GOMEMLIMIT of Vigil, bytes
	inflightBytes int64 // memory: ingest.max_inflight_bytes of Vigil; 0 keeps its default
	memorySlow    bool  // memory: measure the slow connections
	memoryPosts   bool  // memory: measure the concurrent posts

	alertRounds  int // alerting: scripted faults, each on its own job
	ruleRounds   int // rules: evaluation rounds measured
	deriveRounds int // derive: runs with derivation off and on, each

	scrapeTargets int // scrape: targets
	scrapeSeries  int // scrape: series per target
	scrapeRounds  int // scrape: 15 s intervals measured, each side

	regInstances int // registry: instances with an HTTP check each
	regIntervals int // registry: 10 s check intervals of the CPU figure
	regWatchers  int // registry: blocking queries held during the wake-up figure
	regChanges   int // registry: state changes of the wake-up figure, per setting
}

func main() {
	var o options
	flag.StringVar(&o.adminURL, "db", envOr("VIGIL_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "maintenance database URL of the PostgreSQL server to benchmark on")
	flag.StringVar(&o.vigilBin, "vigil", "bin/vigil", "vigil binary to start")
	flag.IntVar(&o.workers, "workers", 8, "concurrent OTLP/gRPC exporters")
	flag.IntVar(&o.tracesPerRq, "traces-per-request", 50, "10-span traces per export request")
	flag.IntVar(&o.targetSpans, "spans", 1_000_000, "spans to ingest (committed)")
	flag.DurationVar(&o.maxDuration, "max-duration", 3*time.Minute, "stop the ingest phase after this long")
	flag.IntVar(&o.queries, "queries", 300, "requests per latency measurement (traces: per search filter)")
	flag.DurationVar(&o.spread, "spread", time.Hour, "traces: spread the spans' start times over this much of the past (1h or 24h), and search over it")
	flag.BoolVar(&o.keep, "keep", false, "keep the benchmark databases")
	flag.StringVar(&o.signal, "signal", "traces", "what to measure: traces (OTLP ingest, size, queries), jaeger (Jaeger/Zipkin receivers against OTLP), logs, logs-queries (the log query phase over a database kept by -signal logs -keep, against -baseline), metrics (remote_write ingest, bytes per sample, compaction), memory (peak RSS under 64 concurrent 16 MiB OTLP/HTTP posts and 64 slow connections), alerting (fault-to-webhook latency against Prometheus + Alertmanager), rules (1,000 rules over 10,000 series every 15 s), derive (span ingest with the span-derived series off and on), scrape (Vigil scraping targets against Prometheus's scrape manager and TSDB), registry (the Consul-compatible registry: CPU per HTTP check, blocking-query wake-up)")
	flag.IntVar(&o.series, "series", 10_000, "metrics: active series")
	flag.IntVar(&o.samples, "samples", 10_000_000, "metrics: samples to ingest through remote_write (whole scrape rounds)")
	flag.Float64Var(&o.hours, "hours", 24, "metrics: hours of every series at 15 s backfilled, compacted and measured")
	flag.IntVar(&o.logWriters, "log-writers", 0, "logs: logs.pipeline.writers passed to Vigil in a configuration file, and the connections of the arrival-order ceiling (0: Vigil's default)")
	flag.StringVar(&o.logsDB, "logs-db", "", "logs-queries: database kept by -signal logs -keep (a name on the -db server, or a URL)")
	flag.StringVar(&o.baseline, "baseline", "", "logs-queries: a second vigil binary, run in turn with -vigil on the same data")
	flag.IntVar(&o.logRounds, "rounds", 3, "logs-queries: rounds, each running every binary's query phase once")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "metrics, logs: write a 20 s CPU profile of Vigil taken during the ingest (from its fifth second) to this file")
	flag.Int64Var(&o.memLimit, "memlimit", 1<<30, "memory: GOMEMLIMIT of Vigil in bytes")
	flag.Int64Var(&o.inflightBytes, "inflight-bytes", 0, "memory: ingest.max_inflight_bytes passed to Vigil in a configuration file (0: Vigil's default)")
	flag.BoolVar(&o.memorySlow, "memory-slow", true, "memory: open 64 slow connections first (a minute at Vigil's default read timeout)")
	flag.BoolVar(&o.memoryPosts, "memory-posts", true, "memory: post 64 exports of 16 MiB at once")
	flag.IntVar(&o.alertRounds, "alert-rounds", 7, "alerting: scripted faults (each 20–25 s after the previous one)")
	flag.IntVar(&o.ruleRounds, "rule-rounds", 12, "rules: 15 s evaluation rounds measured")
	flag.IntVar(&o.deriveRounds, "derive-rounds", 2, "derive: ingest runs with derivation off and on, alternately, each")
	flag.IntVar(&o.scrapeTargets, "scrape-targets", 1000, "scrape: targets, an HTTP server each")
	flag.IntVar(&o.scrapeSeries, "scrape-series", 500, "scrape: series per target")
	flag.IntVar(&o.scrapeRounds, "scrape-rounds", 6, "scrape: 15 s intervals measured for Vigil and for Prometheus each, after two of warm-up")
	flag.IntVar(&o.regInstances, "registry-instances", 1000, "registry: instances registered, an HTTP check every 10 s each")
	flag.IntVar(&o.regIntervals, "registry-intervals", 6, "registry: 10 s check intervals over which CPU is measured")
	flag.IntVar(&o.regWatchers, "registry-watchers", 20, "registry: watchers holding blocking queries")
	flag.IntVar(&o.regChanges, "registry-changes", 50, "registry: state changes the watchers wait for, on one Vigil and across two")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var err error
	switch o.signal {
	case "traces":
		var rep *report
		if rep, err = run(ctx, o, logger); err == nil {
			rep.print(os.Stdout, o)
		}
	case "jaeger":
		err = runJaeger(ctx, o, logger, os.Stdout)
	case "logs":
		err = runLogs(ctx, o, logger, os.Stdout)
	case "logs-queries":
		err = runLogQueries(ctx, o, logger, os.Stdout)
	case "metrics":
		err = runMetrics(ctx, o, logger, os.Stdout)
	case "memory":
		err = runMemory(ctx, o, logger, os.Stdout)
	case "alerting":
		err = runAlerting(ctx, o, logger, os.Stdout)
	case "rules":
		err = runRules(ctx, o, logger, os.Stdout)
	case "derive":
		err = runDerive(ctx, o, logger, os.Stdout)
	case "scrape":
		err = runScrape(ctx, o, logger, os.Stdout)
	case "scrape-baseline": // internal: the Prometheus child of -signal scrape
		err = runScrapeBaseline(ctx, os.Stdin, os.Stdout, logger)
	case "registry":
		err = runRegistry(ctx, o, logger, os.Stdout)
	default:
		err = fmt.Errorf("-signal %q: want traces, jaeger, logs, logs-queries, metrics, memory, alerting, rules, derive, scrape or registry", o.signal)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil-bench:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func machine() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s, %d CPUs, %s %s/%s", host, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
