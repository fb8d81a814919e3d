package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
)

// metricTables are the relations whose size is a metric sample's cost on
// disk: chunks and raw samples (with their partitions), series and the
// label dictionary, each with its indexes and TOAST.
var metricTables = []string{"metric_chunks", "metric_samples", "metric_series", "metric_labels"}

// rawSampleCopySQL is the COPY of the raw ceiling, the statement Vigil's
// metric store sends.
const rawSampleCopySQL = "COPY metric_samples (series_id, t, v, batch, st, h) FROM STDIN (FORMAT binary)"

// pgEpoch is the origin of PostgreSQL's binary timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// backfillCommit is the number of scrape rounds a backfill writer commits
// at once.
const backfillCommit = 8

// relSize is the size on disk of one table with its partitions.
type relSize struct {
	total   int64 // heap, TOAST and indexes
	indexes int64
}

// metricsReport holds every figure of one run of the metrics benchmark.
type metricsReport struct {
	series   int
	load     metricsLoad
	rounds   int
	stored   int64 // rows in metric_samples after the ingest
	vigilCPU time.Duration
	pgCPU    time.Duration
	peakRSS  int64
	profile  string // CPU profile of Vigil taken during the ingest
	raw      rawResult

	// The size phase: a backfilled day, compacted.
	hours          float64
	fillSamples    int64
	fillElapsed    time.Duration
	fillPgCPU      time.Duration
	fillSelfCPU    time.Duration
	before         map[string]relSize
	after          map[string]relSize
	compact        compactResult
	compactErr     error
	compactPgCPU   time.Duration
	compactSelfCPU time.Duration
	xor            xorBaseline
	rawLeft        int64 // rows left in metric_samples after compaction
	chunkRows      int64
}

// runMetrics measures the metric path (see docs/benchmarks.md, "Metrics"):
// remote_write ingest of o.samples samples over o.series active series
// against a bare COPY of the same rows measured in the same run, CPU per
// sample and Vigil's peak RSS; then, on a second database, o.hours of the
// same series backfilled through the metric store's appender, bytes on
// disk per sample before and after compaction, and compaction throughput.
// It prints a markdown table on w.
func runMetrics(ctx context.Context, o options, logger *slog.Logger, w io.Writer) error {
	rep := &metricsReport{series: o.series, hours: o.hours}
	all := newMetricSeries(o.series)
	if err := metricsIngest(ctx, o, all, rep, logger); err != nil {
		return err
	}
	if err := metricsSize(ctx, o, all, rep, logger); err != nil {
		return err
	}
	rep.print(w, o)
	return nil
}

// metricsIngest runs the remote_write phase and its raw COPY ceiling.
func metricsIngest(ctx context.Context, o options, all []metricSeries, rep *metricsReport, logger *slog.Logger) error {
	dbURL, drop, err := createDB(ctx, o.adminURL, "vigil_bench_metrics_", o.keep)
	if err != nil {
		return err
	}
	defer drop()
	// The ingest writes two hours and more into the past (see below);
	// Vigil's compactor, which would compact those windows while they are
	// being written, is kept out of the way: compaction is measured on its
	// own in metricsSize.
	cfgFile, err := os.CreateTemp("", "vigil-bench-*.yaml")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(cfgFile.Name())
	if _, err := cfgFile.WriteString("metrics:\n  compaction_delay: 720h\n"); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := cfgFile.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	bin, _ := filepath.Abs(o.vigilBin)
	vp, err := startVigil(ctx, bin, dbURL, false, "VIGIL_CONFIG="+cfgFile.Name())
	if err != nil {
		return err
	}
	stopped := false
	stopVigil := func() {
		if !stopped {
			stopped = true
			if err := vp.stop(); err != nil {
				logger.Warn("vigil exit", "err", err)
			}
		}
	}
	defer stopVigil()
	pid, httpAddr := vp.pid, vp.addrs["http"]
	logger.Info("vigil started", "pid", pid, "http", httpAddr)

	// Timestamps advance 15 s per round from base, so that the last round
	// lands just before now and no sample is in the future.
	rep.rounds = (o.samples + len(all) - 1) / len(all)
	base := time.Now().Add(-time.Duration(rep.rounds+1) * scrapeInterval).Truncate(scrapeInterval).UnixMilli()

	rssStop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			if v := peakRSS(pid); v > rep.peakRSS {
				rep.peakRSS = v
			}
			select {
			case <-rssStop:
				return
			case <-t.C:
			}
		}
	}()
	if o.cpuProfile != "" {
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := fetchProfile(ctx, "http://"+httpAddr, o.cpuProfile, 5*time.Second, 20*time.Second); err != nil {
				logger.Warn("cpu profile", "err", err)
				return
			}
			rep.profile = o.cpuProfile
		}()
	}
	vcpu0, pg0 := procCPU(pid), postgresCPU()
	rep.load = remoteWrite(ctx, "http://"+httpAddr+"/api/v1/write", all, base, rep.rounds, o.workers, o.maxDuration)
	rep.vigilCPU, rep.pgCPU = procCPU(pid)-vcpu0, postgresCPU()-pg0
	close(rssStop)
	bg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	logger.Info("ingest done", "acked", rep.load.acked, "elapsed", rep.load.elapsed)
	stopVigil()

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect %s: %w", dbURL, err)
	}
	defer pool.Close()
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM metric_samples").Scan(&rep.stored); err != nil {
		return fmt.Errorf("count samples: %w", err)
	}
	rep.raw, err = rawCopySamples(ctx, o, pool, logger)
	return err
}

