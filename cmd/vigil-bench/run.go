package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-obs/vigil/storage/postgres"
)

// report holds every figure of one run.
type report struct {
	load         loadResult
	rows         int64
	vigilCPU     time.Duration
	pgCPU        time.Duration
	peakRSS      int64 // bytes
	bytesTotal   int64
	bytesHeap    int64
	bytesIndexes map[string]int64
	rawRows      int64
	rawElapsed   time.Duration
	rawPgCPU     time.Duration
	traceLatency []time.Duration
	searches     []searchResult     // one per filter of searchFilters
	pipeline     map[string]float64 // Vigil's own pipeline metrics after ingest
}

func (r *report) print(w io.Writer, o options) {
	rate := float64(r.rows) / r.load.elapsed.Seconds()
	raw := float64(r.rawRows) / r.rawElapsed.Seconds()
	fmt.Fprintf(w, "# vigil-bench\n\nmachine: %s\n", machine())
	fmt.Fprintf(w, "load: %d workers × %d ten-span traces per OTLP/gRPC request, ~10 attributes per span\n\n", o.workers, o.tracesPerRq)
	fmt.Fprintf(w, "| figure | value |\n|---|---|\n")
	fmt.Fprintf(w, "| spans committed (rows) | %d (acknowledged %d, refused-and-retried requests %d, failed %d) |\n", r.rows, r.load.acked, r.load.refusals, r.load.failures)
	fmt.Fprintf(w, "| end-to-end ingest, OTLP/gRPC | **%.0f spans/s** over %.1fs |\n", rate, r.load.elapsed.Seconds())
	fmt.Fprintf(w, "| raw ceiling: bare pgx COPY of the same rows, same tables, %d connections | %.0f rows/s |\n", o.workers, raw)
	fmt.Fprintf(w, "| ratio end-to-end / ceiling | **%.2f** |\n", rate/raw)
	per := func(d time.Duration, n int64) float64 { return float64(d.Microseconds()) / float64(n) }
	fmt.Fprintf(w, "| CPU per span: Vigil | %.1f µs |\n", per(r.vigilCPU, r.rows))
	fmt.Fprintf(w, "| CPU per span: PostgreSQL (during Vigil ingest) | %.1f µs |\n", per(r.pgCPU, r.rows))
	fmt.Fprintf(w, "| CPU per span: load generator | %.1f µs |\n", per(r.load.generator, r.rows))
	fmt.Fprintf(w, "| CPU per row: PostgreSQL (raw COPY) | %.1f µs |\n", per(r.rawPgCPU, r.rawRows))
	fmt.Fprintf(w, "| bytes on disk per span (heap + indexes + TOAST) | **%.0f B** (heap %.0f B", float64(r.bytesTotal)/float64(r.rows), float64(r.bytesHeap)/float64(r.rows))
	var names []string
	for n := range r.bytesIndexes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, ", %s %.0f B", n, float64(r.bytesIndexes[n])/float64(r.rows))
	}
	fmt.Fprintf(w, ") |\n")
	p50, p99 := percentiles(r.traceLatency)
	fmt.Fprintf(w, "| GET /api/traces/{id} (%d random ids) | p50 %.1f ms, p99 %.1f ms |\n", len(r.traceLatency), ms(p50), ms(p99))
	fmt.Fprintf(w, "| Vigil peak RSS during ingest | %.0f MiB |\n", float64(r.peakRSS)/(1<<20))
	if n := r.pipeline["vigil_pipeline_batch_spans_count"]; n > 0 {
		fmt.Fprintf(w, "| pipeline: batches, mean spans per batch, mean write+commit time | %.0f, %.0f, %.1f ms |\n",
			n, r.pipeline["vigil_pipeline_batch_spans_sum"]/n,
			1000*r.pipeline[`vigil_pipeline_commit_duration_seconds_sum{signal="traces"}`]/
				r.pipeline[`vigil_pipeline_commit_duration_seconds_count{signal="traces"}`])
	}
	if r.load.firstErr != "" {
		fmt.Fprintf(w, "\nfirst export error: %s\n", r.load.firstErr)
	}
	fmt.Fprintf(w, "\ntrace search, service + one filter, last %s, limit 20 (%d spans over the last %s; %d queries per filter, rotating over the %d services)\n\n",
		o.spread, r.rows, o.spread, o.queries, len(services))
	fmt.Fprintf(w, "| filter | p50 | p99 | traces found (mean) | searches reported incomplete |\n|---|---|---|---|---|\n")
	for _, sr := range r.searches {
		p50, p99 := percentiles(sr.latency)
		fmt.Fprintf(w, "| %s | %.1f ms | %.1f ms | %.1f | %d |\n", sr.name, ms(p50), ms(p99),
			float64(sr.found)/float64(max(1, len(sr.latency))), sr.truncated)
	}
}

