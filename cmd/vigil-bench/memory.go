package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-obs/vigil/internal/inflight"
)

// Shape of the memory measurement: as many concurrent requests of the
// largest size Vigil accepts by default (16 MiB), and as many slow
// connections declaring that size.
const (
	memoryClients      = 64
	memoryRequestBytes = 16 << 20
	memoryBodies       = 8 // distinct bodies, shared by the clients
)

// memoryResult is what runMemory observed.
type memoryResult struct {
	limit       int64 // GOMEMLIMIT given to Vigil
	baseRSS     int64 // VmRSS once started
	baseHeap    int64 // Go heap in use once started
	trickleRSS  int64 // highest VmRSS while the slow connections were open
	trickleHeap int64 // Go heap in use 30 s after they were opened
	peakRSS     int64 // VmHWM at the end
	bodyBytes   int
	spans       int // per body

	trickleAnswers map[string]int // first status line (or error) of each slow connection
	trickleLongest time.Duration

	accepted, refused429, refused503, failed int64
	attempts                                 int64
	postElapsed                              time.Duration
	firstFailure                             string

	inflight map[string]float64 // Vigil's vigil_ingest_inflight_* series, when exported
}

// runMemory measures Vigil's peak RSS under memory pressure on OTLP/HTTP:
// first 64 connections that declare a 16 MiB body and send a byte a
// second until the read timeout cuts them, then 64 clients that each post
// a 16 MiB export and retry it, honouring Retry-After, until it is
// accepted. Vigil runs with GOMEMLIMIT=o.memLimit; o.inflightBytes, when
// set, is passed as ingest.max_inflight_bytes in a configuration file.
func runMemory(ctx context.Context, o options, logger *slog.Logger, w io.Writer) error {
	dbURL, drop, err := createDB(ctx, o.adminURL, "vigil_bench_mem_", o.keep)
	if err != nil {
		return err
	}
	defer drop()
	env := []string{"GOMEMLIMIT=" + strconv.FormatInt(o.memLimit, 10)}
	if o.inflightBytes > 0 {
		dir, err := os.MkdirTemp("", "vigil-bench-memory-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "vigil.yaml")
		if err := os.WriteFile(path, fmt.Appendf(nil, "ingest:\n  max_inflight_bytes: %d\n", o.inflightBytes), 0o600); err != nil {
			return err
		}
		env = append(env, "VIGIL_CONFIG="+path)
	}
	bin, _ := filepath.Abs(o.vigilBin)
	vp, err := startVigil(ctx, bin, dbURL, true, env...)
	if err != nil {
		return err
	}
	defer func() {
		if err := vp.stop(); err != nil {
			logger.Warn("vigil exit", "err", err)
		}
	}()
	addr := vp.addrs["otlp_http"]
	metrics := "http://" + vp.addrs["http"]
	res := &memoryResult{limit: o.memLimit, baseRSS: procRSS(vp.pid), baseHeap: heapInuse(metrics)}
	logger.Info("vigil started", "pid", vp.pid, "otlp_http", addr, "rss_mib", res.baseRSS>>20)

	// Slow connections first, on a quiet Vigil, so that what they hold
	// shows in its heap: buffers allocated but never written to are
	// counted by the Go heap (and its collector) long before they show in
	// RSS.
	if o.memorySlow {
		// The heap is read once, half-way: reading /metrics allocates, and
		// at Vigil's GOGC of 400 that garbage would blur the figure.
		var heap atomic.Int64
		halfway := time.AfterFunc(30*time.Second, func() { heap.Store(heapInuse(metrics)) })
		stopSampling := sample(func() { res.trickleRSS = max(res.trickleRSS, procRSS(vp.pid)) })
		res.trickleAnswers, res.trickleLongest = trickle(ctx, addr, memoryClients, memoryRequestBytes)
		stopSampling()
		halfway.Stop()
		res.trickleHeap = heap.Load()
		logger.Info("slow connections done", "answers", res.trickleAnswers, "longest", res.trickleLongest)
	}
	if !o.memoryPosts {
		res.peakRSS = peakRSS(vp.pid)
		res.print(w)
		return nil
	}

	bodies := make([][]byte, memoryBodies)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	n := 200
	for i := range bodies {
		// Grow or shrink n until the body is just under the limit.
		for {
			req := newRequest(n, 0)
			refresh(req, n, rng, time.Hour)
			if bodies[i], err = req.MarshalProto(); err != nil {
				return err
			}
			const target = memoryRequestBytes - 16<<10
			if len(bodies[i]) <= memoryRequestBytes && len(bodies[i]) >= target-256<<10 {
				break
			}
			n = max(1, int(int64(n)*target/int64(len(bodies[i]))))
		}
	}
	res.bodyBytes, res.spans = len(bodies[0]), 10*n
	if err := flood(ctx, addr, bodies, res); err != nil {
		return err
	}
	res.peakRSS = peakRSS(vp.pid)
	res.inflight = scrapePrefix(metrics, "vigil_ingest_inflight_")
	logger.Info("posts done", "accepted", res.accepted, "elapsed", res.postElapsed)
	res.print(w)
	return nil
}

// trickle opens n connections to OTLP/HTTP that each declare a body of
// declared bytes and send one byte a second, and returns the first status
// line each got (or why none came) and how long the longest stayed open.
func trickle(ctx context.Context, addr string, n, declared int) (map[string]int, time.Duration) {
	var (
		mu      sync.Mutex
		answers = map[string]int{}
		longest time.Duration
		wg      sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			start := time.Now()
			answer := trickleOne(ctx, addr, declared)
			mu.Lock()
			defer mu.Unlock()
			answers[answer]++
			longest = max(longest, time.Since(start))
		})
	}
	wg.Wait()
	return answers, longest
}