// fetchProfile saves a CPU profile of the Vigil at base, taken over d
// after waiting for wait.
func fetchProfile(ctx context.Context, base, path string, wait, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, int(d.Seconds())), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("get profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("write profile: %w", err)
	}
	return f.Close()
}

// rawCopySamples is the ceiling of the metrics ingest: the rows Vigil
// stored in metric_samples, read back (in their physical order, which is
// Vigil's commit order, sorted by series and time within each commit) and
// written with bare binary COPY, the statement Vigil sends, into a freshly
// migrated database: one row per sample into metric_samples, partitioned
// by day, with its (series_id, t) index. o.workers connections, chunks of
// 5,000 rows encoded before the clock starts.
func rawCopySamples(ctx context.Context, o options, src *pgxpool.Pool, logger *slog.Logger) (rawResult, error) {
	rows, err := src.Query(ctx, "SELECT series_id, t, v, batch, st, h FROM metric_samples")
	if err != nil {
		return rawResult{}, fmt.Errorf("read samples: %w", err)
	}
	const chunk = 5000
	var chunks [][]byte
	var cur []byte
	var n, inChunk int64
	minT, maxT := int64(math.MaxInt64), int64(math.MinInt64)
	for rows.Next() {
		if cur == nil {
			cur = append(make([]byte, 0, chunk*60), "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00"...)
		}
		raw := rows.RawValues()
		if len(raw[1]) == 8 {
			t := int64(binary.BigEndian.Uint64(raw[1]))
			minT, maxT = min(minT, t), max(maxT, t)
		}
		cur = binary.BigEndian.AppendUint16(cur, uint16(len(raw)))
		for _, col := range raw {
			if col == nil {
				cur = binary.BigEndian.AppendUint32(cur, 0xffffffff)
				continue
			}
			cur = binary.BigEndian.AppendUint32(cur, uint32(len(col)))
			cur = append(cur, col...)
		}
		n++
		if inChunk++; inChunk == chunk {
			chunks = append(chunks, binary.BigEndian.AppendUint16(cur, 0xffff))
			cur, inChunk = nil, 0
		}
	}
	if err := rows.Err(); err != nil {
		return rawResult{}, fmt.Errorf("read samples: %w", err)
	}
	if cur != nil {
		chunks = append(chunks, binary.BigEndian.AppendUint16(cur, 0xffff))
	}
	dst, drop, err := newRawDB(ctx, o, "vigil_bench_metrics_raw_")
	if err != nil {
		return rawResult{}, err
	}
	defer drop()
	// The partitions of every period the rows fall in exist before the
	// clock starts (timestamptz is microseconds since 2000-01-01).
	if n > 0 {
		var times []time.Time
		for t := pgEpoch.Add(time.Duration(minT) * time.Microsecond); ; t = t.Add(time.Hour) {
			last := pgEpoch.Add(time.Duration(maxT) * time.Microsecond)
			if t.After(last) {
				times = append(times, last)
				break
			}
			times = append(times, t)
		}
		if err := postgres.NewPartitions(dst, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour}).Ensure(ctx, times); err != nil {
			return rawResult{}, err
		}
	}
	next := make(chan []byte)
	var wg sync.WaitGroup
	var copyErr error
	var once sync.Once
	pg0 := postgresCPU()
	start := time.Now()
	for range o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for part := range next {
				err := dst.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
					_, err := c.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(part), rawSampleCopySQL)
					return err
				})
				if err != nil {
					once.Do(func() { copyErr = fmt.Errorf("raw copy: %w", err) })
				}
			}
		}()
	}
	for _, c := range chunks {
		next <- c
	}
	close(next)
	wg.Wait()
	res := rawResult{rows: n, elapsed: time.Since(start), pgCPU: postgresCPU() - pg0}
	logger.Info("raw copy done", "table", "metric_samples", "rows", res.rows, "elapsed", res.elapsed)
	return res, copyErr
}

