package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// rawLogSample bounds the rows read back from logs for the raw COPY
// ceiling, so that holding them in memory (~1 KiB per row as pgx values)
// stays reasonable; a run storing more copies the first rawLogSample.
const rawLogSample = 2_000_000

// logsReport holds every figure of one run of the log benchmark.
type logsReport struct {
	load         loadResult
	rows         int64 // committed rows in logs after ingest (bulk + probes)
	rare, rareZH int64 // stored records holding rareWord, rareWordZH
	withTrace    int64 // stored records with a trace id
	bodyBytes    float64
	vigilCPU     time.Duration
	pgCPU        time.Duration
	peakRSS      int64
	bytesTotal   int64
	bytesHeap    int64
	bytesIndexes map[string]int64
	rawRows      int64
	rawElapsed   time.Duration
	rawPgCPU     time.Duration
	search       []time.Duration
	searchZH     []time.Duration
	traceLookup  []time.Duration
	searchHits   int // records returned over all rare-word searches
	searchZHHits int
	traceHits    int
	searchCapped bool // a search series stopped at searchBudget
	// queryFailures counts API answers other than 200 (e.g. 504 at Vigil's
	// 30 s query deadline); queryFirstErr is the first.
	queryFailures int
	queryFirstErr string
	tailLoad      tailResult // live tail during the ingest
	tailIdle      tailResult // live tail after it
	pipeline      map[string]float64
}

