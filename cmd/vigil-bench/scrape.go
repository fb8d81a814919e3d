package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/teststorage"
)

// The scrape benchmark (-signal scrape): -scrape-targets targets of
// -scrape-series series each, scraped every 15 s, first by Vigil (bin/vigil
// serve --scrape-config, a fresh database), then, in the same run and on the
// same targets, by Prometheus's own scrape and discovery managers writing
// into Prometheus's TSDB (util/teststorage) in a child process of this
// program, so that each scraper's CPU is its own. Both read the same
// generated prometheus.yml and run the scrape manager with the same options
// (Vigil's): the difference is the storage underneath.
//
// Each target is an HTTP server of its own on a loopback port in this
// process (so instance is its address, as for a real fleet), answering the
// Prometheus text format from a pre-rendered exposition whose counter
// values change on every request. Every request's arrival is noted by
// target: from the target's side, the interval between two consecutive
// scrapes should be exactly 15 s; its deviation is the schedule's jitter.
//
// For each scraper, after a warm-up of two intervals, over -scrape-rounds
// intervals: its CPU and PostgreSQL's (pgUsage: the benchmark database's
// backends and the server's own processes, not other clients'), the
// scrapes the targets received, the samples of the job stored with a
// timestamp in the window (rows of metric_samples for Vigil, samples of
// the TSDB for Prometheus), the scrape_duration_seconds it recorded, and
// the jitter. Each side starts after a CHECKPOINT once PostgreSQL is idle;
// the CPU of the CHECKPOINT after Vigil's side is reported as its
// deferred work.

// The interval is metrics_load.go's scrapeInterval, 15 s.
const (
	scrapeTimeout = 10 * time.Second
	scrapeJobName = "bench"
	scrapeWarmup  = 2 // intervals before the measured window
	// seriesPerFamily is how many series (code × handler) each metric
	// family of a target's exposition has.
	seriesPerFamily = 10
)

// scrapeCodes are the status codes of a family's series.
var scrapeCodes = []string{"200", "201", "204", "301", "304", "400", "404", "429", "500", "503"}

// scrapeTargets is the fleet the scrapers scrape: one HTTP server per
// target, each on a loopback port of its own, all in this process.
type scrapeTargets struct {
	addrs    []string
	servers  []*http.Server
	lines    [][]byte // per series: the exposition before its value (HELP and TYPE lines included)
	bufs     sync.Pool
	requests []atomic.Int64 // per target, since the start

	mu       sync.Mutex
	arrivals [][]time.Time // per target, since the last reset
}

// startScrapeTargets listens on n loopback ports and serves on each an
// exposition of series series.
func startScrapeTargets(n, series int) (*scrapeTargets, error) {
	t := &scrapeTargets{requests: make([]atomic.Int64, n), arrivals: make([][]time.Time, n)}
	for s := range series {
		f, j := s/seriesPerFamily, s%seriesPerFamily
		name := fmt.Sprintf("bench_http_requests_f%03d_total", f)
		var b []byte
		if j == 0 {
			b = fmt.Appendf(b, "# HELP %s Requests handled by the handlers of family %d.\n# TYPE %s counter\n", name, f, name)
		}
		b = fmt.Appendf(b, "%s{code=%q,handler=\"/api/v1/resource%03d\"} ", name, scrapeCodes[j], f)
		t.lines = append(t.lines, b)
	}
	t.bufs.New = func() any { b := make([]byte, 0, 64*series); return &b }
	for id := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.close()
			return nil, fmt.Errorf("target %d: listen: %w (raise the open files limit, ulimit -n, for many targets)", id, err)
		}
		srv := &http.Server{Handler: t.handler(id), ReadHeaderTimeout: 10 * time.Second}
		t.addrs = append(t.addrs, ln.Addr().String())
		t.servers = append(t.servers, srv)
		go func() { _ = srv.Serve(ln) }()
	}
	return t, nil
}

// handler serves target id: it notes the arrival, then writes every series
// with a value that grows with the target's request count.
func (t *scrapeTargets) handler(id int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		at := time.Now()
		k := t.requests[id].Add(1)
		t.mu.Lock()
		t.arrivals[id] = append(t.arrivals[id], at)
		t.mu.Unlock()
		bp := t.bufs.Get().(*[]byte)
		b := (*bp)[:0]
		for s, line := range t.lines {
			b = append(b, line...)
			b = strconv.AppendInt(b, k*int64(1+s%7)+int64(id), 10)
			b = append(b, '\n')
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(b)
		*bp = b
		t.bufs.Put(bp)
	})
}

// reset forgets every arrival noted so far.
func (t *scrapeTargets) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.arrivals {
		t.arrivals[i] = nil
	}
}

