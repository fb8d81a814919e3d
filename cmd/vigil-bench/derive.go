package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// deriveRun is one ingest of the span load with derivation on or off.
type deriveRun struct {
	on       bool
	spans    int64 // committed
	elapsed  time.Duration
	vigilCPU time.Duration
	pgCPU    time.Duration
	edges    float64 // calls counted on the service graph (derivation on)
}

func (r deriveRun) rate() float64 { return float64(r.spans) / r.elapsed.Seconds() }

// runDerive measures what deriving RED and service-graph series costs the
// span ingest: the same load (tracePlan, -spans per run) into a fresh
// database with derive.enabled false and true, alternately, -derive-rounds
// times each, and reports spans/s and CPU per span of each mode and their
// ratio. Each run stops Vigil (which writes the last derived series) and
// counts the calls the service graph holds.
func runDerive(ctx context.Context, o options, logger *slog.Logger, w io.Writer) error {
	var runs []deriveRun
	for round := 0; round < o.deriveRounds; round++ {
		for _, on := range []bool{false, true} {
			r, err := deriveOnce(ctx, o, on, logger)
			if err != nil {
				return err
			}
			logger.Info("derive run", "on", on, "spans", r.spans, "spans_per_s", int(r.rate()))
			runs = append(runs, r)
		}
	}
	fmt.Fprintf(w, "# vigil-bench -signal derive\n\nmachine: %s\n", machine())
	fmt.Fprintf(w, "load: %d workers × %d ten-span traces per OTLP/gRPC request (gateway → 3 services → databases and a queue), %d spans per run, %d rounds of off/on\n\n",
		o.workers, o.tracesPerRq, o.targetSpans, o.deriveRounds)
	fmt.Fprintf(w, "| run | derivation | spans/s | CPU per span: Vigil | CPU per span: PostgreSQL | service-graph calls |\n|---|---|---|---|---|---|\n")
	var off, on []deriveRun
	for i, r := range runs {
		mode := "off"
		if r.on {
			mode = "on"
			on = append(on, r)
		} else {
			off = append(off, r)
		}
		fmt.Fprintf(w, "| %d | %s | %.0f | %.2f µs | %.2f µs | %.0f |\n", i+1, mode, r.rate(),
			perSpan(r.vigilCPU, r.spans), perSpan(r.pgCPU, r.spans), r.edges)
	}
	rateOff, rateOn := medianOf(off, deriveRun.rate), medianOf(on, deriveRun.rate)
	cpu := func(r deriveRun) float64 { return perSpan(r.vigilCPU, r.spans) }
	cpuOff, cpuOn := medianOf(off, cpu), medianOf(on, cpu)
	fmt.Fprintf(w, "\n| figure (medians) | off | on | on / off |\n|---|---|---|---|\n")
	fmt.Fprintf(w, "| spans/s | %.0f | %.0f | **%.3f** |\n", rateOff, rateOn, rateOn/rateOff)
	fmt.Fprintf(w, "| Vigil CPU per span | %.2f µs | %.2f µs | **%.3f** |\n", cpuOff, cpuOn, cpuOn/cpuOff)
	return nil
}

func perSpan(d time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Nanoseconds()) / 1000 / float64(n)
}

func medianOf(rs []deriveRun, f func(deriveRun) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func deriveOnce(ctx context.Context, o options, on bool, logger *slog.Logger) (deriveRun, error) {
	r := deriveRun{on: on}
	dbURL, drop, err := createDB(ctx, o.adminURL, "vigil_bench_derive_", o.keep)
	if err != nil {
		return r, err
	}
	defer drop()
	cfgFile, err := os.CreateTemp("", "vigil-bench-*.yaml")
	if err != nil {
		return r, fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(cfgFile.Name())
	if _, err := fmt.Fprintf(cfgFile, "derive:\n  enabled: %t\n", on); err != nil {
		return r, fmt.Errorf("write config: %w", err)
	}
	if err := cfgFile.Close(); err != nil {
		return r, fmt.Errorf("write config: %w", err)
	}
	bin, _ := filepath.Abs(o.vigilBin)
	vp, err := startVigil(ctx, bin, dbURL, false, "VIGIL_CONFIG="+cfgFile.Name())
	if err != nil {
		return r, err
	}
	pid := vp.pid
	vcpu0, pg0 := procCPU(pid), postgresCPU()
	load, err := generate(ctx, vp.addrs["otlp_grpc"], o)
	if err != nil {
		_ = vp.stop()
		return r, err
	}
	r.elapsed = load.elapsed
	r.vigilCPU, r.pgCPU = procCPU(pid)-vcpu0, postgresCPU()-pg0
	// Stopping writes the last derived series; a second process reads them.
	if err := vp.stop(); err != nil {
		logger.Warn("vigil exit", "err", err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return r, fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM spans").Scan(&r.spans); err != nil {
		return r, fmt.Errorf("count spans: %w", err)
	}
	if on {
		vp, err := startVigil(ctx, bin, dbURL, false, "VIGIL_CONFIG="+cfgFile.Name())
		if err != nil {
			return r, err
		}
		r.edges, err = instantValue("http://"+vp.addrs["http"], `sum(traces_service_graph_request_total)`)
		_ = vp.stop()
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// instantValue runs an instant query expected to return one sample.
func instantValue(base, query string) (float64, error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return 0, fmt.Errorf("query %s: %w", query, err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, fmt.Errorf("query %s: %w", query, err)
	}
	if len(out.Data.Result) != 1 {
		return 0, fmt.Errorf("query %s: %d results", query, len(out.Data.Result))
	}
	s, _ := out.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}
