package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("vigil-demo", flag.ExitOnError)
	fs.StringVar(&cfg.OTLPEndpoint, "otlp-endpoint", cfg.OTLPEndpoint, "Vigil's OTLP gRPC endpoint")
	fs.StringVar(&cfg.GatewayAddr, "gateway-addr", cfg.GatewayAddr, "gateway listen address")
	users := fs.String("user-addrs", strings.Join(cfg.UserAddrs, ","), "comma-separated listen addresses of the user-service instances")
	fs.StringVar(&cfg.Fault, "fault", cfg.Fault, "initial fault of the last user-service instance: none, slow or fail")
	fs.DurationVar(&cfg.SlowDelay, "slow-delay", cfg.SlowDelay, "added latency of a slow instance")
	fs.Float64Var(&cfg.LoadRPS, "load", cfg.LoadRPS, "requests per second the built-in load generator sends to the gateway (0: off)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "stop after this long (0: run until interrupted)")
	fs.DurationVar(&cfg.MetricInterval, "metric-interval", cfg.MetricInterval, "OTLP metric export interval")
	fs.StringVar(&cfg.ConsulAddr, "consul-addr", cfg.ConsulAddr, "Consul HTTP API (Vigil's, e.g. 127.0.0.1:8500) the user-service instances register with and the gateway discovers them through (empty: static addresses)")
	fs.DurationVar(&cfg.ConsulTTL, "consul-ttl", cfg.ConsulTTL, "TTL check of the registrations, passed every TTL/3")
	fs.DurationVar(&cfg.ScrapeInterval, "scrape-interval", cfg.ScrapeInterval, "scrape_interval meta of the registrations (0: Vigil's default)")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	_ = fs.Parse(os.Args[1:]) // flag.ExitOnError: a bad flag exits with the usage
	cfg.UserAddrs = strings.Split(*users, ",")
	cfg.ConsulToken = os.Getenv("CONSUL_HTTP_TOKEN") // a secret: not a flag

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "vigil-demo: -log-level: %v\n", err)
		os.Exit(2)
	}
	cfg.LogLevel = lvl
	cfg.Stdout = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "vigil-demo: %v\n", err)
		os.Exit(1)
	}
}

// defaultConfig returns the flag defaults.
func defaultConfig() config {
	return config{
		OTLPEndpoint:   "127.0.0.1:4317",
		GatewayAddr:    "127.0.0.1:3000",
		UserAddrs:      []string{"127.0.0.1:3001", "127.0.0.1:3002", "127.0.0.1:3003"},
		Fault:          "none",
		SlowDelay:      800 * time.Millisecond,
		MetricInterval: 10 * time.Second,
		ConsulTTL:      15 * time.Second,
		ScrapeInterval: 15 * time.Second,
	}
}