// scraped returns how many targets were scraped at least once since the
// last reset.
func (t *scrapeTargets) scraped() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, a := range t.arrivals {
		if len(a) > 0 {
			n++
		}
	}
	return n
}

// received returns how many requests the targets received since the
// last reset.
func (t *scrapeTargets) received() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, a := range t.arrivals {
		n += len(a)
	}
	return n
}

func (t *scrapeTargets) close() {
	for _, s := range t.servers {
		_ = s.Close()
	}
}

// scheduleStats is what the targets saw of a scraper's schedule over a
// window.
type scheduleStats struct {
	scrapes        int // requests received in the window
	minPer, maxPer int // per target
	// jitter is |interval − 15 s| for every pair of consecutive scrapes
	// of a target in the window.
	jitter []time.Duration
	// lateness is, for every scrape, how much later than its target's
	// earliest phase in the window it arrived: the delay behind the
	// schedule, taking the target's best-case arrival as its schedule
	// (a scrape loop's ticker does not drift).
	lateness []time.Duration
}

// schedule computes the schedule figures over the arrivals in [from, to).
func (t *scrapeTargets) schedule(from, to time.Time) scheduleStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := scheduleStats{minPer: math.MaxInt}
	for _, all := range t.arrivals {
		var in []time.Time
		for _, a := range all {
			if !a.Before(from) && a.Before(to) {
				in = append(in, a)
			}
		}
		st.scrapes += len(in)
		st.minPer, st.maxPer = min(st.minPer, len(in)), max(st.maxPer, len(in))
		if len(in) == 0 {
			continue
		}
		offsets := make([]time.Duration, len(in))
		for i, a := range in {
			if i > 0 {
				d := a.Sub(in[i-1]) - scrapeInterval
				st.jitter = append(st.jitter, max(d, -d))
			}
			since := a.Sub(in[0])
			offsets[i] = since - time.Duration(math.Round(float64(since)/float64(scrapeInterval)))*scrapeInterval
		}
		best := slices.Min(offsets)
		for _, o := range offsets {
			st.lateness = append(st.lateness, o-best)
		}
	}
	if st.minPer == math.MaxInt {
		st.minPer = 0
	}
	return st
}

// scrapeSide holds the figures of one scraper.
type scrapeSide struct {
	name      string
	window    time.Duration
	cpu       time.Duration // the scraper's process
	pgCPU     time.Duration // every postgres process
	selfCPU   time.Duration // this program: the targets
	sched     scheduleStats
	samples   int64     // stored with a timestamp in the window
	scraped   float64   // sum of scrape_samples_scraped in the window
	durations []float64 // scrape_duration_seconds in the window
	up        int       // targets whose last up in the window is 1
	peakRSS   int64     // of the scraper's process, bytes, at the window's end
	// deferredPG is PostgreSQL's CPU from the scraper's stop until it
	// settled after a CHECKPOINT: the flush of what the whole run wrote
	// (Vigil's side only); runScrapes are the scrapes of that run.
	deferredPG time.Duration
	runScrapes int
}

func (s scrapeSide) perScrape(d time.Duration) float64 {
	if s.sched.scrapes == 0 {
		return 0
	}
	return float64(d.Microseconds()) / 1000 / float64(s.sched.scrapes)
}

func (s scrapeSide) perSample(d time.Duration) float64 {
	if s.samples == 0 {
		return 0
	}
	return float64(d.Nanoseconds()) / 1000 / float64(s.samples)
}

// deferredPerScrape is s.deferredPG per scrape of the run, in ms.
func deferredPerScrape(s scrapeSide) float64 {
	if s.runScrapes == 0 {
		return 0
	}
	return float64(s.deferredPG.Microseconds()) / 1000 / float64(s.runScrapes)
}

// scrapeConfigFile writes the prometheus.yml both scrapers read: one job
// of the targets, a static configuration, every 15 s.
func scrapeConfigFile(dir string, addrs []string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n  - job_name: %s\n    static_configs:\n      - targets:\n",
		model.Duration(scrapeInterval), model.Duration(scrapeTimeout), scrapeJobName)
	for _, a := range addrs {
		fmt.Fprintf(&b, "          - %q\n", a)
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", fmt.Errorf("write scrape config: %w", err)
	}
	return path, nil
}

