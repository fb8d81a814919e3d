package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-obs/vigil/ingest/pipeline"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/logstore"
)

// rawLogMark is the row count at which the raw ceiling's rate is also
// reported: the size of the sample earlier runs copied, for comparison.
const rawLogMark = 2_000_000

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
	analyze      time.Duration // ANALYZE logs after the first query phase
	vacuum       time.Duration // VACUUM logs after the second
	rawRows      int64
	rawElapsed   time.Duration
	rawPgCPU     time.Duration
	rawMark      rawResult     // the raw ceiling over its first rawLogMark rows
	rawReadCPU   time.Duration // this process's CPU during the raw copy (reading the rows back)
	// The raw ceiling in arrival order (by observed_time, the export
	// time), in COPYs of Vigil's mean batch over its writers' count.
	arrival     rawResult
	arrivalSpec rawCopySpec
	// The query figures: right after the ingest, after ANALYZE, after
	// VACUUM of logs, and after compaction.
	queries []*logQueryPhase
	// queryFailures counts API answers other than 200 (e.g. 504 at Vigil's
	// 30 s query deadline); queryFirstErr is the first.
	queryFailures int
	queryFirstErr string
	// Compaction of every window but the newest into log_blocks.
	compact    logstore.CompactStats
	compactErr error
	after      logSize    // logs and log_blocks after compaction
	rawAfter   int64      // rows left in logs after compaction
	tailLoad   tailResult // live tail during the ingest
	tailIdle   tailResult // live tail after it
	pipeline   map[string]float64
}

// logSize is the size of the log tables: total (heap, TOAST, indexes),
// heap with TOAST, and each index by parent name.
type logSize struct {
	total, heap int64
	indexes     map[string]int64
}

// logQueryPhase holds the query figures of one phase of the run.
type logQueryPhase struct {
	name     string
	search   []time.Duration
	searchZH []time.Duration
	// The same searches over the windows before the newest only (ending
	// at its start): after compaction, answered from blocks alone.
	searchOld, searchOldZH   []time.Duration
	searchOldHits, oldZHHits int
	traceLookup              []time.Duration
	histogram                []time.Duration
	searchHits               int // records returned over all rare-word searches
	searchZHHits             int
	traceHits                int
	searchCapped             bool   // a search series stopped at searchBudget
	answers                  string // the first answer of each series and every trace lookup, to compare phases
	histTotal                int64  // records counted by the first histogram
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
	// Vigil's own compactor is off: this run compacts at a chosen point,
	// between two query phases, and times it alone.
	cfgFile := filepath.Join(os.TempDir(), fmt.Sprintf("vigil-bench-logs-%d.yaml", os.Getpid()))
	writers := pipeline.DefaultLogConfig().Writers
	if o.logWriters > 0 {
		writers = o.logWriters
	}
	cfg := fmt.Sprintf("logs:\n  compaction: false\n  pipeline:\n    writers: %d\n", writers)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return err
	}
	defer os.Remove(cfgFile)
	vp, err := startVigilWith(ctx, bin, dbURL, false, []string{"--config", cfgFile})
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
	var profWG sync.WaitGroup
	if o.cpuProfile != "" {
		profWG.Go(func() {
			if err := fetchProfile(ctx, "http://"+httpAddr, o.cpuProfile, 5*time.Second, 20*time.Second); err != nil {
				logger.Warn("cpu profile", "err", err)
			}
		})
	}
	vcpu0, pg0 := procCPU(pid), postgresCPU()
	rep.load = generateLogs(ctx, client, o)
	rep.vigilCPU, rep.pgCPU = procCPU(pid)-vcpu0, postgresCPU()-pg0
	profWG.Wait()
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
	// Every phase queries the same range, so that their answers compare.
	qr := queryRange{start: time.Now().Add(-24 * time.Hour).UTC(), end: time.Now().Add(time.Second).UTC()}
	base := "http://" + httpAddr
	traceIDs, err := sampleTraceIDs(ctx, pool, o.queries)
	if err != nil {
		return err
	}
	phase := func(name string) error {
		ph := &logQueryPhase{name: name}
		rep.queries = append(rep.queries, ph)
		logger.Info("queries", "phase", name)
		return measureLogQueries(ctx, base, o, qr, traceIDs, rep, ph)
	}
	if err := phase("right after the ingest"); err != nil {
		return err
	}
	// What differs after the ingest: statistics (ANALYZE), then what only
	// VACUUM does (the GIN pending lists merged, hint bits and the
	// visibility map set).
	began := time.Now()
	if _, err := pool.Exec(ctx, "ANALYZE logs"); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	rep.analyze = time.Since(began)
	if err := phase("after ANALYZE logs"); err != nil {
		return err
	}
	began = time.Now()
	if _, err := pool.Exec(ctx, "VACUUM logs"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	rep.vacuum = time.Since(began)
	if err := phase("after VACUUM logs"); err != nil {
		return err
	}
	rep.pipeline = scrapePipeline(base)

	// The raw ceilings read their rows from logs: before compaction.
	// First in the order PostgreSQL stores them (partition by partition),
	// 5,000 rows per COPY over o.workers connections.
	raw, err := rawCopyStream(ctx, o, pool, "logs", "vigil_bench_logs_raw_", rawCopySpec{chunk: 5000, conns: o.workers}, rep, logger)
	rep.rawRows, rep.rawElapsed, rep.rawPgCPU = raw.rows, raw.elapsed, raw.pgCPU
	if err != nil {
		return err
	}
	// Then as Vigil received them: in export order, in COPYs of Vigil's
	// mean batch size, over as many connections as the log pipeline has
	// writers.
	spec := rawCopySpec{order: "observed_time, id", chunk: 1000, conns: writers}
	if n := rep.pipeline["vigil_pipeline_batch_log_records_count"]; n > 0 {
		spec.chunk = max(1, int(rep.pipeline["vigil_pipeline_batch_log_records_sum"]/n+0.5))
	}
	rep.arrival, err = rawCopyStream(ctx, o, pool, "logs", "vigil_bench_logs_arrival_", spec, nil, logger)
	rep.arrivalSpec = spec
	if err != nil {
		return err
	}

	// Compaction of every window but the newest, as Vigil's compactor
	// does them once closed, then the same queries.
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour})
	rep.compact, rep.compactErr = logstore.New(pool, parts).Compact(ctx, postgres.PeriodStart(time.Now(), postgres.LogWindow))
	logger.Info("compacted", "stats", fmt.Sprintf("%+v", rep.compact), "err", rep.compactErr)
	if rep.compactErr == nil {
		if _, err := pool.Exec(ctx, "ANALYZE log_blocks"); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
		if rep.after, err = logTablesSize(ctx, pool, "logs", "log_blocks"); err != nil {
			return err
		}
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM logs").Scan(&rep.rawAfter); err != nil {
			return fmt.Errorf("count raw logs: %w", err)
		}
		if err := phase("after compaction"); err != nil {
			return err
		}
		if err := phase("after compaction, second pass"); err != nil {
			return err
		}
	}
	stopVigil()
	rep.print(w, o)
	return nil
}

