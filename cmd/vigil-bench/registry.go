package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// The registry benchmark (-signal registry): Vigil's Consul-compatible
// registry (--consul-api) with -registry-instances instances, registered
// through the HTTP API with hashicorp/consul/api as a service would, each
// with an HTTP check every 10 s against a server in this program that
// counts the checks of every instance. Services are named bench-svc-NNN,
// ten instances each; every instance has the metadata scrape=false, so
// that Vigil's registry scrape job leaves it alone and the figure is the
// registry's own cost (checks, their results and health series, blocking
// queries of the scrape job's discovery).
//
// Once every check passes, Vigil's and PostgreSQL's CPU are measured over
// -registry-intervals check intervals, with the checks the server
// received: CPU per check.
//
// Then the wake-up latency of blocking queries: -registry-watchers
// watchers hold GET /v1/health/service/bench-flip?index=…&wait=60s, the
// way a Consul client watches; the program changes the TTL check of the
// bench-flip service (PUT /v1/agent/check/update, a new status and an
// output naming the change) -registry-changes times, each once every
// watcher has seen the previous one, and notes for every watcher when its
// answer showing the change arrived. Twice: watchers and changes on the
// same Vigil; then watchers on a second Vigil process on the same
// database and changes on the first (the LISTEN/NOTIFY path).

const (
	registryCheckInterval = 10 * time.Second
	registryFlipService   = "bench-flip"
	registryFlipCheck     = "bench-flip-ttl"
	registryWait          = 60 * time.Second
	// wakeTimeout is how long a watcher may take to see a change before
	// it counts as missed.
	wakeTimeout = 10 * time.Second
)

// checkTargets answers the HTTP checks of every instance and counts them.
type checkTargets struct {
	srv    *http.Server
	addr   string
	counts []atomic.Int64 // per instance
}

func startCheckTargets(n int) (*checkTargets, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("check server: %w", err)
	}
	c := &checkTargets{addr: ln.Addr().String(), counts: make([]atomic.Int64, n)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /check/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || id < 0 || id >= n {
			http.NotFound(w, r)
			return
		}
		c.counts[id].Add(1)
		// A constant body: the check's output does not change, so a
		// run that finds the instance healthy again moves no index.
		_, _ = io.WriteString(w, "ok\n")
	})
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

func (c *checkTargets) snapshot() []int64 {
	out := make([]int64, len(c.counts))
	for i := range c.counts {
		out[i] = c.counts[i].Load()
	}
	return out
}

func (c *checkTargets) close() { _ = c.srv.Close() }

// consulClient returns a Consul API client of addr whose transport keeps
// enough idle connections for conns concurrent requests.
func consulClient(addr string, conns int) (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.Transport.MaxIdleConns = max(cfg.Transport.MaxIdleConns, conns)
	cfg.Transport.MaxIdleConnsPerHost = conns
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul client of %s: %w", addr, err)
	}
	return c, nil
}

// waitConsulAPI waits until the registry API of v at client answers.
func waitConsulAPI(ctx context.Context, v *vigilRun, client *api.Client) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := client.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return v.failed(fmt.Errorf("the registry API does not answer: %w", err))
		}
		if err := sleepCtx(ctx, 200*time.Millisecond, v.exited); err != nil {
			return v.failed(err)
		}
	}
}

// wakeStats are the figures of one wake-up measurement.
type wakeStats struct {
	fromReturn []time.Duration // change request's return → watcher's answer (0 when the answer came first)
	fromStart  []time.Duration // change request's start → watcher's answer
	early      int             // answers that arrived before the change request returned
	puts       []time.Duration // the change requests
	missed     int             // watcher × change pairs not seen within wakeTimeout
	firstErr   string          // first error of a watcher
}

// registryReport holds the figures of the registry benchmark.
type registryReport struct {
	register      []time.Duration // each registration request
	registerAll   time.Duration
	warmup        time.Duration // registration's end → every check passing
	window        time.Duration
	idleCPU       time.Duration // Vigil over one interval before registration
	idlePgCPU     time.Duration
	vigilCPU      time.Duration
	pgCPU         time.Duration
	selfCPU       time.Duration
	checks        int64 // received in the window
	minPer        int64
	maxPer        int64
	same, replica wakeStats
}