func runScrape(ctx context.Context, o options, logger *slog.Logger, w io.Writer) error {
	if o.scrapeTargets < 1 || o.scrapeSeries < 1 || o.scrapeRounds < 1 {
		return errors.New("-scrape-targets, -scrape-series and -scrape-rounds must be positive")
	}
	dir, err := os.MkdirTemp("", "vigil-bench-scrape-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	targets, err := startScrapeTargets(o.scrapeTargets, o.scrapeSeries)
	if err != nil {
		return err
	}
	defer targets.close()
	cfgPath, err := scrapeConfigFile(dir, targets.addrs)
	if err != nil {
		return err
	}
	logger.Info("scrape benchmark", "targets", o.scrapeTargets, "series", o.scrapeSeries, "rounds", o.scrapeRounds)

	// Each side starts on a settled server, so that buffers left dirty
	// before it are not flushed in its window.
	if _, err := pgSettle(ctx, o.adminURL, "", logger); err != nil {
		logger.Warn("PostgreSQL not settled before Vigil", "err", err)
	}
	vigil, err := scrapeVigil(ctx, o, targets, cfgPath, logger)
	if err != nil {
		return err
	}
	logger.Info("vigil side done", "scrapes", vigil.sched.scrapes, "samples", vigil.samples)
	if _, err := pgSettle(ctx, o.adminURL, "", logger); err != nil {
		logger.Warn("PostgreSQL not settled before Prometheus", "err", err)
	}
	prom, err := scrapePrometheus(ctx, o, targets, cfgPath, dir, logger)
	if err != nil {
		return err
	}
	logger.Info("prometheus side done", "scrapes", prom.sched.scrapes, "samples", prom.samples)
	printScrape(w, o, vigil, prom)
	return nil
}

// scrapeVigil runs Vigil on a fresh database with the scrape
// configuration and measures it.
func scrapeVigil(ctx context.Context, o options, targets *scrapeTargets, cfgPath string, logger *slog.Logger) (scrapeSide, error) {
	side := scrapeSide{name: "Vigil"}
	dbURL, drop, err := createDB(ctx, o.adminURL, "vigil_bench_scrape_", o.keep)
	if err != nil {
		return side, err
	}
	defer drop()
	bin, _ := filepath.Abs(o.vigilBin)
	// No shipped rules and no registry: the process scrapes and nothing
	// else.
	vp, err := startVigilLogged(ctx, bin, dbURL, []string{"--scrape-config", cfgPath, "--default-rules=false", "--consul-api="})
	if err != nil {
		return side, err
	}
	defer func() { _ = vp.stop() }()
	logger.Info("vigil started", "pid", vp.pid, "http", vp.http)

	from, to, err := measureScraper(ctx, o, targets, vp.pid, dbName(dbURL), vp.exited, &side)
	if err != nil {
		return side, vp.failed(err)
	}
	// Let the pipeline commit the window's last scrapes before reading
	// them back.
	if err := sleepCtx(ctx, 5*time.Second, vp.exited); err != nil {
		return side, vp.failed(err)
	}
	base := "http://" + vp.http
	rng := fmt.Sprintf("[%ds]", int(to.Sub(from).Seconds()))
	if side.durations, err = promValues(ctx, base, `scrape_duration_seconds{job="`+scrapeJobName+`"}`+rng, to); err != nil {
		return side, vp.failed(err)
	}
	v, err := promValues(ctx, base, `sum(sum_over_time(scrape_samples_scraped{job="`+scrapeJobName+`"}`+rng+`))`, to)
	if err != nil {
		return side, vp.failed(err)
	}
	if len(v) == 1 {
		side.scraped = v[0]
	}
	if v, err = promValues(ctx, base, `count(up{job="`+scrapeJobName+`"} == 1)`, to); err != nil {
		return side, vp.failed(err)
	}
	if len(v) == 1 {
		side.up = int(v[0])
	}
	// Stopping drains the pipeline: every scraped sample is committed.
	if err := vp.stop(); err != nil {
		logger.Warn("vigil exit", "err", err)
	}
	side.runScrapes = targets.received()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return side, fmt.Errorf("connect %s: %w", dbURL, err)
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(ctx, `SELECT count(*) FROM metric_samples WHERE t >= $1 AND t < $2 AND series_id IN (
		SELECT id FROM metric_series WHERE labels @> ARRAY[(SELECT id FROM metric_labels WHERE name = 'job' AND value = $3)])`,
		from, to, scrapeJobName).Scan(&side.samples)
	if err != nil {
		return side, fmt.Errorf("count stored samples: %w", err)
	}
	if side.deferredPG, err = pgSettle(ctx, o.adminURL, dbName(dbURL), logger); err != nil {
		logger.Warn("PostgreSQL's deferred work not measured", "err", err)
	}
	return side, nil
}

// pgSettle asks PostgreSQL for a CHECKPOINT, then waits until it is idle
// (under 5 % of a core over a second, for at most 30 s), and returns the
// CPU it used meanwhile: the flush of the buffers left dirty by what ran
// before.
//
// Its CPU is that of the processes serving database db (see pgUsage).
func pgSettle(ctx context.Context, adminURL, db string, logger *slog.Logger) (time.Duration, error) {
	cpu0 := pgUsageOf(db)
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return 0, fmt.Errorf("connect %s: %w", adminURL, err)
	}
	_, err = conn.Exec(ctx, "CHECKPOINT")
	conn.Close(context.Background())
	if err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	began := time.Now()
	for time.Since(began) < 30*time.Second {
		c := pgUsageOf(db)
		if err := sleepCtx(ctx, time.Second, nil); err != nil {
			return 0, err
		}
		if pgUsageOf(db).since(c) < 50*time.Millisecond {
			break
		}
	}
	d := pgUsageOf(db).since(cpu0)
	logger.Info("PostgreSQL settled", "cpu", d, "after", time.Since(began).Round(time.Second))
	return d, nil
}