func trickleOne(ctx context.Context, addr string, declared int) string {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/traces HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-protobuf\r\nContent-Length: %d\r\n\r\n", addr, declared)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if _, err := c.Write([]byte{0x0a}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	// Vigil's read timeout is a minute by default; give up a little later.
	_ = c.SetReadDeadline(time.Now().Add(90 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "no answer within 90 s"
	case err != nil:
		return "no answer: connection closed"
	}
	return strings.TrimSpace(line)
}

// flood has memoryClients clients post one of bodies each at once and
// retry it, after the Retry-After Vigil asks for, until it is accepted or
// five minutes have passed.
func flood(ctx context.Context, addr string, bodies [][]byte, res *memoryResult) error {
	tr := &http.Transport{MaxIdleConnsPerHost: memoryClients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	url := "http://" + addr + "/v1/traces"
	deadline := time.Now().Add(5 * time.Minute)
	var (
		once sync.Once
		wg   sync.WaitGroup
	)
	fail := func(msg string) {
		atomic.AddInt64(&res.failed, 1)
		once.Do(func() { res.firstFailure = msg })
	}
	start := time.Now()
	for i := range memoryClients {
		body := bodies[i%len(bodies)]
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				atomic.AddInt64(&res.attempts, 1)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/x-protobuf")
				resp, err := client.Do(req)
				if err != nil {
					fail(err.Error())
					time.Sleep(time.Second)
					continue
				}
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					atomic.AddInt64(&res.accepted, 1)
					return
				case http.StatusTooManyRequests, http.StatusServiceUnavailable:
					if resp.StatusCode == http.StatusTooManyRequests {
						atomic.AddInt64(&res.refused429, 1)
					} else {
						atomic.AddInt64(&res.refused503, 1)
					}
					secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
					time.Sleep(time.Duration(max(secs, 1)) * time.Second)
				default:
					fail(fmt.Sprintf("status %d: %q", resp.StatusCode, msg))
					return
				}
			}
		})
	}
	wg.Wait()
	res.postElapsed = time.Since(start)
	return ctx.Err()
}