// runLogs measures the log path (see docs/benchmarks.md, "Log path"):
// OTLP/gRPC ingest of o.targetSpans log records against a bare pgx COPY of
// the same rows measured in the same run, bytes on disk per record, text
// search and trace-id lookup latency over the stored records, live-tail
// delivery latency during and after the ingest, CPU per record and Vigil's
// peak RSS. It prints a markdown table on w.
func runLogs(ctx context.Context, o options, logger *slog.Logger, w io.Writer) error {
	rep := &logsReport{bytesIndexes: map[string]int64{}}
	dbURL, drop, err := createDB(ctx, o.adminURL, "vigil_bench_logs_", o.keep)
	if err != nil {
		return err
	}
	defer drop()
	bin, _ := filepath.Abs(o.vigilBin)
	vp, err := startVigil(ctx, bin, dbURL, false)
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
	pid, httpAddr, grpcAddr := vp.pid, vp.addrs["http"], vp.addrs["otlp_grpc"]
	logger.Info("vigil started", "pid", pid, "http", httpAddr, "grpc", grpcAddr)
	client, closeClient, err := dialLogs(grpcAddr)
	if err != nil {
		return err
	}
	defer func() { _ = closeClient() }()

	rssStop := make(chan struct{})
	var rssWG sync.WaitGroup
	rssWG.Add(1)
	go func() {
		defer rssWG.Done()
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
	// The live tail under load: one probe record every 50 ms while the
	// bulk load runs.
	probeStop := make(chan struct{})
	probeDone := make(chan error, 1)
	go func() {
		var err error
		rep.tailLoad, err = tailProbe(ctx, client, httpAddr, 1<<30, 50*time.Millisecond, probeStop)
		probeDone <- err
	}()
	vcpu0, pg0 := procCPU(pid), postgresCPU()
	rep.load = generateLogs(ctx, client, o)
	rep.vigilCPU, rep.pgCPU = procCPU(pid)-vcpu0, postgresCPU()-pg0
	close(probeStop)
	probeErr := <-probeDone
	close(rssStop)
	rssWG.Wait()
	if probeErr != nil {
		return probeErr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	logger.Info("ingest done", "acked", rep.load.acked, "elapsed", rep.load.elapsed)

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	err = pool.QueryRow(ctx, `SELECT count(*),
		count(*) FILTER (WHERE body LIKE '%'||$1||'%'), count(*) FILTER (WHERE body LIKE '%'||$2||'%'),
		count(*) FILTER (WHERE trace_id IS NOT NULL), coalesce(avg(octet_length(body)), 0)::float8 FROM logs`,
		rareWord, rareWordZH).Scan(&rep.rows, &rep.rare, &rep.rareZH, &rep.withTrace, &rep.bodyBytes)
	if err != nil {
		return fmt.Errorf("count logs: %w", err)
	}
	if err := measureLogSize(ctx, pool, rep); err != nil {
		return err
	}
	logger.Info("stored", "rows", rep.rows, "bytes", rep.bytesTotal)

	rep.tailIdle, err = tailProbe(ctx, client, httpAddr, 200, 20*time.Millisecond, nil)
	if err != nil {
		return err
	}
	if err := measureLogQueries(ctx, pool, "http://"+httpAddr, o, rep); err != nil {
		return err
	}
	rep.pipeline = scrapePipeline("http://" + httpAddr)
	stopVigil()

	raw, err := rawCopyTable(ctx, o, pool, "logs", "vigil_bench_logs_raw_", rawLogSample, logger)
	rep.rawRows, rep.rawElapsed, rep.rawPgCPU = raw.rows, raw.elapsed, raw.pgCPU
	if err != nil {
		return err
	}
	rep.print(w, o)
	return nil
}

// measureLogSize sums the partitions of logs after a CHECKPOINT: heap
// (with TOAST) and each index, as measureSize does for spans.
func measureLogSize(ctx context.Context, pool *pgxpool.Pool, rep *logsReport) error {
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(inhrelid)),0),
		coalesce(sum(pg_table_size(inhrelid)),0) FROM pg_inherits WHERE inhparent = 'logs'::regclass`).
		Scan(&rep.bytesTotal, &rep.bytesHeap)
	if err != nil {
		return fmt.Errorf("table size: %w", err)
	}
	rows, err := pool.Query(ctx, `SELECT pi.relname, sum(pg_relation_size(i.indexrelid))::bigint
		FROM pg_inherits h JOIN pg_index i ON i.indrelid = h.inhrelid
		JOIN pg_inherits ih ON ih.inhrelid = i.indexrelid JOIN pg_class pi ON pi.oid = ih.inhparent
		WHERE h.inhparent = 'logs'::regclass GROUP BY pi.relname`)
	if err != nil {
		return fmt.Errorf("index sizes: %w", err)
	}
	var name string
	var size int64
	_, err = pgx.ForEachRow(rows, []any{&name, &size}, func() error {
		rep.bytesIndexes[name] = size
		return nil
	})
	return err
}

// searchBudget bounds the wall time of each text-search series, so that a
// slow plan cannot hold the run for o.queries × its latency.
const searchBudget = 90 * time.Second

// measureLogQueries times o.queries searches for each rare word over the
// last 24 hours (default limit, 100; a series stops early after
// searchBudget) and o.queries lookups of random stored trace ids, each from
// request start to the last byte of the answer.
func measureLogQueries(ctx context.Context, pool *pgxpool.Pool, base string, o options, rep *logsReport) error {
	client := &http.Client{Timeout: 60 * time.Second}
	// get returns the latency of GET u and the records it returned; an
	// answer other than 200 is counted in rep.queryFailures (its latency
	// kept: it is what the user waited for) and is not an error.
	get := func(u string) (time.Duration, int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return 0, 0, err
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		d := time.Since(start)
		if err != nil {
			return 0, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			rep.queryFailures++
			if rep.queryFirstErr == "" {
				rep.queryFirstErr = fmt.Sprintf("GET %s: %d %s", u, resp.StatusCode, body)
			}
			return d, 0, nil
		}
		var env struct {
			Data []json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			return 0, 0, fmt.Errorf("GET %s: %w", u, err)
		}
		return d, len(env.Data), nil
	}
	start := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	for _, s := range []struct {
		word string
		lat  *[]time.Duration
		hits *int
	}{{rareWord, &rep.search, &rep.searchHits}, {rareWordZH, &rep.searchZH, &rep.searchZHHits}} {
		u := base + "/api/logs?" + url.Values{"q": {s.word}, "start": {start}}.Encode()
		began := time.Now()
		for range o.queries {
			if time.Since(began) > searchBudget {
				rep.searchCapped = true
				break
			}
			d, n, err := get(u)
			if err != nil {
				return err
			}
			*s.lat = append(*s.lat, d)
			*s.hits += n
		}
	}
	rows, err := pool.Query(ctx, "SELECT DISTINCT trace_id FROM logs TABLESAMPLE SYSTEM (1) WHERE trace_id IS NOT NULL LIMIT $1", o.queries)
	if err != nil {
		return fmt.Errorf("sample trace ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
	if err != nil {
		return fmt.Errorf("sample trace ids: %w", err)
	}
	for _, id := range ids {
		d, n, err := get(base + "/api/logs?" + url.Values{"trace_id": {hex.EncodeToString(id[:])}}.Encode())
		if err != nil {
			return err
		}
		rep.traceLookup = append(rep.traceLookup, d)
		rep.traceHits += n
	}
	return nil
}

// print writes the report as a markdown table.
func (r *logsReport) print(w io.Writer, o options) {
	bulk := r.load.acked
	rate := float64(bulk) / r.load.elapsed.Seconds()
	raw := float64(r.rawRows) / r.rawElapsed.Seconds()
	fmt.Fprintf(w, "# vigil-bench -signal logs\n\nmachine: %s\n", machine())
	fmt.Fprintf(w, "load: %d workers × %d log records per OTLP/gRPC request, %d services, 8 attributes per record, mean body %.0f B, times over the last 24 h\n\n",
		o.workers, logsPerRequest, len(services), r.bodyBytes)
	fmt.Fprintf(w, "| figure | value |\n|---|---|\n")
	fmt.Fprintf(w, "| records committed (rows) | %d = %d bulk acknowledged + %d tail probes (refused-and-retried requests %d, failed %d) |\n",
		r.rows, bulk, r.tailLoad.sent, r.load.refusals, r.load.failures)
	if want := bulk + int64(r.tailLoad.sent); r.rows != want {
		fmt.Fprintf(w, "| **row count check** | **%d rows stored, %d acknowledged** |\n", r.rows, want)
	}
	fmt.Fprintf(w, "| records with trace id / with %q / with %q | %d / %d / %d |\n", rareWord, rareWordZH, r.withTrace, r.rare, r.rareZH)
	fmt.Fprintf(w, "| end-to-end ingest, OTLP/gRPC | **%.0f records/s** over %.1fs |\n", rate, r.load.elapsed.Seconds())
	sample := ""
	if r.rawRows < r.rows {
		sample = fmt.Sprintf(", first %d rows", r.rawRows)
	}
	fmt.Fprintf(w, "| raw ceiling: bare pgx COPY of the same rows%s, same tables, %d connections | %.0f rows/s |\n", sample, o.workers, raw)
	fmt.Fprintf(w, "| ratio end-to-end / ceiling | **%.2f** |\n", rate/raw)
	per := func(d time.Duration, n int64) float64 { return float64(d.Microseconds()) / float64(n) }
	fmt.Fprintf(w, "| CPU per record: Vigil | %.1f µs |\n", per(r.vigilCPU, bulk))
	fmt.Fprintf(w, "| CPU per record: PostgreSQL (during Vigil ingest) | %.1f µs |\n", per(r.pgCPU, bulk))
	fmt.Fprintf(w, "| CPU per record: load generator | %.1f µs |\n", per(r.load.generator, bulk))
	fmt.Fprintf(w, "| CPU per row: PostgreSQL (raw COPY) | %.1f µs |\n", per(r.rawPgCPU, r.rawRows))
	fmt.Fprintf(w, "| bytes on disk per record (heap + indexes + TOAST) | **%.0f B** (heap %.0f B", float64(r.bytesTotal)/float64(r.rows), float64(r.bytesHeap)/float64(r.rows))
	var names []string
	for n := range r.bytesIndexes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, ", %s %.0f B", n, float64(r.bytesIndexes[n])/float64(r.rows))
	}
	fmt.Fprintf(w, ") |\n")
	for _, s := range []struct {
		word string
		lat  []time.Duration
		hits int
	}{{rareWord, r.search, r.searchHits}, {rareWordZH, r.searchZH, r.searchZHHits}} {
		p50, p99 := percentiles(s.lat)
		fmt.Fprintf(w, "| GET /api/logs?q=%s&start=now-24h over %d records (%d queries, %.0f records returned each) | p50 %.1f ms, p99 **%.1f ms**; first 5: %s ms |\n",
			s.word, r.rows, len(s.lat), float64(s.hits)/float64(max(1, len(s.lat))), ms(p50), ms(p99), firstMillis(s.lat, 5))
	}
	if r.searchCapped {
		fmt.Fprintf(w, "| search series stopped after %s of wall time | yes |\n", searchBudget)
	}
	if r.queryFailures > 0 {
		fmt.Fprintf(w, "| query answers other than 200 | %d |\n", r.queryFailures)
	}
	p50, p99 := percentiles(r.traceLookup)
	fmt.Fprintf(w, "| GET /api/logs?trace_id= (%d random stored ids, %.1f records each) | p50 %.1f ms, p99 **%.1f ms** |\n",
		len(r.traceLookup), float64(r.traceHits)/float64(max(1, len(r.traceLookup))), ms(p50), ms(p99))
	for _, t := range []struct {
		name string
		res  tailResult
	}{{"during the ingest, 1 probe / 50 ms", r.tailLoad}, {"idle, 1 probe / 20 ms", r.tailIdle}} {
		p50, p99 = percentiles(t.res.latency)
		fmt.Fprintf(w, "| live tail, export start → frame received, %s (%d sent, %d received, %d dropped) | p50 %.1f ms, p99 **%.1f ms** |\n",
			t.name, t.res.sent, len(t.res.latency), t.res.dropped, ms(p50), ms(p99))
	}
	fmt.Fprintf(w, "| Vigil peak RSS during ingest | %.0f MiB |\n", float64(r.peakRSS)/(1<<20))
	if n := r.pipeline["vigil_pipeline_batch_log_records_count"]; n > 0 {
		fmt.Fprintf(w, "| pipeline: batches, mean records per batch, mean write+commit time | %.0f, %.0f, %.1f ms |\n",
			n, r.pipeline["vigil_pipeline_batch_log_records_sum"]/n,
			1000*r.pipeline[`vigil_pipeline_commit_duration_seconds_sum{signal="logs"}`]/
				r.pipeline[`vigil_pipeline_commit_duration_seconds_count{signal="logs"}`])
	}
	if r.queryFirstErr != "" {
		fmt.Fprintf(w, "\nfirst query error: %s\n", r.queryFirstErr)
	}
	for _, e := range []string{r.load.firstErr, r.tailLoad.firstErr, r.tailIdle.firstErr} {
		if e != "" {
			fmt.Fprintf(w, "\nfirst export error: %s\n", e)
		}
	}
}

// firstMillis formats the first n latencies of d in milliseconds, in the
// order they were measured.
func firstMillis(d []time.Duration, n int) string {
	var out []string
	for _, v := range d[:min(n, len(d))] {
		out = append(out, fmt.Sprintf("%.0f", ms(v)))
	}
	return strings.Join(out, ", ")
}