// measureScraper waits for the warm-up, then measures the scraper of pid
// over o.scrapeRounds intervals: CPU (its own, PostgreSQL's, this
// program's) and the schedule as the targets saw it. It returns the
// window. exited is closed when the scraper's process ends.
//
// PostgreSQL's CPU is that of the processes serving database db (""
// for none: the server's own processes alone); see pgUsage.
func measureScraper(ctx context.Context, o options, targets *scrapeTargets, pid int, db string, exited <-chan struct{}, side *scrapeSide) (from, to time.Time, err error) {
	targets.reset()
	if err := sleepCtx(ctx, scrapeWarmup*scrapeInterval, exited); err != nil {
		return from, to, err
	}
	// Discovery and the first scrapes take a few seconds: give the
	// laggards one more interval.
	for deadline := time.Now().Add(scrapeInterval); targets.scraped() < len(targets.addrs) && time.Now().Before(deadline); {
		if err := sleepCtx(ctx, 500*time.Millisecond, exited); err != nil {
			return from, to, err
		}
	}
	if n := targets.scraped(); n == 0 {
		return from, to, fmt.Errorf("%s: no target was scraped during the %s warm-up", side.name, scrapeWarmup*scrapeInterval)
	}
	from = time.Now()
	cpu0, pg0, self0 := procCPU(pid), pgUsageOf(db), selfCPU()
	if err := sleepCtx(ctx, time.Duration(o.scrapeRounds)*scrapeInterval, exited); err != nil {
		return from, to, err
	}
	to = time.Now()
	side.cpu, side.pgCPU, side.selfCPU = procCPU(pid)-cpu0, pgUsageOf(db).since(pg0), selfCPU()-self0
	side.window = to.Sub(from)
	side.peakRSS = peakRSS(pid)
	side.sched = targets.schedule(from, to)
	return from, to, nil
}

// sleepCtx sleeps for d, or returns an error when ctx ends or exited (if
// not nil) is closed first.
func sleepCtx(ctx context.Context, d time.Duration, exited <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-exited:
		return errors.New("the process measured exited")
	}
}

// baselineWindow is what the parent sends the baseline child once the
// measured window is over.
type baselineWindow struct {
	From, To int64 // Unix milliseconds, [From, To)
}

// baselineResult is what the baseline child answers.
type baselineResult struct {
	Samples   int64
	Scraped   float64
	Durations []float64
	Up        int
	Error     string
}

// scrapePrometheus runs Prometheus's scrape manager into its TSDB in a
// child process (this program, -signal scrape-baseline) on the same
// configuration, and measures it as scrapeVigil measures Vigil.
func scrapePrometheus(ctx context.Context, o options, targets *scrapeTargets, cfgPath, dir string, logger *slog.Logger) (scrapeSide, error) {
	side := scrapeSide{name: "Prometheus"}
	exe, err := os.Executable()
	if err != nil {
		return side, fmt.Errorf("find this program to run the baseline: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, "-signal", "scrape-baseline")
	// The TSDB's directory (teststorage's, in TMPDIR) goes away with dir.
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "VIGIL_BENCH_SCRAPE_CONFIG="+cfgPath)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // not left behind if this program dies
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return side, err
	}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		return side, fmt.Errorf("start the baseline: %w", err)
	}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 1<<20), 256<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, pr)
	}()
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		_ = pw.Close()
		close(exited)
	}()
	defer func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	select {
	case l := <-lines:
		if l != "ready" {
			return side, fmt.Errorf("baseline: unexpected %q", l)
		}
	case <-exited:
		return side, fmt.Errorf("baseline exited before starting: %v", waitErr)
	case <-time.After(60 * time.Second):
		return side, errors.New("baseline did not start within 60s")
	}
	logger.Info("prometheus baseline started", "pid", cmd.Process.Pid)
	from, to, err := measureScraper(ctx, o, targets, cmd.Process.Pid, "", exited, &side)
	if err != nil {
		return side, fmt.Errorf("baseline: %w", err)
	}
	if err := json.NewEncoder(stdin).Encode(baselineWindow{From: from.UnixMilli(), To: to.UnixMilli()}); err != nil {
		return side, fmt.Errorf("baseline: send window: %w", err)
	}
	_ = stdin.Close()
	var res baselineResult
	select {
	case l, ok := <-lines:
		if !ok {
			<-exited
			return side, fmt.Errorf("baseline exited without an answer: %v", waitErr)
		}
		if err := json.Unmarshal([]byte(l), &res); err != nil {
			return side, fmt.Errorf("baseline answer: %w", err)
		}
	case <-time.After(5 * time.Minute):
		return side, errors.New("baseline did not answer within 5 minutes")
	}
	if res.Error != "" {
		return side, fmt.Errorf("baseline: %s", res.Error)
	}
	side.samples, side.scraped, side.durations, side.up = res.Samples, res.Scraped, res.Durations, res.Up
	return side, nil
}

