package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// scrapeInterval is the step between two samples of one series.
const scrapeInterval = 15 * time.Second

// samplesPerSend is the size of one remote_write request, Prometheus's
// default max_samples_per_send.
const samplesPerSend = 2000

// valueKind says how a series' value moves from one scrape to the next.
type valueKind uint8

const (
	kindCounter      valueKind = iota // integer increments, Poisson with mean a per scrape
	kindCounterFloat                  // float increments around a per scrape (CPU seconds, sums of durations)
	kindGaugeInt                      // small integer random walk around a, steps of ±b
	kindGaugeBytes                    // byte count around a, random walk in pages
	kindGaugeFloat                    // a fresh float around a every scrape (scrape durations)
	kindConst                         // a, forever (up, process_max_fds, build info)
	kindQuantile                      // a float that changes on about a third of the scrapes
)

// metricSeries is one series of the metrics load: its labels as sent and
// as stored, how its value moves, and the millisecond offset of its
// target's scrapes within the interval.
type metricSeries struct {
	sent   []prompb.Label // sorted by name, as Prometheus sends them
	lset   labels.Labels
	kind   valueKind
	a, b   float64
	offset int64 // ms
	start  float64
}

// metricJobs are the jobs of the load; targets are spread over them.
var metricJobs = []string{"api-gateway", "user-service", "order-service", "inventory-service", "payment-service",
	"auth-service", "notification-service", "search-service", "cart-service", "shipping-service"}