// sample calls f every 200 ms until the returned func is called.
func sample(f func()) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			f()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// procRSS reads VmRSS of pid in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// heapInuse returns go_memstats_heap_inuse_bytes of Vigil's /metrics.
func heapInuse(base string) int64 {
	return int64(scrapePrefix(base, "go_memstats_heap_inuse_bytes")["go_memstats_heap_inuse_bytes"])
}

// scrapePrefix reads the series of Vigil's /metrics whose names start
// with prefix.
func scrapePrefix(base, prefix string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, prefix) {
			continue
		}
		if f, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = f
		}
	}
	return out
}

func (r *memoryResult) print(w io.Writer) {
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	fmt.Fprintf(w, "# vigil-bench -signal memory\n\nmachine: %s\n", machine())
	fmt.Fprintf(w, "load: %d slow OTLP/HTTP connections declaring %d MiB and sending a byte a second; then %d clients posting a %.1f MiB export (%d spans) at once, retrying after Retry-After until accepted\n\n",
		memoryClients, memoryRequestBytes>>20, memoryClients, float64(r.bodyBytes)/(1<<20), r.spans)
	fmt.Fprintf(w, "| figure | value |\n|---|---|\n")
	fmt.Fprintf(w, "| GOMEMLIMIT | %.0f MiB |\n", mib(r.limit))
	if v, ok := r.inflight["vigil_ingest_inflight_limit_bytes"]; ok {
		fmt.Fprintf(w, "| in-flight budget (ingest.max_inflight_bytes) | %.0f MiB |\n", v/(1<<20))
	} else {
		prev := debug.SetMemoryLimit(r.limit)
		def := inflight.DefaultMaxBytes()
		debug.SetMemoryLimit(prev)
		fmt.Fprintf(w, "| in-flight budget | default for this GOMEMLIMIT, %.0f MiB per receiver (not exported) |\n", mib(def))
	}
	fmt.Fprintf(w, "| RSS, Go heap in use once started | %.0f MiB, %.0f MiB |\n", mib(r.baseRSS), mib(r.baseHeap))
	if r.trickleAnswers != nil {
		fmt.Fprintf(w, "| %d slow connections: highest RSS; Go heap in use 30 s in | %.0f MiB (+%.1f); %.0f MiB (+%.1f) |\n",
			memoryClients, mib(r.trickleRSS), mib(r.trickleRSS-r.baseRSS), mib(r.trickleHeap), mib(r.trickleHeap-r.baseHeap))
		fmt.Fprintf(w, "| %d slow connections: answers, longest open | %s, %.1f s |\n", memoryClients, answersString(r.trickleAnswers), r.trickleLongest.Seconds())
	}
	if r.attempts > 0 {
		fmt.Fprintf(w, "| %d × %d MiB posts: accepted / attempts | %d / %d in %.1f s |\n", memoryClients, memoryRequestBytes>>20, r.accepted, r.attempts, r.postElapsed.Seconds())
		fmt.Fprintf(w, "| refused and retried: 429 / 503; failed | %d / %d; %d |\n", r.refused429, r.refused503, r.failed)
	}
	if v, ok := r.inflight["vigil_ingest_inflight_refused_total"]; ok {
		fmt.Fprintf(w, "| refusals by the in-flight budget (vigil_ingest_inflight_refused_total) | %.0f |\n", v)
	}
	fmt.Fprintf(w, "| **peak RSS (VmHWM) / GOMEMLIMIT** | **%.0f MiB / %.0f MiB = %.2f** |\n", mib(r.peakRSS), mib(r.limit), float64(r.peakRSS)/float64(r.limit))
	if r.firstFailure != "" {
		fmt.Fprintf(w, "\nfirst failure: %s\n", r.firstFailure)
	}
}

func answersString(m map[string]int) string {
	var parts []string
	for _, a := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d × %q", m[a], a))
	}
	return strings.Join(parts, ", ")
}