// runScrapeBaseline is the child of -signal scrape (-signal
// scrape-baseline): Prometheus's discovery and scrape managers, with the
// options Vigil gives them, on the prometheus.yml named by
// $VIGIL_BENCH_SCRAPE_CONFIG, writing into a TSDB (util/teststorage). It
// writes "ready" once scraping, then reads the measured window
// (baselineWindow) from in, stops scraping and answers what the TSDB
// holds of the window (baselineResult) on out.
func runScrapeBaseline(ctx context.Context, in io.Reader, out io.Writer, logger *slog.Logger) error {
	res, err := scrapeBaseline(ctx, in, out, logger)
	if err != nil {
		res.Error = err.Error()
	}
	if err := json.NewEncoder(out).Encode(res); err != nil {
		return fmt.Errorf("baseline: answer: %w", err)
	}
	return err
}

func scrapeBaseline(ctx context.Context, in io.Reader, out io.Writer, logger *slog.Logger) (baselineResult, error) {
	var res baselineResult
	path := os.Getenv("VIGIL_BENCH_SCRAPE_CONFIG")
	if path == "" {
		return res, errors.New("-signal scrape-baseline is run by -signal scrape, with VIGIL_BENCH_SCRAPE_CONFIG set")
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := promconfig.LoadFile(path, false, quiet)
	if err != nil {
		return res, fmt.Errorf("load %s: %w", path, err)
	}
	db, err := teststorage.NewWithError()
	if err != nil {
		return res, err
	}
	defer db.Close()

	reg := prometheus.NewRegistry()
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		return res, fmt.Errorf("discovery metrics: %w", err)
	}
	dctx, dcancel := context.WithCancel(ctx)
	defer dcancel()
	dm := discovery.NewManager(dctx, quiet, reg, sdMetrics, discovery.Name("scrape"), discovery.Updatert(5*time.Second))
	if dm == nil {
		return res, errors.New("start service discovery")
	}
	// The options ingest/scrape gives the manager in Vigil.
	sm, err := promscrape.NewManager(&promscrape.Options{DiscoveryReloadInterval: model.Duration(5 * time.Second), DiscoveryReloadOnStartup: true},
		quiet, nil, nil, db, reg)
	if err != nil {
		return res, fmt.Errorf("start scraping: %w", err)
	}
	if err := sm.ApplyConfig(cfg); err != nil {
		return res, fmt.Errorf("apply scrape config: %w", err)
	}
	sd := map[string]discovery.Configs{}
	for _, sc := range cfg.ScrapeConfigs {
		sd[sc.JobName] = sc.ServiceDiscoveryConfigs
	}
	if err := dm.ApplyConfig(sd); err != nil {
		return res, fmt.Errorf("apply discovery config: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = dm.Run() })
	wg.Go(func() { _ = sm.Run(dm.SyncCh()) })
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			sm.Stop()
			dcancel()
			wg.Wait()
		}
	}
	defer stop()
	if _, err := fmt.Fprintln(out, "ready"); err != nil {
		return res, err
	}
	logger.Info("baseline scraping", "jobs", len(cfg.ScrapeConfigs))

	var win baselineWindow
	if err := json.NewDecoder(in).Decode(&win); err != nil {
		return res, fmt.Errorf("read window: %w", err)
	}
	stop()
	q, err := db.Querier(win.From, win.To-1)
	if err != nil {
		return res, fmt.Errorf("querier: %w", err)
	}
	defer q.Close()
	ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, model.JobLabel, scrapeJobName))
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		name := s.Labels().Get(model.MetricNameLabel)
		it = s.Iterator(it)
		last := math.NaN()
		for it.Next() == chunkenc.ValFloat {
			_, v := it.At()
			res.Samples++
			last = v
			switch name {
			case "scrape_duration_seconds":
				res.Durations = append(res.Durations, v)
			case "scrape_samples_scraped":
				res.Scraped += v
			}
		}
		if err := it.Err(); err != nil {
			return res, fmt.Errorf("read samples: %w", err)
		}
		if name == "up" && last == 1 {
			res.Up++
		}
	}
	if err := ss.Err(); err != nil {
		return res, fmt.Errorf("read series: %w", err)
	}
	return res, nil
}