// targetSeries lists the series one scraped target exposes (200 of them,
// ~40 metric names): the HTTP server's counters and histograms, process
// and Go runtime metrics, a database client, a cache, gRPC client calls,
// log counts and the scrape's own series. Each entry is the extra labels
// (name first) and a value model; rng draws the target's parameters.
func targetSeries(rng *rand.Rand) []struct {
	lbls    []string
	kind    valueKind
	a, b    float64
	initial float64
} {
	type def = struct {
		lbls    []string
		kind    valueKind
		a, b    float64
		initial float64
	}
	var out []def
	add := func(kind valueKind, a, b, initial float64, lbls ...string) {
		out = append(out, def{lbls: lbls, kind: kind, a: a, b: b, initial: initial})
	}
	perScrape := func(rps float64) float64 { return rps * scrapeInterval.Seconds() }
	load := 5 + rng.Float64()*45 // requests per second of this target
	methods := []struct {
		m     string
		share float64
	}{{"GET", 0.8}, {"POST", 0.2}}
	routes := []struct {
		r      string
		share  float64
		median float64 // seconds
	}{{"/api/v1/items", 0.5, 0.04}, {"/api/v1/items/:id", 0.45, 0.015}, {"/healthz", 0.05, 0.001}}
	codes := []struct {
		c     string
		share float64
	}{{"200", 0.93}, {"201", 0.03}, {"400", 0.015}, {"404", 0.02}, {"500", 0.004}, {"503", 0.001}}
	les := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	for _, m := range methods {
		for _, r := range routes {
			rps := load * m.share * r.share
			for _, c := range codes {
				add(kindCounter, perScrape(rps*c.share), 0, math.Round(rng.Float64()*1e5*c.share),
					"http_requests_total", "method", m.m, "route", r.r, "status_code", c.c)
			}
			for _, le := range les {
				// Latency roughly log-logistic around the route's median.
				cdf := 1 / (1 + math.Pow(r.median/le, 2.5))
				add(kindCounter, perScrape(rps*cdf), 0, 0, "http_request_duration_seconds_bucket",
					"method", m.m, "route", r.r, "le", strconv.FormatFloat(le, 'g', -1, 64))
			}
			add(kindCounter, perScrape(rps), 0, 0, "http_request_duration_seconds_bucket", "method", m.m, "route", r.r, "le", "+Inf")
			add(kindCounterFloat, perScrape(rps*r.median*1.3), 0, 0, "http_request_duration_seconds_sum", "method", m.m, "route", r.r)
			add(kindCounter, perScrape(rps), 0, 0, "http_request_duration_seconds_count", "method", m.m, "route", r.r)
		}
	}
	add(kindGaugeInt, 3, 2, 3, "http_requests_in_flight")
	for _, le := range []string{"100", "1000", "10000", "100000", "1e+06"} {
		share := map[string]float64{"100": 0.1, "1000": 0.55, "10000": 0.9, "100000": 0.99, "1e+06": 1}[le]
		add(kindCounter, perScrape(load*share), 0, 0, "http_response_size_bytes_bucket", "le", le)
	}
	add(kindCounter, perScrape(load), 0, 0, "http_response_size_bytes_bucket", "le", "+Inf")
	add(kindCounterFloat, perScrape(load*2400), 0, 0, "http_response_size_bytes_sum")
	add(kindCounter, perScrape(load), 0, 0, "http_response_size_bytes_count")

	add(kindCounterFloat, 15*(0.05+rng.Float64()*0.4), 0, 1000*rng.Float64(), "process_cpu_seconds_total")
	rss := float64(64<<20 + rng.IntN(512<<20))
	add(kindGaugeBytes, rss, 64, rss, "process_resident_memory_bytes")
	add(kindGaugeBytes, rss*4, 16, rss*4, "process_virtual_memory_bytes")
	add(kindGaugeInt, 40, 1, 40, "process_open_fds")
	add(kindConst, 1048576, 0, 1048576, "process_max_fds")
	startTime := float64(1_764_000_000 - 3600*rng.IntN(30*24))
	add(kindConst, startTime, 0, startTime, "process_start_time_seconds")

	add(kindGaugeInt, 80, 6, 80, "go_goroutines")
	add(kindGaugeInt, 12, 0.2, 12, "go_threads")
	add(kindGaugeBytes, rss*0.4, 256, rss*0.4, "go_memstats_alloc_bytes")
	add(kindCounter, perScrape(load*150_000), 0, 1e9, "go_memstats_alloc_bytes_total")
	add(kindGaugeBytes, rss*0.5, 32, rss*0.5, "go_memstats_heap_inuse_bytes")
	add(kindGaugeInt, 250_000, 5_000, 250_000, "go_memstats_heap_objects")
	add(kindConst, rss*1.1, 0, rss*1.1, "go_memstats_sys_bytes")
	for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		base := 2e-5 * math.Pow(2.5, float64(i))
		add(kindQuantile, base, 0, base, "go_gc_duration_seconds", "quantile", q)
	}
	add(kindCounterFloat, perScrape(0.5)*1e-4, 0, 0.3, "go_gc_duration_seconds_sum")
	add(kindCounter, perScrape(0.5), 0, 3000, "go_gc_duration_seconds_count")
	add(kindConst, 1, 0, 1, "go_info", "version", "go1.26.8")

	add(kindGaugeInt, 8, 1, 8, "db_client_connections", "state", "idle")
	add(kindGaugeInt, 2, 1, 2, "db_client_connections", "state", "used")
	for _, op := range []struct {
		op     string
		rps    float64
		median float64
	}{{"select", load * 1.5, 0.003}, {"insert", load * 0.2, 0.008}} {
		for _, le := range []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1} {
			cdf := 1 / (1 + math.Pow(op.median/le, 2.5))
			add(kindCounter, perScrape(op.rps*cdf), 0, 0, "db_query_duration_seconds_bucket",
				"operation", op.op, "le", strconv.FormatFloat(le, 'g', -1, 64))
		}
		add(kindCounter, perScrape(op.rps), 0, 0, "db_query_duration_seconds_bucket", "operation", op.op, "le", "+Inf")
		add(kindCounterFloat, perScrape(op.rps*op.median*1.4), 0, 0, "db_query_duration_seconds_sum", "operation", op.op)
		add(kindCounter, perScrape(op.rps), 0, 0, "db_query_duration_seconds_count", "operation", op.op)
	}
	for _, c := range []string{"redis", "local"} {
		add(kindCounter, perScrape(load*0.9), 0, 0, "cache_requests_total", "cache", c, "result", "hit")
		add(kindCounter, perScrape(load*0.1), 0, 0, "cache_requests_total", "cache", c, "result", "miss")
	}
	for _, m := range []string{"GetUser", "ListOrders", "Reserve", "Charge"} {
		for _, c := range []struct {
			code  string
			share float64
		}{{"OK", 0.995}, {"Unavailable", 0.003}, {"DeadlineExceeded", 0.0015}, {"NotFound", 0.0005}} {
			add(kindCounter, perScrape(load*0.3*c.share), 0, 0, "grpc_client_handled_total", "grpc_method", m, "grpc_code", c.code)
		}
	}
	for _, l := range []struct {
		level string
		rps   float64
	}{{"debug", 0}, {"info", load * 2}, {"warn", load * 0.02}, {"error", load * 0.003}} {
		add(kindCounter, perScrape(l.rps), 0, 0, "log_messages_total", "level", l.level)
	}

	add(kindConst, 1, 0, 1, "up")
	add(kindGaugeFloat, 0.004+rng.Float64()*0.01, 0, 0, "scrape_duration_seconds")
	add(kindConst, 200, 0, 200, "scrape_samples_scraped")
	add(kindConst, 0, 0, 0, "scrape_series_added")
	add(kindConst, 200, 0, 200, "scrape_samples_post_metric_relabeling")
	return out
}

