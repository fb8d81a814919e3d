package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// logQueryBinary is one Vigil binary of a logs-queries run and its phases.
type logQueryBinary struct {
	name   string // "candidate" or "baseline"
	path   string
	phases []*logQueryPhase
}

// runLogQueries times the query phase of the log benchmark over a
// database an earlier run kept (-keep): o.logRounds rounds, each starting
// o.vigilBin and, when o.baseline is set, that binary in turn on the same
// data, so that the two compare within one run on one cache state. The
// range searched is the 24 hours before the newest stored record. It
// prints each binary's figures over all its rounds, their ratio, and
// whether every answer was the same.
func runLogQueries(ctx context.Context, o options, logger *slog.Logger, w io.Writer) error {
	if o.logsDB == "" {
		return errors.New("-signal logs-queries needs -logs-db, a database kept by -signal logs -keep")
	}
	dbURL := o.logsDB
	if !strings.Contains(dbURL, "://") {
		u, err := url.Parse(o.adminURL)
		if err != nil {
			return fmt.Errorf("-db: %w", err)
		}
		u.Path = "/" + dbURL
		dbURL = u.String()
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	rep := &logsReport{}
	var newest time.Time
	err = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM logs) + (SELECT coalesce(sum(records), 0) FROM log_blocks),
		greatest((SELECT max(time) FROM logs), (SELECT max(end_time) FROM log_blocks))`).Scan(&rep.rows, &newest)
	if err != nil {
		return fmt.Errorf("count logs: %w", err)
	}
	qr := queryRange{start: newest.Add(-24 * time.Hour).UTC(), end: newest.Add(time.Second).UTC()}
	rows, err := pool.Query(ctx, `SELECT t FROM (
		SELECT unnest(trace_ids) FROM log_blocks TABLESAMPLE SYSTEM (5) REPEATABLE (1)
		UNION SELECT trace_id FROM logs TABLESAMPLE SYSTEM (5) REPEATABLE (1) WHERE trace_id IS NOT NULL) AS s(t)
		ORDER BY t LIMIT $1`, o.queries)
	if err != nil {
		return fmt.Errorf("sample trace ids: %w", err)
	}
	traceIDs, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
	if err != nil {
		return fmt.Errorf("sample trace ids: %w", err)
	}
	bins := []*logQueryBinary{{name: "candidate", path: o.vigilBin}}
	if o.baseline != "" {
		bins = append(bins, &logQueryBinary{name: "baseline", path: o.baseline})
	}
	cfgFile := filepath.Join(os.TempDir(), fmt.Sprintf("vigil-bench-logq-%d.yaml", os.Getpid()))
	if err := os.WriteFile(cfgFile, []byte("logs:\n  compaction: false\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(cfgFile)
	for round := range o.logRounds {
		for _, b := range bins {
			bin, _ := filepath.Abs(b.path)
			vp, err := startVigilWith(ctx, bin, dbURL, false, []string{"--config", cfgFile})
			if err != nil {
				return err
			}
			ph := &logQueryPhase{name: fmt.Sprintf("%s, round %d", b.name, round+1)}
			logger.Info("queries", "phase", ph.name)
			err = measureLogQueries(ctx, "http://"+vp.addrs["http"], o, qr, traceIDs, rep, ph)
			if stopErr := vp.stop(); stopErr != nil {
				logger.Warn("vigil exit", "err", stopErr)
			}
			if err != nil {
				return err
			}
			b.phases = append(b.phases, ph)
		}
	}
	printLogQueries(w, o, rep, qr, bins)
	return nil
}

// printLogQueries writes the figures of a logs-queries run as a markdown
// table.
func printLogQueries(w io.Writer, o options, rep *logsReport, qr queryRange, bins []*logQueryBinary) {
	fmt.Fprintf(w, "# vigil-bench -signal logs-queries\n\nmachine: %s\n", machine())
	fmt.Fprintf(w, "data: %s, %d records, searched from %s to %s; %d rounds, each binary in turn\n\n",
		o.logsDB, rep.rows, qr.start.Format(time.RFC3339), qr.end.Format(time.RFC3339), o.logRounds)
	// Each series' latencies over all rounds of one binary.
	series := func(b *logQueryBinary) [][]time.Duration {
		out := make([][]time.Duration, 6)
		for _, ph := range b.phases {
			for i, l := range [][]time.Duration{ph.search, ph.searchZH, ph.searchOld, ph.searchOldZH, ph.traceLookup, ph.histogram} {
				out[i] = append(out[i], l...)
			}
		}
		return out
	}
	names := []string{
		"q=" + rareWord, "q=" + rareWordZH,
		"q=" + rareWord + " (windows before the newest only)", "q=" + rareWordZH + " (windows before the newest only)",
		"trace_id=", "histogram (every record)",
	}
	head := []string{"query"}
	for _, b := range bins {
		head = append(head, b.name+" p50 / p99")
	}
	if len(bins) == 2 {
		head = append(head, "p99 candidate / baseline")
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	var lats [][][]time.Duration
	for _, b := range bins {
		lats = append(lats, series(b))
	}
	for i, n := range names {
		line := fmt.Sprintf("| GET /api/logs %s |", n)
		var p99s []time.Duration
		for k := range bins {
			p50, p99 := percentiles(lats[k][i])
			p99s = append(p99s, p99)
			line += fmt.Sprintf(" %.1f / **%.1f** ms (%d) |", ms(p50), ms(p99), len(lats[k][i]))
		}
		if len(bins) == 2 {
			line += fmt.Sprintf(" **%.2f** |", float64(p99s[0])/float64(max(1, p99s[1])))
		}
		fmt.Fprintln(w, line)
	}
	first := bins[0].phases[0].answers
	same := "yes"
	for _, b := range bins {
		for _, ph := range b.phases {
			if ph.answers != first {
				same = "**no** (" + ph.name + ")"
			}
		}
	}
	fmt.Fprintf(w, "| answers identical across binaries and rounds (first answer of each series, every trace lookup) | %s |\n", same)
	if rep.queryFailures > 0 {
		fmt.Fprintf(w, "| query answers other than 200 | %d |\n\nfirst query error: %s\n", rep.queryFailures, rep.queryFirstErr)
	}
}