// promValues runs an instant query on Vigil at t and returns every value
// of the result: one per element of a vector, every sample of every
// series of a matrix.
func promValues(ctx context.Context, base, query string, at time.Time) ([]float64, error) {
	q := url.Values{"query": {query}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", query, err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value  []any   `json:"value"`
				Values [][]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("query %s: %d: %w", query, resp.StatusCode, err)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query %s: %d %s", query, resp.StatusCode, out.Error)
	}
	var vals []float64
	add := func(p []any) error {
		if len(p) != 2 {
			return fmt.Errorf("query %s: malformed sample %v", query, p)
		}
		s, _ := p[1].(string)
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("query %s: %w", query, err)
		}
		vals = append(vals, f)
		return nil
	}
	for _, r := range out.Data.Result {
		if r.Value != nil {
			if err := add(r.Value); err != nil {
				return nil, err
			}
		}
		for _, p := range r.Values {
			if err := add(p); err != nil {
				return nil, err
			}
		}
	}
	return vals, nil
}

// quantiles returns the p50, p99 and maximum of v.
func quantiles(v []float64) (p50, p99, maxV float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	at := func(p float64) float64 { return s[min(len(s)-1, int(math.Ceil(p*float64(len(s))))-1)] }
	return at(0.50), at(0.99), s[len(s)-1]
}

// durationQuantiles is quantiles in milliseconds.
func durationQuantiles(d []time.Duration) (p50, p99, maxV float64) {
	v := make([]float64, len(d))
	for i, x := range d {
		v[i] = float64(x.Microseconds()) / 1000
	}
	return quantiles(v)
}

// command is the command line this program was run with.
func command() string {
	return strings.Join(append([]string{"vigil-bench"}, os.Args[1:]...), " ")
}