// metricsSize backfills o.hours of every series, ending two hours ago,
// into a fresh database through the metric store's appender in this
// process (what remote_write would do, without the HTTP and protobuf cost
// that the ingest phase already measures), then measures the tables,
// compacts and measures them again.
func metricsSize(ctx context.Context, o options, all []metricSeries, rep *metricsReport, logger *slog.Logger) error {
	dbURL, drop, err := createDB(ctx, o.adminURL, "vigil_bench_metrics_size_", o.keep)
	if err != nil {
		return err
	}
	defer drop()
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("parse %s: %w", dbURL, err)
	}
	pcfg.MaxConns = int32(o.workers) + 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("connect %s: %w", dbURL, err)
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		return err
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		return err
	}
	store := metricstore.New(pool, parts, metricstore.Options{Logger: logger})

	rounds := int(o.hours * float64(time.Hour/scrapeInterval))
	end := time.Now().Add(-2 * time.Hour).Truncate(scrapeInterval)
	base := end.Add(-time.Duration(rounds) * scrapeInterval).UnixMilli()
	pg0, self0 := postgresCPU(), selfCPU()
	start := time.Now()
	rep.fillSamples, err = backfill(ctx, store, all, base, rounds, o.workers)
	rep.fillElapsed, rep.fillPgCPU, rep.fillSelfCPU = time.Since(start), postgresCPU()-pg0, selfCPU()-self0
	if err != nil {
		return err
	}
	logger.Info("backfill done", "samples", rep.fillSamples, "elapsed", rep.fillElapsed)
	if rep.before, err = metricSizes(ctx, pool); err != nil {
		return err
	}
	rep.xor = encodeBaseline(all, base, rounds, o.workers)

	pg0, self0 = postgresCPU(), selfCPU()
	rep.compact, rep.compactErr = compactMetrics(ctx, store, time.Now())
	rep.compactPgCPU, rep.compactSelfCPU = postgresCPU()-pg0, selfCPU()-self0
	if rep.compactErr != nil {
		logger.Warn("compaction", "err", rep.compactErr)
		return nil
	}
	logger.Info("compaction done", "samples", rep.compact.Samples, "elapsed", rep.compact.wall)
	if rep.after, err = metricSizes(ctx, pool); err != nil {
		return err
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM metric_samples").Scan(&rep.rawLeft); err != nil {
		return fmt.Errorf("count raw samples: %w", err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM metric_chunks").Scan(&rep.chunkRows); err != nil {
		return fmt.Errorf("count chunks: %w", err)
	}
	return nil
}