// newMetricSeries builds n series: whole targets of targetSeries' 200
// series each (the last one cut short), jobs round robin, one instance
// address per target. The same n always gives the same series and values.
func newMetricSeries(n int) []metricSeries {
	rng := rand.New(rand.NewPCG(42, 7))
	out := make([]metricSeries, 0, n)
	for target := 0; len(out) < n; target++ {
		job := metricJobs[target%len(metricJobs)]
		instance := fmt.Sprintf("10.%d.%d.%d:8080", 16+target/65536, target/256%256, target%256)
		offset := rng.Int64N(scrapeInterval.Milliseconds())
		for _, d := range targetSeries(rng) {
			if len(out) == n {
				break
			}
			kv := append([]string{"__name__", d.lbls[0], "job", job, "instance", instance}, d.lbls[1:]...)
			var sent []prompb.Label
			for i := 0; i < len(kv); i += 2 {
				sent = append(sent, prompb.Label{Name: kv[i], Value: kv[i+1]})
			}
			sort.Slice(sent, func(i, j int) bool { return sent[i].Name < sent[j].Name })
			out = append(out, metricSeries{sent: sent, lset: labels.FromStrings(kv...), kind: d.kind,
				a: d.a, b: d.b, offset: offset, start: d.initial})
		}
	}
	return out
}

// next returns the value after v for a series of this model.
func (s *metricSeries) next(v float64, rng *rand.Rand) float64 {
	switch s.kind {
	case kindCounter:
		return v + poisson(s.a, rng)
	case kindCounterFloat:
		return v + s.a*(0.5+rng.Float64())
	case kindGaugeInt:
		v += math.Round(rng.NormFloat64() * s.b)
		// Pulled back towards the mean so that the walk stays near it.
		v += math.Round((s.a - v) * 0.05)
		return max(v, 0)
	case kindGaugeBytes:
		v += 4096 * math.Round(rng.NormFloat64()*s.b)
		v += 4096 * math.Round((s.a-v)*0.01/4096)
		return max(v, 4096)
	case kindGaugeFloat:
		return s.a * (0.7 + 0.6*rng.Float64())
	case kindQuantile:
		if rng.IntN(3) == 0 {
			return s.a * (0.5 + rng.Float64())
		}
		return v
	}
	return s.a
}