func runRegistry(ctx context.Context, o options, logger *slog.Logger, w io.Writer) error {
	n := o.regInstances
	if n < 1 || o.regIntervals < 1 || o.regWatchers < 1 || o.regChanges < 1 {
		return errors.New("-registry-instances, -registry-intervals, -registry-watchers and -registry-changes must be positive")
	}
	var rep registryReport
	checks, err := startCheckTargets(n)
	if err != nil {
		return err
	}
	defer checks.close()
	dbURL, drop, err := createDB(ctx, o.adminURL, "vigil_bench_registry_", o.keep)
	if err != nil {
		return err
	}
	defer drop()
	bin, _ := filepath.Abs(o.vigilBin)
	addrA, err := freePort()
	if err != nil {
		return err
	}
	a, err := startVigilLogged(ctx, bin, dbURL, []string{"--consul-api", addrA, "--default-rules=false"})
	if err != nil {
		return err
	}
	defer func() { _ = a.stop() }()
	clientA, err := consulClient(addrA, 16)
	if err != nil {
		return err
	}
	if err := waitConsulAPI(ctx, a, clientA); err != nil {
		return err
	}
	logger.Info("vigil started", "pid", a.pid, "consul_api", addrA)

	// Idle: the registry empty, over one check interval, once
	// PostgreSQL has flushed what the database's creation and Vigil's
	// migrations left.
	db := dbName(dbURL)
	if _, err := pgSettle(ctx, o.adminURL, db, logger); err != nil {
		logger.Warn("PostgreSQL not settled", "err", err)
	}
	idle0, idlePg0 := procCPU(a.pid), pgUsageOf(db)
	if err := sleepCtx(ctx, registryCheckInterval, a.exited); err != nil {
		return a.failed(err)
	}
	rep.idleCPU, rep.idlePgCPU = procCPU(a.pid)-idle0, pgUsageOf(db).since(idlePg0)

	if err := registerInstances(ctx, clientA, checks.addr, n, &rep); err != nil {
		return a.failed(err)
	}
	logger.Info("instances registered", "instances", n, "elapsed", rep.registerAll)
	if err := waitPassing(ctx, a, clientA, n+1, 3*registryCheckInterval, &rep); err != nil {
		return err
	}
	logger.Info("every check passes", "after", rep.warmup)

	// CPU over whole check intervals.
	c0 := checks.snapshot()
	cpu0, pg0, self0 := procCPU(a.pid), pgUsageOf(db), selfCPU()
	began := time.Now()
	if err := sleepCtx(ctx, time.Duration(o.regIntervals)*registryCheckInterval, a.exited); err != nil {
		return a.failed(err)
	}
	rep.window = time.Since(began)
	rep.vigilCPU, rep.pgCPU, rep.selfCPU = procCPU(a.pid)-cpu0, pgUsageOf(db).since(pg0), selfCPU()-self0
	c1 := checks.snapshot()
	rep.minPer = math.MaxInt64
	for i := range c1 {
		d := c1[i] - c0[i]
		rep.checks += d
		rep.minPer, rep.maxPer = min(rep.minPer, d), max(rep.maxPer, d)
	}
	logger.Info("CPU measured", "checks", rep.checks, "vigil_cpu", rep.vigilCPU, "pg_cpu", rep.pgCPU)

	// Wake-ups on one process.
	rep.same, err = measureWakeups(ctx, clientA, addrA, o.regWatchers, o.regChanges, 1)
	if err != nil {
		return a.failed(err)
	}
	logger.Info("wake-ups on one replica measured", "missed", rep.same.missed)

	// Wake-ups across two processes: watchers on B, changes on A.
	addrB, err := freePort()
	if err != nil {
		return err
	}
	b, err := startVigilLogged(ctx, bin, dbURL, []string{"--consul-api", addrB, "--default-rules=false"})
	if err != nil {
		return fmt.Errorf("second vigil: %w", err)
	}
	defer func() { _ = b.stop() }()
	clientB, err := consulClient(addrB, 16)
	if err != nil {
		return err
	}
	if err := waitConsulAPI(ctx, b, clientB); err != nil {
		return fmt.Errorf("second vigil: %w", err)
	}
	entries, _, err := clientB.Health().Service(registryFlipService, "", false, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil || len(entries) != 1 {
		return b.failed(fmt.Errorf("second vigil: %s: %d entries, %v", registryFlipService, len(entries), err))
	}
	logger.Info("second vigil started", "pid", b.pid, "consul_api", addrB)
	rep.replica, err = measureWakeups(ctx, clientA, addrB, o.regWatchers, o.regChanges, o.regChanges+1)
	if err != nil {
		return b.failed(err)
	}
	logger.Info("wake-ups across replicas measured", "missed", rep.replica.missed)
	if err := b.stop(); err != nil {
		logger.Warn("second vigil exit", "err", err)
	}
	if err := a.stop(); err != nil {
		logger.Warn("vigil exit", "err", err)
	}
	printRegistry(w, o, &rep)
	return nil
}

// registerInstances registers the bench-flip service (a TTL check,
// passing) and n instances with an HTTP check each, from 8 clients at
// once.
func registerInstances(ctx context.Context, client *api.Client, checkAddr string, n int, rep *registryReport) error {
	noScrape := map[string]string{"scrape": "false"}
	flip := &api.AgentServiceRegistration{ID: registryFlipService + "-1", Name: registryFlipService, Address: "127.0.0.1", Port: 1, Meta: noScrape,
		Check: &api.AgentServiceCheck{CheckID: registryFlipCheck, Name: "flip", TTL: "1h", Status: api.HealthPassing}}
	if err := client.Agent().ServiceRegisterOpts(flip, api.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
		return fmt.Errorf("register %s: %w", flip.ID, err)
	}
	_, port, _ := net.SplitHostPort(checkAddr)
	p, _ := strconv.Atoi(port)
	next := make(chan int)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	began := time.Now()
	for range 8 {
		wg.Go(func() {
			for i := range next {
				reg := &api.AgentServiceRegistration{
					ID: fmt.Sprintf("bench-%04d", i), Name: fmt.Sprintf("bench-svc-%03d", i/10),
					Address: "127.0.0.1", Port: p, Meta: noScrape,
					Check: &api.AgentServiceCheck{HTTP: fmt.Sprintf("http://%s/check/%d", checkAddr, i),
						Interval: registryCheckInterval.String(), Timeout: "5s"},
				}
				start := time.Now()
				err := client.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(ctx))
				d := time.Since(start)
				mu.Lock()
				rep.register = append(rep.register, d)
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("register %s: %w", reg.ID, err)
				}
				mu.Unlock()
			}
		})
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	rep.registerAll = time.Since(began)
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// waitPassing waits until want checks pass, for at most limit.
func waitPassing(ctx context.Context, v *vigilRun, client *api.Client, want int, limit time.Duration, rep *registryReport) error {
	began := time.Now()
	for {
		checks, _, err := client.Health().State(api.HealthPassing, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return v.failed(fmt.Errorf("passing checks: %w", err))
		}
		if len(checks) >= want {
			rep.warmup = time.Since(began)
			return nil
		}
		if time.Since(began) > limit {
			return v.failed(fmt.Errorf("%d of %d checks pass after %s", len(checks), want, limit))
		}
		if err := sleepCtx(ctx, time.Second, v.exited); err != nil {
			return v.failed(err)
		}
	}
}

// wakeEvent is a watcher's answer that showed a change it had not seen.
type wakeEvent struct {
	watcher int
	change  int // from the check's output "change-N"; 0 before the first
	at      time.Time
	err     error
}

// watch holds blocking queries on the bench-flip service at client, as a
// Consul client does, until ctx ends, and reports every answer that
// shows another change than the previous one.
func watch(ctx context.Context, client *api.Client, id int, events chan<- wakeEvent) {
	var index uint64
	last := -1
	for ctx.Err() == nil {
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: registryWait}).WithContext(ctx)
		entries, meta, err := client.Health().Service(registryFlipService, "", false, q)
		at := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			select {
			case events <- wakeEvent{watcher: id, err: err, at: at}:
			case <-ctx.Done():
				return
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		// A lower index means another database: start again, as
		// Consul's clients do.
		if meta.LastIndex < index {
			index = 0
		} else {
			index = meta.LastIndex
		}
		change := 0
		for _, e := range entries {
			for _, c := range e.Checks {
				if c.CheckID == registryFlipCheck {
					if s, ok := strings.CutPrefix(c.Output, "change-"); ok {
						change, _ = strconv.Atoi(s)
					}
				}
			}
		}
		if change != last {
			last = change
			select {
			case events <- wakeEvent{watcher: id, change: change, at: at}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// measureWakeups runs k watchers on the registry API at watchAddr and
// makes count changes through changer, numbered from first; see the top
// of this file.
func measureWakeups(ctx context.Context, changer *api.Client, watchAddr string, k, count, first int) (wakeStats, error) {
	var st wakeStats
	client, err := consulClient(watchAddr, k+4)
	if err != nil {
		return st, err
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	events := make(chan wakeEvent, 4*k)
	for i := range k {
		wg.Go(func() { watch(wctx, client, i, events) })
	}
	noteErr := func(ev wakeEvent) {
		if ev.err != nil && st.firstErr == "" {
			st.firstErr = ev.err.Error()
		}
	}
	// Armed: every watcher has had its first answer.
	armed := make([]bool, k)
	for n, deadline := 0, time.After(30*time.Second); n < k; {
		select {
		case ev := <-events:
			noteErr(ev)
			if ev.err == nil && !armed[ev.watcher] {
				armed[ev.watcher] = true
				n++
			}
		case <-deadline:
			return st, fmt.Errorf("watchers on %s: %d of %d answered within 30s (%s)", watchAddr, n, k, st.firstErr)
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
	for c := first; c < first+count; c++ {
		// Give the watchers time to send their next blocking query.
		if err := sleepCtx(ctx, 100*time.Millisecond+rand.N(100*time.Millisecond), nil); err != nil {
			return st, err
		}
		status := api.HealthCritical
		if c%2 == 0 {
			status = api.HealthPassing
		}
		start := time.Now()
		err := changer.Agent().UpdateTTLOpts(registryFlipCheck, fmt.Sprintf("change-%d", c), status, (&api.QueryOptions{}).WithContext(ctx))
		returned := time.Now()
		if err != nil {
			return st, fmt.Errorf("change %d: %w", c, err)
		}
		st.puts = append(st.puts, returned.Sub(start))
		got, err := collectWakeups(ctx, events, k, c, start, returned, &st, noteErr)
		if err != nil {
			return st, err
		}
		st.missed += k - got
	}
	return st, nil
}

// collectWakeups reads the watchers' events until each of the k watchers
// has shown change c or wakeTimeout has passed, and records the wake-ups
// in st. It returns how many watchers showed the change.
func collectWakeups(ctx context.Context, events <-chan wakeEvent, k, c int, start, returned time.Time, st *wakeStats, noteErr func(wakeEvent)) (int, error) {
	seen := make([]bool, k)
	got := 0
	deadline := time.NewTimer(wakeTimeout)
	defer deadline.Stop()
	for got < k {
		var ev wakeEvent
		select {
		case ev = <-events:
		case <-deadline.C:
			return got, nil
		case <-ctx.Done():
			return got, ctx.Err()
		}
		noteErr(ev)
		if ev.err != nil || ev.change < c || seen[ev.watcher] {
			continue // an error, or an answer from before the change
		}
		seen[ev.watcher] = true
		got++
		d := ev.at.Sub(returned)
		if d < 0 {
			st.early++
			d = 0
		}
		st.fromReturn = append(st.fromReturn, d)
		st.fromStart = append(st.fromStart, ev.at.Sub(start))
	}
	return got, nil
}

func printRegistry(w io.Writer, o options, r *registryReport) {
	fmt.Fprintf(w, "# vigil-bench -signal registry\n\nmachine: %s\ncommand: `%s`\n", machine(), command())
	fmt.Fprintf(w, "load: %d instances (%d services of 10, registered with hashicorp/consul/api, metadata scrape=false) with an HTTP check every %s against a server in the bench process; CPU over %d intervals once every check passes; wake-ups: %d watchers × %d changes of a TTL check (status and output), on one Vigil, then watchers on a second Vigil process on the same database and changes on the first\n\n",
		o.regInstances, (o.regInstances+9)/10, registryCheckInterval, o.regIntervals, o.regWatchers, o.regChanges)
	fmt.Fprintf(w, "| figure | value |\n|---|---|\n")
	p50, p99, mx := durationQuantiles(r.register)
	fmt.Fprintf(w, "| registration: %d PUT /v1/agent/service/register from 8 clients | %.1f s; p50 %.1f ms, p99 %.1f ms, max %.1f ms |\n",
		len(r.register), r.registerAll.Seconds(), p50, p99, mx)
	fmt.Fprintf(w, "| registration's end → every check passing | %.1f s |\n", r.warmup.Seconds())
	fmt.Fprintf(w, "| checks received in %.1f s (expected %d), per instance min–max | %d, %d–%d |\n",
		r.window.Seconds(), o.regInstances*o.regIntervals, r.checks, r.minPer, r.maxPer)
	per := func(d time.Duration) float64 {
		if r.checks == 0 {
			return 0
		}
		return float64(d.Nanoseconds()) / 1000 / float64(r.checks)
	}
	fmt.Fprintf(w, "| CPU per check: Vigil | **%.0f µs** |\n", per(r.vigilCPU))
	fmt.Fprintf(w, "| CPU per check: PostgreSQL (the database's backends and the server's own processes) | **%.0f µs** |\n", per(r.pgCPU))
	// The idle rate (the registry empty: Vigil's electors and pollers,
	// PostgreSQL's background and other clients) over the same time.
	idle := func(d time.Duration) time.Duration {
		return time.Duration(float64(d) * r.window.Seconds() / registryCheckInterval.Seconds())
	}
	fmt.Fprintf(w, "| CPU per check, net of the idle rate: Vigil, PostgreSQL | %.0f µs, %.0f µs |\n",
		per(r.vigilCPU-idle(r.idleCPU)), per(r.pgCPU-idle(r.idlePgCPU)))
	fmt.Fprintf(w, "| CPU per check: the check server (bench process) | %.0f µs |\n", per(r.selfCPU))
	fmt.Fprintf(w, "| cores busy on average: Vigil, PostgreSQL | %.3f, %.3f (idle, before registration: %.3f, %.3f) |\n",
		r.vigilCPU.Seconds()/r.window.Seconds(), r.pgCPU.Seconds()/r.window.Seconds(),
		r.idleCPU.Seconds()/registryCheckInterval.Seconds(), r.idlePgCPU.Seconds()/registryCheckInterval.Seconds())
	wake := func(name string, s wakeStats) {
		a, b, c := durationQuantiles(s.fromReturn)
		fmt.Fprintf(w, "| wake-up, %s: change's return → watcher's answer (%d answers, %d missed, %d before the return) | p50 %.1f ms, **p99 %.1f ms**, max %.1f ms (target p99 ≤ 100 ms) |\n",
			name, len(s.fromReturn), s.missed, s.early, a, b, c)
		a, b, c = durationQuantiles(s.fromStart)
		fmt.Fprintf(w, "| wake-up, %s: change's start → watcher's answer | p50 %.1f ms, p99 %.1f ms, max %.1f ms |\n", name, a, b, c)
		a, b, c = durationQuantiles(s.puts)
		fmt.Fprintf(w, "| change request (PUT /v1/agent/check/update), %s | p50 %.1f ms, p99 %.1f ms, max %.1f ms |\n", name, a, b, c)
		if s.firstErr != "" {
			fmt.Fprintf(w, "| first watcher error, %s | %s |\n", name, s.firstErr)
		}
	}
	wake("one replica", r.same)
	wake("across replicas (watchers on B, changes on A)", r.replica)
}