// searchResult is the latency of one search filter.
type searchResult struct {
	name      string
	latency   []time.Duration
	found     int // traces returned, summed over the queries
	truncated int // answers whose errors said the search stopped early
}

// searchFilter is one filter of the per-filter search table: the query
// parameters besides service, lookback and limit, for the service with
// index si.
type searchFilter struct {
	name   string
	params func(si int) url.Values
}

// searchFilters are the filters an SRE starts an incident with, each on
// its own, with the shares refresh draws.
var searchFilters = []searchFilter{
	{"tag matching nothing (http.request.method=PATCH)", func(int) url.Values {
		return url.Values{"tags": {`{"http.request.method":"PATCH"}`}}
	}},
	{"rare tag, 0.01% of spans (http.request.method=DELETE)", func(int) url.Values {
		return url.Values{"tags": {`{"http.request.method":"DELETE"}`}}
	}},
	{"common tag, 10% of spans (http.request.method=POST)", func(int) url.Values {
		return url.Values{"tags": {`{"http.request.method":"POST"}`}}
	}},
	{"error=true, 1% of spans", func(int) url.Values {
		return url.Values{"tags": {`{"error":"true"}`}}
	}},
	{"resource attribute (host.name, 1 host of 8)", func(si int) url.Values {
		return url.Values{"tags": {fmt.Sprintf(`{"host.name":%q}`, hostName(services[si], 3))}}
	}},
	{"operation (the service's first)", func(si int) url.Values {
		return url.Values{"operation": {tracePlan[planOf(si)[0]].name}}
	}},
	{"minDuration 199ms (above the p99, 0.5% of spans)", func(int) url.Values {
		return url.Values{"minDuration": {"199ms"}}
	}},
	{"two tags (host.name and http.request.method=POST)", func(si int) url.Values {
		return url.Values{"tags": {fmt.Sprintf(`{"host.name":%q,"http.request.method":"POST"}`, hostName(services[si], 3))}}
	}},
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(p float64) time.Duration {
		return s[int(math.Min(float64(len(s)-1), math.Ceil(p*float64(len(s)))-1))]
	}
	return at(0.50), at(0.99)
}

// createDB creates a fresh database and returns its URL and a drop func.
func createDB(ctx context.Context, adminURL, prefix string, keep bool) (string, func(), error) {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect %s: %w", adminURL, err)
	}
	defer admin.Close(ctx)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, _ := url.Parse(adminURL)
	u.Path = "/" + name
	drop := func() {
		if keep {
			return
		}
		c, err := pgx.Connect(context.Background(), adminURL)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}

// vigilProc is a running vigil binary: its pid, the addresses it bound
// (from its "serving" and "jaeger receivers" log lines) and how to stop it.
type vigilProc struct {
	pid   int
	addrs map[string]string // http, otlp_grpc, otlp_http, udp_compact, udp_binary, grpc, zipkin (jaeger "http" is jaeger_http)
	stop  func() error
}