// backfill appends rounds scrape rounds of every series from base through
// store's appender, from workers goroutines each owning the series
// i % workers == its number and committing backfillCommit rounds at a
// time. It returns the samples committed.
func backfill(ctx context.Context, store storage.AppendableV2, all []metricSeries, base int64, rounds, workers int) (int64, error) {
	var done int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wk := 0; wk < workers; wk++ {
		var idx []int
		for i := wk; i < len(all); i += workers {
			idx = append(idx, i)
		}
		wg.Add(1)
		go func(wk int) {
			defer wg.Done()
			stream := newSeriesStream(all, idx, base, rounds, uint64(1000+wk))
			refs := make([]storage.SeriesRef, len(all))
			per := backfillCommit * len(idx)
			for ctx.Err() == nil {
				app := store.AppenderV2(ctx)
				n := 0
				for ; n < per; n++ {
					j, t, v, ok := stream.next()
					if !ok {
						break
					}
					ref, err := app.Append(refs[j], all[j].lset, 0, t, v, nil, nil, storage.AOptions{})
					if err != nil {
						once.Do(func() { firstErr = fmt.Errorf("backfill append: %w", err) })
						cancel()
						return
					}
					refs[j] = ref
				}
				if n == 0 {
					_ = app.Rollback()
					return
				}
				if err := app.Commit(); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("backfill commit: %w", err) })
					cancel()
					return
				}
				atomic.AddInt64(&done, int64(n))
			}
		}(wk)
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return done, firstErr
}