// poisson draws from a Poisson distribution of the given mean (normal
// approximation above 30).
func poisson(mean float64, rng *rand.Rand) float64 {
	if mean <= 0 {
		return 0
	}
	if mean > 30 {
		return max(0, math.Round(mean+math.Sqrt(mean)*rng.NormFloat64()))
	}
	l, k, p := math.Exp(-mean), 0.0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// seriesStream produces the samples of a subset of the series scrape
// round after scrape round: round r of series i is at base + r×15 s plus
// the series' target offset. Not safe for concurrent use.
type seriesStream struct {
	all    []metricSeries
	idx    []int // the subset, in order
	vals   []float64
	rng    *rand.Rand
	base   int64 // ms
	rounds int   // rounds to produce
	round  int
	pos    int
}

func newSeriesStream(all []metricSeries, idx []int, base int64, rounds int, seed uint64) *seriesStream {
	s := &seriesStream{all: all, idx: idx, vals: make([]float64, len(idx)), rng: rand.New(rand.NewPCG(seed, 99)),
		base: base, rounds: rounds}
	for i, j := range idx {
		s.vals[i] = all[j].start
	}
	return s
}

// next returns the next sample as (series index, timestamp ms, value);
// ok is false once every round is produced.
func (s *seriesStream) next() (series int, t int64, v float64, ok bool) {
	if s.round >= s.rounds || len(s.idx) == 0 {
		return 0, 0, 0, false
	}
	j := s.idx[s.pos]
	sr := &s.all[j]
	if s.round > 0 {
		s.vals[s.pos] = sr.next(s.vals[s.pos], s.rng)
	}
	v = s.vals[s.pos]
	t = s.base + int64(s.round)*scrapeInterval.Milliseconds() + sr.offset
	if s.pos++; s.pos == len(s.idx) {
		s.pos = 0
		s.round++
	}
	return j, t, v, true
}

// metricsLoad is what the remote_write senders observed.
type metricsLoad struct {
	acked     int64 // samples of requests answered 204
	requests  int64
	retries   int64 // 429/5xx answers, retried
	failures  int64 // other answers or transport errors, not retried
	bytesSent int64 // compressed request bodies
	elapsed   time.Duration
	generator time.Duration
	firstErr  string
}

// remoteWrite sends the samples of rounds scrape rounds of every series to
// url from shards concurrent senders, as Prometheus's remote_write queue
// does: each sender owns the series i with i % shards == its number and
// sends its samples in time order, samplesPerSend per request, one
// TimeSeries of one sample each. A request answered 429 or 5xx is sent
// again after a pause; the run stops once every round is acknowledged or
// maxDuration passes.
func remoteWrite(ctx context.Context, url string, all []metricSeries, base int64, rounds, shards int, maxDuration time.Duration) metricsLoad {
	var res metricsLoad
	var errOnce sync.Once
	ctx, cancel := context.WithTimeout(ctx, maxDuration)
	defer cancel()
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: shards, DisableCompression: true}}
	fail := func(msg string) {
		atomic.AddInt64(&res.failures, 1)
		errOnce.Do(func() { res.firstErr = msg })
	}
	cpu0 := selfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for sh := 0; sh < shards; sh++ {
		var idx []int
		for i := sh; i < len(all); i += shards {
			idx = append(idx, i)
		}
		wg.Add(1)
		go func(sh int) {
			defer wg.Done()
			stream := newSeriesStream(all, idx, base, rounds, uint64(sh))
			req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, samplesPerSend)}
			samples := make([]prompb.Sample, samplesPerSend)
			var raw, body []byte
			for ctx.Err() == nil {
				req.Timeseries = req.Timeseries[:0]
				for len(req.Timeseries) < samplesPerSend {
					j, t, v, ok := stream.next()
					if !ok {
						break
					}
					smp := samples[len(req.Timeseries) : len(req.Timeseries)+1]
					smp[0] = prompb.Sample{Timestamp: t, Value: v}
					req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: all[j].sent, Samples: smp})
				}
				n := len(req.Timeseries)
				if n == 0 {
					return
				}
				size := req.Size()
				if cap(raw) < size {
					raw = make([]byte, size)
				}
				raw = raw[:size]
				if _, err := req.MarshalToSizedBuffer(raw); err != nil {
					fail(err.Error())
					return
				}
				body = snappy.Encode(body[:cap(body)], raw)
				for ctx.Err() == nil {
					code, msg, err := postWrite(ctx, client, url, body)
					atomic.AddInt64(&res.requests, 1)
					if err != nil {
						if ctx.Err() == nil {
							fail(err.Error())
						}
						break
					}
					if code == http.StatusNoContent || code == http.StatusOK {
						atomic.AddInt64(&res.acked, int64(n))
						atomic.AddInt64(&res.bytesSent, int64(len(body)))
						break
					}
					if code == http.StatusTooManyRequests || code >= 500 {
						atomic.AddInt64(&res.retries, 1)
						time.Sleep(50 * time.Millisecond)
						continue
					}
					fail(fmt.Sprintf("%d %s", code, msg))
					break
				}
			}
		}(sh)
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.generator = selfCPU() - cpu0
	return res
}

// postWrite sends one remote_write 1.0 request and returns its status and,
// for a failure, the start of the answer.
func postWrite(ctx context.Context, client *http.Client, url string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("User-Agent", "vigil-bench")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, string(msg), nil
}
