// Command vigil is the Vigil server: it receives traces, metrics and logs
// (OTLP, Jaeger, Zipkin, Prometheus remote_write), stores them in
// PostgreSQL, and serves them through the Jaeger query API, the
// Prometheus HTTP API, the log API and the web UI.
//
//	vigil serve                  run the server
//	vigil migrate                apply database migrations and exit
//	vigil rules check FILE…      validate and lint Prometheus rule files
//	vigil rules defaults         print the shipped rule pack
//	vigil version                print the version
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	promversion "github.com/prometheus/common/version"
	"github.com/spf13/cobra"

	"github.com/vigil-obs/vigil/alerting/rules"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	tuneGC()
	// Alertmanager's /api/v2/status (amtool compares it with its own) and
	// Prometheus's build info read the version from here.
	promversion.Version = version
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "vigil:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "vigil",
		Short:         "Vigil: traces, metrics and logs on PostgreSQL",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newMigrateCmd(), newRulesCmd(), newVersionCmd())
	return root
}

// configCommand builds a command that takes the serve flags and --config
// and passes the resolved configuration to run.
func configCommand(use, short string, run func(ctx context.Context, cfg Config, logger *slog.Logger) error) *cobra.Command {
	var scratch = defaultConfig()
	var configPath string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := resolveConfig(cmd.Flags(), configPath, os.Getenv)
			if err != nil {
				return err
			}
			logger := newLogger(cfg.Log)
			warnDeprecated(cmd.Context(), logger, cfg)
			return run(cmd.Context(), cfg, logger)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML configuration file (env VIGIL_CONFIG)")
	bindFlags(cmd.Flags(), &scratch)
	return cmd
}

// warnDeprecated logs each old key the configuration file used, with the
// key that replaces it.
func warnDeprecated(ctx context.Context, logger *slog.Logger, cfg Config) {
	for _, d := range cfg.deprecated {
		logger.WarnContext(ctx, "deprecated configuration key, use its new key", "key", d.old, "new_key", d.new)
	}
}

func newServeCmd() *cobra.Command {
	return configCommand("serve", "Run the Vigil server", serve)
}

func newMigrateCmd() *cobra.Command {
	return configCommand("migrate", "Apply pending database migrations and exit", migrate)
}

func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "Work with Prometheus rule files"}
	var lintFatal bool
	check := &cobra.Command{
		Use:   "check FILE...",
		Short: "Validate rule files as promtool check rules does, and lint them for common pitfalls",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			errs, warns := rules.Check(files, cmd.OutOrStdout())
			if errs > 0 || (lintFatal && warns > 0) {
				return fmt.Errorf("%d error(s), %d warning(s)", errs, warns)
			}
			return nil
		},
	}
	check.Flags().BoolVar(&lintFatal, "lint-fatal", false, "exit non-zero on lint warnings too")
	defaults := &cobra.Command{
		Use:   "defaults",
		Short: "Print the rule pack Vigil evaluates unless alerting.default_rules is false",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(rules.DefaultRules())
			return err
		},
	}
	cmd.AddCommand(check, defaults)
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "vigil %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}

func newLogger(c LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// tuneGC trades memory for CPU: ingest allocates heavily and its live heap
// is small and bounded by the pipeline queue, so collecting at 4× the live
// heap (instead of Go's 2×) saves much of the collector's CPU, while a
// 1 GiB soft limit makes the collector work harder before memory grows
// past it. GOGC and GOMEMLIMIT, when set, take precedence.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(1 << 30)
	}
}