// metricSizes checkpoints and returns the size of each of metricTables
// with its partitions (0 for a table that does not exist).
func metricSizes(ctx context.Context, pool *pgxpool.Pool) (map[string]relSize, error) {
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	// pg_partition_tree lists nothing for a table that is not partitioned:
	// the table itself is added (a partitioned parent has no storage).
	rows, err := pool.Query(ctx, `SELECT t, sum(pg_total_relation_size(r))::bigint, sum(pg_indexes_size(r))::bigint
		FROM unnest($1::text[]) AS t,
		LATERAL (SELECT to_regclass(t) AS r UNION SELECT relid FROM pg_partition_tree(to_regclass(t))) x
		WHERE r IS NOT NULL
		GROUP BY t`, metricTables)
	if err != nil {
		return nil, fmt.Errorf("table sizes: %w", err)
	}
	out := map[string]relSize{}
	var name string
	var s relSize
	_, err = pgx.ForEachRow(rows, []any{&name, &s.total, &s.indexes}, func() error {
		out[name] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("table sizes: %w", err)
	}
	return out, nil
}

// print writes the report as a markdown table.
func (r *metricsReport) print(w io.Writer, o options) {
	acked := r.load.acked
	rate := float64(acked) / r.load.elapsed.Seconds()
	raw := float64(r.raw.rows) / r.raw.elapsed.Seconds()
	per := func(d time.Duration, n int64) float64 { return float64(d.Nanoseconds()) / 1000 / float64(max(n, 1)) }
	fmt.Fprintf(w, "# vigil-bench -signal metrics\n\nmachine: %s\n", machine())
	fmt.Fprintf(w, "load: %d series (%d targets of ~200 series, %d metric names), remote_write 1.0 from %d shards, %d samples per request, %d scrape rounds 15 s apart ending now\n\n",
		r.series, (r.series+199)/200, metricNames(newMetricSeries(r.series)), o.workers, samplesPerSend, r.rounds)
	fmt.Fprintf(w, "| figure | value |\n|---|---|\n")
	fmt.Fprintf(w, "| samples acknowledged (204) / stored rows | %d / %d (requests %d, retried %d, failed %d; %.1f compressed bytes per sample sent) |\n",
		acked, r.stored, r.load.requests, r.load.retries, r.load.failures, float64(r.load.bytesSent)/float64(max(acked, 1)))
	fmt.Fprintf(w, "| end-to-end ingest, remote_write, committed | **%.0f samples/s** over %.1fs |\n", rate, r.load.elapsed.Seconds())
	fmt.Fprintf(w, "| raw ceiling: bare binary COPY of the same %d rows into metric_samples with its (series_id, t) index, %d connections, 5,000 rows per COPY | %.0f samples/s |\n",
		r.raw.rows, o.workers, raw)
	fmt.Fprintf(w, "| ratio end-to-end / ceiling | **%.2f** |\n", rate/raw)
	fmt.Fprintf(w, "| CPU per sample: Vigil | %.2f µs |\n", per(r.vigilCPU, acked))
	fmt.Fprintf(w, "| CPU per sample: PostgreSQL (during Vigil ingest) | %.2f µs |\n", per(r.pgCPU, acked))
	fmt.Fprintf(w, "| CPU per sample: load generator | %.2f µs |\n", per(r.load.generator, acked))
	fmt.Fprintf(w, "| CPU per row: PostgreSQL (raw COPY) | %.2f µs |\n", per(r.raw.pgCPU, r.raw.rows))
	fmt.Fprintf(w, "| Vigil peak RSS during ingest | %.0f MiB |\n", float64(r.peakRSS)/(1<<20))
	if r.profile != "" {
		fmt.Fprintf(w, "| CPU profile of Vigil during ingest | %s |\n", r.profile)
	}
	fmt.Fprintf(w, "| backfill: %d series × %.0f h at 15 s through the store's appender in-process, %d writers | %d samples in %.1fs = %.0f samples/s (PostgreSQL %.2f µs, bench process %.2f µs CPU per sample) |\n",
		r.series, r.hours, o.workers, r.fillSamples, r.fillElapsed.Seconds(), float64(r.fillSamples)/r.fillElapsed.Seconds(),
		per(r.fillPgCPU, r.fillSamples), per(r.fillSelfCPU, r.fillSamples))
	fmt.Fprintf(w, "| bytes on disk per sample before compaction | **%s** |\n", sizeLine(r.before, r.fillSamples))
	if r.compactErr != nil {
		fmt.Fprintf(w, "| compaction | not measured: %v |\n", r.compactErr)
		return
	}
	c := r.compact
	fmt.Fprintf(w, "| compaction (one Compact(now) pass): windows, chunk rows, samples, raw partitions dropped | %d, %d, %d, %d (rows left in metric_samples %d, rows in metric_chunks %d) |\n",
		c.Windows, c.Series, c.Samples, c.Dropped, r.rawLeft, r.chunkRows)
	fmt.Fprintf(w, "| compaction throughput | **%.0f samples/s** (%.1fs wall; PostgreSQL %.2f µs, bench process %.2f µs CPU per sample) |\n",
		float64(c.Samples)/c.wall.Seconds(), c.wall.Seconds(), per(r.compactPgCPU, c.Samples), per(r.compactSelfCPU, c.Samples))
	fmt.Fprintf(w, "| chunk data (the encoded bytes alone) per sample | %.2f B (%.0f B per chunk row) |\n",
		float64(c.Bytes)/float64(max(c.Samples, 1)), float64(c.Bytes)/float64(max(c.Series, 1)))
	x := r.xor
	xs := func(b int64) float64 { return float64(b) / float64(max(x.samples, 1)) }
	fmt.Fprintf(w, "| baseline, same samples, Prometheus's chunkenc (encoded bytes alone): XOR cut at 120 samples as the TSDB head does / XOR per 2 h window / XOR2 per 2 h window | %.2f / %.2f / %.2f B |\n",
		xs(x.xor120), xs(x.xorWin), xs(x.xor2Win))
	fmt.Fprintf(w, "| bytes on disk per sample after compaction | **%s** |\n", sizeLine(r.after, r.fillSamples))
	if r.load.firstErr != "" {
		fmt.Fprintf(w, "\nfirst remote_write error: %s\n", r.load.firstErr)
	}
}

// sizeLine renders sizes per sample: the total, then each table.
func sizeLine(sizes map[string]relSize, samples int64) string {
	var total int64
	for _, s := range sizes {
		total += s.total
	}
	f := func(b int64) float64 { return float64(b) / float64(max(samples, 1)) }
	out := fmt.Sprintf("%.2f B", f(total))
	sep := " ("
	for _, t := range metricTables {
		s, ok := sizes[t]
		if !ok || s.total == 0 {
			continue
		}
		out += fmt.Sprintf("%s%s %.2f B", sep, t, f(s.total))
		if s.indexes > 0 {
			out += fmt.Sprintf(" incl. indexes %.2f B", f(s.indexes))
		}
		sep = "; "
	}
	if sep == "; " {
		out += ")"
	}
	return out + fmt.Sprintf(", %.1f MiB in all", float64(total)/(1<<20))
}

// metricNames counts the distinct metric names of series.
func metricNames(series []metricSeries) int {
	names := map[string]bool{}
	for _, s := range series {
		names[s.lset.Get("__name__")] = true
	}
	return len(names)
}