// startVigil runs the binary on dbURL with OTLP/gRPC, and with every other
// receiver too when all is set, each on a free loopback port; env is added
// to its environment ("KEY=value").
func startVigil(ctx context.Context, bin, dbURL string, all bool, env ...string) (*vigilProc, error) {
	return startVigilWith(ctx, bin, dbURL, all, nil, env...)
}

// startVigilWith is startVigil with extra command-line arguments.
func startVigilWith(ctx context.Context, bin, dbURL string, all bool, extra []string, env ...string) (*vigilProc, error) {
	args := []string{"serve", "--db", dbURL, "--http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--log-format", "json"}
	recv := []string{"--otlp-http", "--jaeger-udp-compact", "--jaeger-udp-binary", "--jaeger-http", "--jaeger-grpc", "--zipkin"}
	for _, f := range recv {
		if all {
			args = append(args, f+"=127.0.0.1:0")
		} else {
			args = append(args, f+"=")
		}
	}
	// The registry is off unless extra turns it on (a later flag wins).
	args = append(args, "--consul-api=")
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	ready := make(chan map[string]string, 1)
	go func() {
		addrs := map[string]string{}
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && !sent {
				switch rec["msg"] {
				case "serving":
					for _, k := range []string{"http", "otlp_grpc", "otlp_http"} {
						addrs[k], _ = rec[k].(string)
					}
				case "jaeger receivers":
					for _, k := range []string{"udp_compact", "udp_binary", "grpc", "zipkin"} {
						addrs[k], _ = rec[k].(string)
					}
					addrs["jaeger_http"], _ = rec["http"].(string)
				}
				if addrs["http"] != "" && (!all || addrs["zipkin"] != "") {
					ready <- addrs
					sent = true
				}
			}
			if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
				fmt.Fprintln(os.Stderr, "vigil:", line)
			}
		}
	}()
	select {
	case addrs := <-ready:
		return &vigilProc{pid: cmd.Process.Pid, addrs: addrs, stop: func() error {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return cmd.Wait()
		}}, nil
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("vigil did not start within 60s")
	}
}

func run(ctx context.Context, o options, logger *slog.Logger) (*report, error) {
	rep := &report{bytesIndexes: map[string]int64{}}
	dbURL, drop, err := createDB(ctx, o.adminURL, "vigil_bench_", o.keep)
	if err != nil {
		return nil, err
	}
	defer drop()
	bin, _ := filepath.Abs(o.vigilBin)
	vp, err := startVigil(ctx, bin, dbURL, false)
	if err != nil {
		return nil, err
	}
	pid, httpAddr, grpcAddr, stopVigil := vp.pid, vp.addrs["http"], vp.addrs["otlp_grpc"], vp.stop
	logger.Info("vigil started", "pid", pid, "http", httpAddr, "grpc", grpcAddr)

	vcpu0, pg0 := procCPU(pid), postgresCPU()
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
	rep.load, err = generate(ctx, grpcAddr, o)
	close(rssStop)
	rssWG.Wait()
	if err != nil {
		_ = stopVigil()
		return nil, err
	}
	rep.vigilCPU, rep.pgCPU = procCPU(pid)-vcpu0, postgresCPU()-pg0
	logger.Info("ingest done", "acked", rep.load.acked, "elapsed", rep.load.elapsed)

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM spans").Scan(&rep.rows); err != nil {
		return nil, fmt.Errorf("count spans: %w", err)
	}
	if err := measureSize(ctx, pool, rep); err != nil {
		return nil, err
	}

	base := "http://" + httpAddr
	rep.pipeline = scrapePipeline(base)
	if err := measureQueries(ctx, pool, base, o, rep); err != nil {
		return nil, err
	}
	if err := stopVigil(); err != nil {
		logger.Warn("vigil exit", "err", err)
	}

	raw, err := rawCopyTable(ctx, o, pool, "spans", "vigil_bench_raw_", 0, logger)
	rep.rawRows, rep.rawElapsed, rep.rawPgCPU = raw.rows, raw.elapsed, raw.pgCPU
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// measureSize sums the partitions of spans, heap and each index.
func measureSize(ctx context.Context, pool *pgxpool.Pool, rep *report) error {
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(inhrelid)),0),
		coalesce(sum(pg_table_size(inhrelid)),0) FROM pg_inherits WHERE inhparent = 'spans'::regclass`).
		Scan(&rep.bytesTotal, &rep.bytesHeap)
	if err != nil {
		return fmt.Errorf("table size: %w", err)
	}
	// The search index of spans (span_tags, migration 0014) counts in
	// the bytes of a span.
	var tags int64
	err = pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(inhrelid)),0)
		FROM pg_inherits WHERE inhparent = to_regclass('span_tags')`).Scan(&tags)
	if err != nil {
		return fmt.Errorf("span_tags size: %w", err)
	}
	if tags > 0 {
		rep.bytesTotal += tags
		rep.bytesIndexes["span_tags (rows and index)"] = tags
	}
	rows, err := pool.Query(ctx, `SELECT pi.relname, sum(pg_relation_size(i.indexrelid))::bigint
		FROM pg_inherits h JOIN pg_index i ON i.indrelid = h.inhrelid
		JOIN pg_inherits ih ON ih.inhrelid = i.indexrelid JOIN pg_class pi ON pi.oid = ih.inhparent
		WHERE h.inhparent = 'spans'::regclass GROUP BY pi.relname`)
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