// rawCopySpec shapes one raw ceiling: the order the rows are read in
// (an ORDER BY list; empty for the order PostgreSQL stores them, i.e.
// partition by partition), the rows per COPY and the connections writing.
type rawCopySpec struct {
	order string
	chunk int
	conns int
}

// rawCopyStream is a raw ceiling over every row of table: PostgreSQL's
// own binary COPY of them out of src (COPY (SELECT * … ORDER BY
// spec.order) TO STDOUT), cut into chunks of spec.chunk rows as they
// stream and written by spec.conns connections with binary COPY FROM into
// a freshly migrated database: the rows travel as the bytes PostgreSQL
// wrote, nothing is decoded, and the ceiling's tables grow to the size
// Vigil's did. The clock starts when the first chunk is ready, so that a
// sort for spec.order is not counted. When rep is not nil it records there
// when the first rawLogMark rows were committed, and this process's CPU.
func rawCopyStream(ctx context.Context, o options, src *pgxpool.Pool, table, dbPrefix string, spec rawCopySpec, rep *logsReport, logger *slog.Logger) (rawResult, error) {
	dst, drop, err := newRawDB(ctx, o, dbPrefix)
	if err != nil {
		return rawResult{}, err
	}
	defer drop()
	srcConn, err := src.Acquire(ctx)
	if err != nil {
		return rawResult{}, err
	}
	defer srcConn.Release()
	ident := pgx.Identifier{table}.Sanitize()
	query := "COPY (SELECT * FROM " + ident + ") TO STDOUT (FORMAT binary)"
	if spec.order != "" {
		query = "COPY (SELECT * FROM " + ident + " ORDER BY " + spec.order + ") TO STDOUT (FORMAT binary)"
	}
	first := make(chan []byte, 1)
	next := make(chan []byte, spec.conns)
	pr, pw := io.Pipe()
	go func() {
		_, err := srcConn.Conn().PgConn().CopyTo(ctx, pw, query)
		pw.CloseWithError(err)
	}()
	// The first chunk is read before the clock starts: a sort for
	// spec.order happens before PostgreSQL sends the first row.
	readDone := make(chan error, 1)
	go func() {
		out := make(chan []byte)
		go func() {
			readDone <- splitCopyStream(bufio.NewReaderSize(pr, 1<<20), spec.chunk, out)
			close(out)
		}()
		sent := false
		for part := range out {
			if !sent {
				first <- part
				sent = true
				continue
			}
			next <- part
		}
		if !sent {
			close(first)
		}
		close(next)
	}()
	part0, ok := <-first
	var (
		wg       sync.WaitGroup
		copyErr  error
		once     sync.Once
		markOnce sync.Once
		copied   atomic.Int64
	)
	pg0, self0 := postgresCPU(), procCPU(os.Getpid())
	start := time.Now()
	// The writers' queue: the first chunk, then the others.
	parts := make(chan []byte, spec.conns)
	go func() {
		if ok {
			parts <- part0
		}
		for p := range next {
			parts <- p
		}
		close(parts)
	}()
	for w := 0; w < spec.conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dst.Acquire(ctx)
			if err != nil {
				once.Do(func() { copyErr = err })
				for range parts {
				}
				return
			}
			defer c.Release()
			for part := range parts {
				tag, err := c.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(part), "COPY "+ident+" FROM STDIN (FORMAT binary)")
				if err != nil {
					once.Do(func() { copyErr = err })
					continue
				}
				n := copied.Add(tag.RowsAffected())
				if rep != nil && n >= rawLogMark && n-tag.RowsAffected() < rawLogMark {
					markOnce.Do(func() { rep.rawMark = rawResult{rows: n, elapsed: time.Since(start), pgCPU: postgresCPU() - pg0} })
				}
			}
		}()
	}
	wg.Wait()
	res := rawResult{rows: copied.Load(), elapsed: time.Since(start), pgCPU: postgresCPU() - pg0}
	readErr := <-readDone
	_ = pr.CloseWithError(io.ErrClosedPipe) // let the COPY TO end if the split stopped early
	if rep != nil {
		rep.rawReadCPU = procCPU(os.Getpid()) - self0
	}
	logger.Info("raw copy done", "table", table, "order", spec.order, "chunk", spec.chunk, "conns", spec.conns, "rows", res.rows, "elapsed", res.elapsed)
	return res, errors.Join(readErr, copyErr)
}