func printScrape(w io.Writer, o options, v, p scrapeSide) {
	fmt.Fprintf(w, "# vigil-bench -signal scrape\n\nmachine: %s\ncommand: `%s`\n", machine(), command())
	fmt.Fprintf(w, "load: %d targets (an HTTP server each, on 127.0.0.1) × %d counters in the Prometheus text format, values changed on every scrape, every %s (%.0f samples/s offered); ",
		o.scrapeTargets, o.scrapeSeries, scrapeInterval, float64(o.scrapeTargets*o.scrapeSeries)/scrapeInterval.Seconds())
	fmt.Fprintf(w, "each side: warm-up %d intervals, then %d intervals measured; Vigil first (fresh database, --scrape-config), then Prometheus's scrape manager into its TSDB (util/teststorage) in a child process, same prometheus.yml, same manager options, same targets\n\n",
		scrapeWarmup, o.scrapeRounds)
	fmt.Fprintf(w, "| figure | Vigil | Prometheus (scrape manager + TSDB) |\n|---|---|---|\n")
	row := func(name string, f func(s scrapeSide) string) {
		fmt.Fprintf(w, "| %s | %s | %s |\n", name, f(v), f(p))
	}
	row("window", func(s scrapeSide) string { return fmt.Sprintf("%.1f s", s.window.Seconds()) })
	row(fmt.Sprintf("scrapes received by the targets (expected %d), per target min–max", o.scrapeTargets*o.scrapeRounds), func(s scrapeSide) string {
		return fmt.Sprintf("%d, %d–%d", s.sched.scrapes, s.sched.minPer, s.sched.maxPer)
	})
	row("targets up at the end of the window", func(s scrapeSide) string { return fmt.Sprintf("%d / %d", s.up, o.scrapeTargets) })
	row("samples scraped in the window (sum of scrape_samples_scraped)", func(s scrapeSide) string { return fmt.Sprintf("%.0f", s.scraped) })
	row("samples stored with a timestamp in the window (synthetic series included), per second", func(s scrapeSide) string {
		return fmt.Sprintf("%d, **%.0f/s**", s.samples, float64(s.samples)/s.window.Seconds())
	})
	row("CPU per scrape: the scraper's process", func(s scrapeSide) string { return fmt.Sprintf("**%.2f ms**", s.perScrape(s.cpu)) })
	row("CPU per scrape: PostgreSQL (the database's backends and the server's own processes)", func(s scrapeSide) string { return fmt.Sprintf("%.2f ms", s.perScrape(s.pgCPU)) })
	row("PostgreSQL's deferred work: CPU of a CHECKPOINT after the side's run, per scrape of the run (warm-up included)", func(s scrapeSide) string {
		if s.runScrapes == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f ms (%.1f s over %d scrapes)", deferredPerScrape(s), s.deferredPG.Seconds(), s.runScrapes)
	})
	row("CPU per stored sample: the scraper's process, PostgreSQL", func(s scrapeSide) string {
		return fmt.Sprintf("%.2f µs, %.2f µs", s.perSample(s.cpu), s.perSample(s.pgCPU))
	})
	row("cores busy on average: the scraper, PostgreSQL, the targets (this program)", func(s scrapeSide) string {
		c := func(d time.Duration) float64 { return d.Seconds() / s.window.Seconds() }
		return fmt.Sprintf("%.2f, %.2f, %.2f", c(s.cpu), c(s.pgCPU), c(s.selfCPU))
	})
	row("peak RSS of the scraper's process", func(s scrapeSide) string { return fmt.Sprintf("%.0f MiB", float64(s.peakRSS)/(1<<20)) })
	row("interval jitter at the targets, abs(interval − 15 s): p50, p99, max", func(s scrapeSide) string {
		if len(s.sched.jitter) == 0 {
			return "— (two scrapes of a target in the window needed: -scrape-rounds 2 or more)"
		}
		a, b, c := durationQuantiles(s.sched.jitter)
		return fmt.Sprintf("%.1f, **%.1f**, %.1f ms", a, b, c)
	})
	row("delay behind schedule (vs the target's earliest phase in the window): p50, p99, max", func(s scrapeSide) string {
		if len(s.sched.jitter) == 0 {
			return "—"
		}
		a, b, c := durationQuantiles(s.sched.lateness)
		return fmt.Sprintf("%.1f, **%.1f**, %.1f ms", a, b, c)
	})
	row("scrape_duration_seconds in the window: p50, p99, max", func(s scrapeSide) string {
		a, b, c := quantiles(s.durations)
		return fmt.Sprintf("%.1f, **%.1f**, %.1f ms (%d scrapes)", 1000*a, 1000*b, 1000*c, len(s.durations))
	})
	ratio := func(a, b float64) string {
		if b == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	fmt.Fprintf(w, "\n| ratio, CPU per scrape | value |\n|---|---|\n")
	fmt.Fprintf(w, "| Vigil / Prometheus | **%s** |\n", ratio(v.perScrape(v.cpu), p.perScrape(p.cpu)))
	fmt.Fprintf(w, "| (Vigil + PostgreSQL) / Prometheus | **%s** |\n", ratio(v.perScrape(v.cpu+v.pgCPU), p.perScrape(p.cpu)))
	fmt.Fprintf(w, "| (Vigil + PostgreSQL, its deferred work included) / Prometheus | %s |\n", ratio(v.perScrape(v.cpu+v.pgCPU)+deferredPerScrape(v), p.perScrape(p.cpu)))
	fmt.Fprintf(w, "\nEach side starts after a CHECKPOINT, once PostgreSQL is idle. PostgreSQL's CPU in the Prometheus column is the server's background (or another load) during that window: nothing of the baseline touches it.\n")
}

// dbName is the database of a connection URL.
func dbName(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(u.Path, "/")
}

// pgUsage is a reading of the CPU time of PostgreSQL's processes that
// serve one database or the whole server, by pid: the backends of that
// database (their process title names it), and the postmaster and its
// auxiliary processes (checkpointer, WAL writer, background writer, …),
// but not the backends of other databases, which other clients of a shared
// server (a test suite) start and end at any time.
type pgUsage map[int]time.Duration

// pgUsageOf reads the processes serving database db ("" for the
// auxiliary processes alone).
func pgUsageOf(db string) pgUsage {
	u := pgUsage{}
	for pid := range postgresPIDs {
		title, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		if pgServes(strings.ReplaceAll(string(title), "\x00", " "), db) {
			u[pid] = procCPU(pid)
		}
	}
	return u
}

// pgServes tells from a PostgreSQL process title whether the process
// serves database db or the whole server.
func pgServes(title, db string) bool {
	if db != "" && strings.Contains(title+" ", " "+db+" ") {
		return true
	}
	// A client backend's title names its peer ("127.0.0.1(5432)",
	// "[local]"), an autovacuum worker its database.
	backend := pgPeer.MatchString(title) || strings.Contains(title, "[local]") || strings.Contains(title, "autovacuum worker")
	return !backend
}

// pgPeer matches the peer in a client backend's process title.
var pgPeer = regexp.MustCompile(`\(\d+\)`)

// since returns the CPU time used from the reading before to u. A
// process that ended in between counts for nothing after before (its
// last moments are lost, never subtracted).
func (u pgUsage) since(before pgUsage) time.Duration {
	var d time.Duration
	for pid, c := range u {
		d += max(0, c-before[pid]) // a reused pid starts again from 0
	}
	return d
}

// logTail keeps the last lines a process wrote.
type logTail struct {
	mu    sync.Mutex
	lines []string
}

const logTailLines = 40

func (l *logTail) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == logTailLines {
		l.lines = append(l.lines[:0], l.lines[1:]...)
	}
	l.lines = append(l.lines, s)
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == 0 {
		return "  (nothing)"
	}
	return "  " + strings.Join(l.lines, "\n  ")
}