func measureQueries(ctx context.Context, pool *pgxpool.Pool, base string, o options, rep *report) error {
	rows, err := pool.Query(ctx, "SELECT DISTINCT trace_id FROM spans TABLESAMPLE SYSTEM (1) LIMIT $1", o.queries)
	if err != nil {
		return fmt.Errorf("sample trace ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
	if err != nil {
		return fmt.Errorf("sample trace ids: %w", err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(u string) (time.Duration, []byte, error) {
		start := time.Now()
		resp, err := client.Get(u)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return 0, nil, fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, body)
		}
		return time.Since(start), body, err
	}
	for _, id := range ids {
		d, _, err := get(base + "/api/traces/" + hex.EncodeToString(id[:]))
		if err != nil {
			return err
		}
		rep.traceLatency = append(rep.traceLatency, d)
	}
	for _, f := range searchFilters {
		sr := searchResult{name: f.name}
		for i := 0; i < o.queries; i++ {
			si := i % len(services)
			q := f.params(si)
			q.Set("service", services[si])
			q.Set("lookback", fmt.Sprintf("%dm", int(o.spread.Minutes())))
			q.Set("limit", "20")
			d, body, err := get(base + "/api/traces?" + q.Encode())
			if err != nil {
				return err
			}
			var env struct {
				Data   []json.RawMessage `json:"data"`
				Errors []struct {
					Msg string `json:"msg"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(body, &env); err != nil {
				return fmt.Errorf("search %s: %w", f.name, err)
			}
			sr.found += len(env.Data)
			if len(env.Errors) > 0 {
				sr.truncated++
			}
			sr.latency = append(sr.latency, d)
		}
		rep.searches = append(rep.searches, sr)
	}
	return nil
}

// rawResult is one raw-ceiling measurement.
type rawResult struct {
	rows    int64
	elapsed time.Duration
	pgCPU   time.Duration
}

// rawCopyTable reads back up to limit rows Vigil stored in table (0 = all)
// and writes them with bare pgx COPY into a fresh database (name prefix
// dbPrefix) with the same schema and indexes, from o.workers connections in
// chunks of 5,000 rows: the ceiling Vigil's end-to-end rate is compared
// with. PostgreSQL's CPU is measured over the copy alone.
func rawCopyTable(ctx context.Context, o options, src *pgxpool.Pool, table, dbPrefix string, limit int, logger *slog.Logger) (rawResult, error) {
	sql := "SELECT * FROM " + pgx.Identifier{table}.Sanitize()
	if limit > 0 {
		sql += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := src.Query(ctx, sql)
	if err != nil {
		return rawResult{}, fmt.Errorf("read rows: %w", err)
	}
	var cols []string
	for _, f := range rows.FieldDescriptions() {
		cols = append(cols, f.Name)
	}
	// Values() returns uuid as [16]uint8, which pgx encodes back as uuid.
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
	if err != nil {
		return rawResult{}, fmt.Errorf("read rows: %w", err)
	}
	dst, drop, err := newRawDB(ctx, o, dbPrefix)
	if err != nil {
		return rawResult{}, err
	}
	defer drop()
	const chunk = 5000
	next := make(chan [][]any)
	var wg sync.WaitGroup
	var copyErr error
	var once sync.Once
	pg0 := postgresCPU()
	start := time.Now()
	for w := 0; w < o.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for part := range next {
				if _, err := dst.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(part)); err != nil {
					once.Do(func() { copyErr = err })
				}
			}
		}()
	}
	for i := 0; i < len(all); i += chunk {
		next <- all[i:min(i+chunk, len(all))]
	}
	close(next)
	wg.Wait()
	res := rawResult{rows: int64(len(all)), elapsed: time.Since(start), pgCPU: postgresCPU() - pg0}
	logger.Info("raw copy done", "table", table, "rows", res.rows, "elapsed", res.elapsed)
	return res, copyErr
}

// newRawDB creates a fresh database (name prefix dbPrefix) with Vigil's
// schema and the partitions of the last day, and returns a pool
// of o.workers warm connections on it and a func that closes the pool and
// drops the database.
func newRawDB(ctx context.Context, o options, dbPrefix string) (*pgxpool.Pool, func(), error) {
	rawURL, drop, err := createDB(ctx, o.adminURL, dbPrefix, o.keep)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*pgxpool.Pool, func(), error) {
		drop()
		return nil, nil, err
	}
	pcfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return fail(fmt.Errorf("parse %s: %w", rawURL, err))
	}
	pcfg.MaxConns = int32(o.workers) + 1
	dst, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fail(fmt.Errorf("connect raw database: %w", err))
	}
	if _, err := postgres.Migrate(ctx, dst, nil); err != nil {
		dst.Close()
		return fail(err)
	}
	// Every generated row lies within the last day. Tables partitioned by
	// window get only current ones from Maintain: create every hour's of
	// the last 26 hours too.
	parts := postgres.NewPartitions(dst, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour})
	var hours []time.Time
	for h := time.Now().Add(-26 * time.Hour); h.Before(time.Now().Add(time.Hour)); h = h.Add(time.Hour) {
		hours = append(hours, h)
	}
	if err := errors.Join(parts.Maintain(ctx), parts.Ensure(ctx, hours)); err != nil {
		dst.Close()
		return fail(err)
	}
	// Warm the connections so the timing excludes connection set-up.
	var conns []*pgxpool.Conn
	for i := 0; i < o.workers; i++ {
		c, err := dst.Acquire(ctx)
		if err != nil {
			dst.Close()
			return fail(fmt.Errorf("connect raw database: %w", err))
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
	return dst, func() { dst.Close(); drop() }, nil
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// procCPU returns user+system CPU time of pid.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name.
	s := string(b)
	s = s[strings.LastIndexByte(s, ')')+2:]
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * time.Second / clockTicks
}

// postgresCPU sums the CPU time of every postgres process on the machine.
func postgresCPU() time.Duration {
	var total time.Duration
	for pid := range postgresPIDs {
		total += procCPU(pid)
	}
	return total
}

// postgresPIDs yields the pid of every postgres process on the machine.
func postgresPIDs(yield func(pid int) bool) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || !strings.HasPrefix(string(comm), "postgres") {
			continue
		}
		if !yield(pid) {
			return
		}
	}
}

// selfCPU returns this process's CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS reads VmHWM of pid in bytes.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// scrapePipeline reads the pipeline's _sum and _count series from Vigil's
// /metrics.
func scrapePipeline(base string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, "vigil_pipeline_") {
			continue
		}
		if f, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = f
		}
	}
	return out
}