// copySignature starts a binary COPY stream.
var copySignature = []byte("PGCOPY\n\xff\r\n\x00")

// splitCopyStream reads a binary COPY stream from r and sends it on out as
// complete binary COPY streams of at most n rows each.
func splitCopyStream(r *bufio.Reader, n int, out chan<- []byte) error {
	head := make([]byte, len(copySignature)+8)
	if _, err := io.ReadFull(r, head); err != nil {
		return fmt.Errorf("copy stream header: %w", err)
	}
	if !bytes.Equal(head[:len(copySignature)], copySignature) {
		return errors.New("copy stream: bad signature")
	}
	if ext := binary.BigEndian.Uint32(head[len(copySignature)+4:]); ext > 0 {
		if _, err := io.CopyN(io.Discard, r, int64(ext)); err != nil {
			return fmt.Errorf("copy stream header: %w", err)
		}
	}
	newPart := func() []byte {
		b := make([]byte, 0, 4<<20)
		b = append(b, copySignature...)
		return append(b, 0, 0, 0, 0, 0, 0, 0, 0) // no flags, no extension
	}
	part, rows := newPart(), 0
	var word [4]byte
	for {
		if _, err := io.ReadFull(r, word[:2]); err != nil {
			return fmt.Errorf("copy stream: %w", err)
		}
		fields := int16(binary.BigEndian.Uint16(word[:2]))
		if fields == -1 {
			break
		}
		part = append(part, word[:2]...)
		for range fields {
			if _, err := io.ReadFull(r, word[:4]); err != nil {
				return fmt.Errorf("copy stream: %w", err)
			}
			part = append(part, word[:4]...)
			if l := int32(binary.BigEndian.Uint32(word[:4])); l > 0 {
				at := len(part)
				part = append(part, make([]byte, l)...)
				if _, err := io.ReadFull(r, part[at:]); err != nil {
					return fmt.Errorf("copy stream: %w", err)
				}
			}
		}
		if rows++; rows == n {
			out <- binary.BigEndian.AppendUint16(part, 0xffff)
			part, rows = newPart(), 0
		}
	}
	if rows > 0 {
		out <- binary.BigEndian.AppendUint16(part, 0xffff)
	}
	return nil
}