// vigilRun is a vigil process started by startVigilLogged.
type vigilRun struct {
	pid    int
	http   string        // the address of its HTTP API
	tail   *logTail      // the last lines of its log
	exited chan struct{} // closed when it exited
	cmd    *exec.Cmd

	waitErr  error // set before exited is closed
	stopOnce sync.Once
}

// startVigilLogged is startVigilWith without the other receivers, for the
// benchmarks of this file and registry.go: it keeps the tail of Vigil's
// log, and fails at once, with that tail, when Vigil exits before
// serving (a bad flag, a database it cannot use) or does not serve
// within 60 s. extra are more command-line arguments.
func startVigilLogged(ctx context.Context, bin, dbURL string, extra []string) (*vigilRun, error) {
	args := []string{"serve", "--db", dbURL, "--http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--log-format", "json",
		"--otlp-http=", "--jaeger-udp-compact=", "--jaeger-udp-binary=", "--jaeger-http=", "--jaeger-grpc=", "--zipkin="}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	// Stopped if this program dies (its database is then left behind).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	v := &vigilRun{pid: cmd.Process.Pid, tail: &logTail{}, exited: make(chan struct{}), cmd: cmd}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		sent := false
		warned := map[string]int{} // WARN and ERROR lines by message
		for sc.Scan() {
			line := sc.Text()
			v.tail.add(line)
			var rec struct {
				Level string `json:"level"`
				Msg   string `json:"msg"`
				HTTP  string `json:"http"`
			}
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			if !sent && rec.Msg == "serving" && rec.HTTP != "" {
				ready <- rec.HTTP
				sent = true
			}
			// Vigil's warnings and errors go to stderr, the first
			// three of each message.
			if rec.Level == "WARN" || rec.Level == "ERROR" {
				if warned[rec.Msg]++; warned[rec.Msg] <= 3 {
					fmt.Fprintln(os.Stderr, "vigil:", line)
				}
			}
		}
		for msg, n := range warned {
			if n > 3 {
				fmt.Fprintf(os.Stderr, "vigil (pid %d): %d more lines %q not shown\n", v.pid, n-3, msg)
			}
		}
		// Wait only once the log is read to its end, as os/exec asks.
		v.waitErr = cmd.Wait()
		close(v.exited)
	}()
	select {
	case v.http = <-ready:
		return v, nil
	case <-v.exited:
		return nil, fmt.Errorf("vigil exited before serving (%v); last lines of its log:\n%s", v.waitErr, v.tail)
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-v.exited
		return nil, fmt.Errorf("vigil did not serve within 60s; last lines of its log:\n%s", v.tail)
	case <-ctx.Done():
		<-v.exited
		return nil, ctx.Err()
	}
}

// stop ends Vigil with SIGTERM (SIGKILL after 30 s) and waits for it; it
// may be called more than once.
func (v *vigilRun) stop() error {
	v.stopOnce.Do(func() {
		select {
		case <-v.exited:
			return
		default:
		}
		_ = v.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-v.exited:
		case <-time.After(30 * time.Second):
			_ = v.cmd.Process.Kill()
			<-v.exited
		}
	})
	<-v.exited
	return v.waitErr
}

// failed adds the tail of Vigil's log to err, and says whether Vigil
// exited.
func (v *vigilRun) failed(err error) error {
	state := "still running"
	select {
	case <-v.exited:
		state = fmt.Sprintf("exited: %v", v.waitErr)
	default:
	}
	return fmt.Errorf("%w\nvigil (pid %d) %s; last lines of its log:\n%s", err, v.pid, state, v.tail)
}