// queryRange is the time range every query phase searches.
type queryRange struct{ start, end time.Time }

// sampleTraceIDs returns up to n distinct stored trace ids.
func sampleTraceIDs(ctx context.Context, pool *pgxpool.Pool, n int) ([][16]byte, error) {
	rows, err := pool.Query(ctx, "SELECT DISTINCT trace_id FROM logs TABLESAMPLE SYSTEM (1) WHERE trace_id IS NOT NULL LIMIT $1", n)
	if err != nil {
		return nil, fmt.Errorf("sample trace ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
	if err != nil {
		return nil, fmt.Errorf("sample trace ids: %w", err)
	}
	return ids, nil
}

// logTablesSize sums the partitions of tables after a CHECKPOINT: heap
// (with TOAST) and each index.
func logTablesSize(ctx context.Context, pool *pgxpool.Pool, tables ...string) (logSize, error) {
	out := logSize{indexes: map[string]int64{}}
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return out, fmt.Errorf("checkpoint: %w", err)
	}
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(inhrelid)),0)::bigint,
		coalesce(sum(pg_table_size(inhrelid)),0)::bigint FROM pg_inherits WHERE inhparent::regclass::text = ANY($1)`, tables).
		Scan(&out.total, &out.heap)
	if err != nil {
		return out, fmt.Errorf("table size: %w", err)
	}
	rows, err := pool.Query(ctx, `SELECT pi.relname, sum(pg_relation_size(i.indexrelid))::bigint
		FROM pg_inherits h JOIN pg_index i ON i.indrelid = h.inhrelid
		JOIN pg_inherits ih ON ih.inhrelid = i.indexrelid JOIN pg_class pi ON pi.oid = ih.inhparent
		WHERE h.inhparent::regclass::text = ANY($1) GROUP BY pi.relname`, tables)
	if err != nil {
		return out, fmt.Errorf("index sizes: %w", err)
	}
	var name string
	var size int64
	_, err = pgx.ForEachRow(rows, []any{&name, &size}, func() error {
		out.indexes[name] = size
		return nil
	})
	return out, err
}

// measureLogSize measures logs (see logTablesSize) into rep.
func measureLogSize(ctx context.Context, pool *pgxpool.Pool, rep *logsReport) error {
	size, err := logTablesSize(ctx, pool, "logs")
	rep.bytesTotal, rep.bytesHeap, rep.bytesIndexes = size.total, size.heap, size.indexes
	return err
}

// searchBudget bounds the wall time of each query series, so that a slow
// plan cannot hold the run for o.queries × its latency.
const searchBudget = 90 * time.Second

// measureLogQueries times, over r: o.queries searches for each rare word
// (default limit, 100), o.queries volume histograms of every record
// (default buckets) and a lookup of each of traceIDs, each from request
// start to the last byte of the answer; a series stops early after
// searchBudget.
func measureLogQueries(ctx context.Context, base string, o options, r queryRange, traceIDs [][16]byte, rep *logsReport, ph *logQueryPhase) error {
	client := &http.Client{Timeout: 60 * time.Second}
	var answers strings.Builder
	// get returns the latency of GET u, its body and the records it
	// returned; an answer other than 200 is counted in rep.queryFailures
	// (its latency kept: it is what the user waited for) and is not an
	// error.
	get := func(u string) (time.Duration, []byte, int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return 0, nil, 0, err
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, 0, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		d := time.Since(start)
		if err != nil {
			return 0, nil, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			rep.queryFailures++
			if rep.queryFirstErr == "" {
				rep.queryFirstErr = fmt.Sprintf("GET %s: %d %s", u, resp.StatusCode, body)
			}
			return d, nil, 0, nil
		}
		var env struct {
			Data []json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			return 0, nil, 0, fmt.Errorf("GET %s: %w", u, err)
		}
		return d, body, len(env.Data), nil
	}
	rng := url.Values{"start": {r.start.Format(time.RFC3339Nano)}, "end": {r.end.Format(time.RFC3339Nano)}}
	with := func(k, v string) string {
		q := url.Values{k: {v}}
		for k, v := range rng {
			q[k] = v
		}
		return q.Encode()
	}
	// Ending at the start of the newest window, which compaction leaves raw.
	oldEnd := postgres.PeriodStart(r.end, postgres.LogWindow).Add(-time.Microsecond)
	old := func(word string) string {
		return url.Values{"q": {word}, "start": {r.start.Format(time.RFC3339Nano)}, "end": {oldEnd.Format(time.RFC3339Nano)}}.Encode()
	}
	for _, s := range []struct {
		u    string
		lat  *[]time.Duration
		hits *int
	}{
		{base + "/api/logs?" + with("q", rareWord), &ph.search, &ph.searchHits},
		{base + "/api/logs?" + with("q", rareWordZH), &ph.searchZH, &ph.searchZHHits},
		{base + "/api/logs?" + old(rareWord), &ph.searchOld, &ph.searchOldHits},
		{base + "/api/logs?" + old(rareWordZH), &ph.searchOldZH, &ph.oldZHHits},
		{base + "/api/logs/histogram?" + rng.Encode(), &ph.histogram, nil},
	} {
		began := time.Now()
		for i := range o.queries {
			if time.Since(began) > searchBudget {
				ph.searchCapped = true
				break
			}
			d, body, n, err := get(s.u)
			if err != nil {
				return err
			}
			*s.lat = append(*s.lat, d)
			if s.hits != nil {
				*s.hits += n
			}
			if i == 0 {
				answers.Write(body)
				if s.hits == nil {
					var h struct {
						Data []struct {
							Count int64 `json:"count"`
						} `json:"data"`
					}
					_ = json.Unmarshal(body, &h)
					for _, b := range h.Data {
						ph.histTotal += b.Count
					}
				}
			}
		}
	}
	for _, id := range traceIDs {
		d, body, n, err := get(base + "/api/logs?" + with("trace_id", hex.EncodeToString(id[:])))
		if err != nil {
			return err
		}
		ph.traceLookup = append(ph.traceLookup, d)
		ph.traceHits += n
		answers.Write(body)
	}
	ph.answers = answers.String()
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
	fmt.Fprintf(w, "| raw ceiling: the same %d rows as PostgreSQL's binary COPY TO wrote them, binary COPY FROM into fresh tables, %d connections | %.0f rows/s over %.1fs |\n",
		r.rawRows, o.workers, raw, r.rawElapsed.Seconds())
	fmt.Fprintf(w, "| ratio end-to-end / ceiling | **%.2f** |\n", rate/raw)
	if r.arrival.rows > 0 {
		arr := float64(r.arrival.rows) / r.arrival.elapsed.Seconds()
		fmt.Fprintf(w, "| raw ceiling in arrival order: the same %d rows ordered by observed_time (export time), binary COPY FROM in chunks of %d rows (Vigil's mean batch), %d connections (Vigil's log writers) | %.0f rows/s over %.1fs; PostgreSQL %.1f µs per row |\n",
			r.arrival.rows, r.arrivalSpec.chunk, r.arrivalSpec.conns, arr, r.arrival.elapsed.Seconds(), float64(r.arrival.pgCPU.Microseconds())/float64(r.arrival.rows))
		fmt.Fprintf(w, "| ratio end-to-end / arrival-order ceiling | **%.2f** |\n", rate/arr)
	}
	if r.rawMark.rows > 0 && r.rawMark.rows < r.rawRows {
		markRate := float64(r.rawMark.rows) / r.rawMark.elapsed.Seconds()
		fmt.Fprintf(w, "| the same ceiling over its first %d rows only (tables still small; what earlier runs measured) / ratio | %.0f rows/s / %.2f |\n",
			r.rawMark.rows, markRate, rate/markRate)
	}
	per := func(d time.Duration, n int64) float64 { return float64(d.Microseconds()) / float64(n) }
	fmt.Fprintf(w, "| CPU per record: Vigil | %.1f µs |\n", per(r.vigilCPU, bulk))
	fmt.Fprintf(w, "| CPU per record: PostgreSQL (during Vigil ingest) | %.1f µs |\n", per(r.pgCPU, bulk))
	fmt.Fprintf(w, "| CPU per record: load generator | %.1f µs |\n", per(r.load.generator, bulk))
	fmt.Fprintf(w, "| CPU per row: PostgreSQL (raw COPY) / this process reading the rows back | %.1f / %.1f µs |\n",
		per(r.rawPgCPU, r.rawRows), per(r.rawReadCPU, r.rawRows))
	fmt.Fprintf(w, "| bytes on disk per record before compaction (heap + indexes + TOAST) | **%.0f B** (heap %.0f B", float64(r.bytesTotal)/float64(r.rows), float64(r.bytesHeap)/float64(r.rows))
	var names []string
	for n := range r.bytesIndexes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, ", %s %.0f B", n, float64(r.bytesIndexes[n])/float64(r.rows))
	}
	fmt.Fprintf(w, ") |\n")
	for _, ph := range r.queries {
		fmt.Fprintf(w, "| **queries %s** (the same range: the last 24 h) | |\n", ph.name)
		for _, s := range []struct {
			word string
			lat  []time.Duration
			hits int
		}{{rareWord, ph.search, ph.searchHits}, {rareWordZH, ph.searchZH, ph.searchZHHits},
			{rareWord + " (windows before the newest only)", ph.searchOld, ph.searchOldHits},
			{rareWordZH + " (windows before the newest only)", ph.searchOldZH, ph.oldZHHits}} {
			p50, p99 := percentiles(s.lat)
			fmt.Fprintf(w, "| GET /api/logs?q=%s over %d records (%d queries, %.0f records returned each) | p50 %.1f ms, p99 **%.1f ms**; first 5: %s ms |\n",
				s.word, r.rows, len(s.lat), float64(s.hits)/float64(max(1, len(s.lat))), ms(p50), ms(p99), firstMillis(s.lat, 5))
		}
		p50, p99 := percentiles(ph.traceLookup)
		fmt.Fprintf(w, "| GET /api/logs?trace_id= (%d random stored ids, %.1f records each) | p50 %.1f ms, p99 **%.1f ms**; first 5: %s ms |\n",
			len(ph.traceLookup), float64(ph.traceHits)/float64(max(1, len(ph.traceLookup))), ms(p50), ms(p99), firstMillis(ph.traceLookup, 5))
		p50, p99 = percentiles(ph.histogram)
		fmt.Fprintf(w, "| GET /api/logs/histogram (every record, default buckets; %d queries, %d records counted) | p50 %.1f ms, p99 **%.1f ms**; first 5: %s ms |\n",
			len(ph.histogram), ph.histTotal, ms(p50), ms(p99), firstMillis(ph.histogram, 5))
		if ph.searchCapped {
			fmt.Fprintf(w, "| a query series stopped after %s of wall time | yes |\n", searchBudget)
		}
		if ph != r.queries[0] {
			same := "yes"
			if ph.answers != r.queries[0].answers {
				same = "**no**"
			}
			fmt.Fprintf(w, "| answers identical to the first phase's (first answer of each series, every trace lookup) | %s |\n", same)
		}
		if ph == r.queries[1] {
			fmt.Fprintf(w, "| ANALYZE logs before this phase | %.1f s |\n", r.analyze.Seconds())
		}
		if len(r.queries) > 2 && ph == r.queries[2] {
			fmt.Fprintf(w, "| VACUUM logs before this phase | %.1f s |\n", r.vacuum.Seconds())
		}
	}
	if r.queryFailures > 0 {
		fmt.Fprintf(w, "| query answers other than 200 | %d |\n", r.queryFailures)
	}
	if r.compactErr != nil {
		fmt.Fprintf(w, "| **compaction failed** | %v |\n", r.compactErr)
	} else {
		c := r.compact
		fmt.Fprintf(w, "| compaction of every window but the newest (%d windows, %d records into %d blocks, %.0f records each) | %.1f s, **%.0f records/s**; %.0f B of bodies and payloads → %.0f B compressed per record |\n",
			c.Windows, c.Records, c.Blocks, float64(c.Records)/float64(max(1, c.Blocks)), c.Duration.Seconds(),
			float64(c.Records)/c.Duration.Seconds(), float64(c.RawBytes)/float64(max(1, c.Records)), float64(c.Bytes)/float64(max(1, c.Records)))
		fmt.Fprintf(w, "| bytes on disk per record after compaction (logs + log_blocks: heap + indexes + TOAST) | **%.0f B** (heap %.0f B", float64(r.after.total)/float64(r.rows), float64(r.after.heap)/float64(r.rows))
		var names []string
		for n := range r.after.indexes {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, ", %s %.0f B", n, float64(r.after.indexes[n])/float64(r.rows))
		}
		fmt.Fprintf(w, "); %d records still raw (the newest window) |\n", r.rawAfter)
	}
	for _, t := range []struct {
		name string
		res  tailResult
	}{{"during the ingest, 1 probe / 50 ms", r.tailLoad}, {"idle, 1 probe / 20 ms", r.tailIdle}} {
		p50, p99 := percentiles(t.res.latency)
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
