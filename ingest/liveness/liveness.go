// Package liveness writes when each service last sent anything, so that a
// service nobody scrapes (it only pushes spans, logs or metrics over OTLP,
// Jaeger or Zipkin) can still be alerted on when it goes silent.
//
// The receivers' committed data (spans, log records, OTLP metrics) is
// shown to a Tracker, which keeps, per service.name and
// service.instance.id of the resources, the time data was last committed.
// Every FlushInterval the Tracker writes
//
//	vigil_service_last_seen_timestamp_seconds{service_name, service_instance_id}
//
// (Unix seconds; service_instance_id absent when the resource has none)
// through a storage.AppendableV2, Vigil's metric pipeline. The series is
// written again at every flush with the same value while the service is
// silent, so `time() - max by (service_name) (…)` grows; the shipped rule
// pack's ServiceSilent alerts on it. An instance silent for ForgetAfter
// gets a stale marker and is forgotten (a replaced pod's instance does not
// stay forever). At most MaxInstances are held; beyond, new ones are
// dropped and counted.
//
// Each replica writes the series of what it received, labelled with its
// own vigil_replica, so replicas never write the same series; the rule
// takes the maximum over them.
package liveness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// MetricName is the name of the series the Tracker writes.
const MetricName = "vigil_service_last_seen_timestamp_seconds"

// Config bounds the Tracker.
type Config struct {
	// FlushInterval is how often the series are written (15 s).
	FlushInterval time.Duration
	// ForgetAfter is how long an instance may stay silent before its
	// series gets a stale marker and is forgotten (24 h).
	ForgetAfter time.Duration
	// MaxInstances bounds the instances held (10,000).
	MaxInstances int
	// Replica is the vigil_replica label value.
	Replica string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{FlushInterval: 15 * time.Second, ForgetAfter: 24 * time.Hour, MaxInstances: 10_000}
}

// Options are the Tracker's dependencies.
type Options struct {
	Appendable promstorage.AppendableV2 // required
	Logger     *slog.Logger             // nil = discard
	Registerer prometheus.Registerer    // nil = no self-metrics
	Now        func() time.Time         // nil = time.Now
}

type instance struct{ service, id string }

type seen struct {
	last    time.Time // data last committed
	written bool      // a sample was written since it was first seen
}

// Tracker records when each service instance last sent data. Safe for
// concurrent use.
type Tracker struct {
	cfg     Config
	app     promstorage.AppendableV2
	logger  *slog.Logger
	now     func() time.Time
	dropped prometheus.Counter

	mu        sync.Mutex
	instances map[instance]*seen
	flushMu   sync.Mutex
}

// New returns a Tracker; call Run to write its series.
func New(cfg Config, opts Options) (*Tracker, error) {
	switch {
	case opts.Appendable == nil:
		return nil, errors.New("liveness: no appendable")
	case cfg.FlushInterval <= 0 || cfg.ForgetAfter <= 0 || cfg.MaxInstances <= 0:
		return nil, fmt.Errorf("liveness: invalid config %+v", cfg)
	}
	t := &Tracker{cfg: cfg, app: opts.Appendable, logger: opts.Logger, now: opts.Now, instances: map[instance]*seen{},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_liveness_instances_dropped_total",
			Help: "Service instances not tracked because the most were held."})}
	if t.logger == nil {
		t.logger = slog.New(slog.DiscardHandler)
	}
	if t.now == nil {
		t.now = time.Now
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(t.dropped); err != nil {
			return nil, fmt.Errorf("liveness metrics: %w", err)
		}
	}
	return t, nil
}

// Traces records the resources of committed spans (the span pipeline's
// committed hook).
func (t *Tracker) Traces(batch []ptrace.Traces) {
	now := t.now()
	for _, td := range batch {
		rs := td.ResourceSpans()
		for i := range rs.Len() {
			t.see(rs.At(i).Resource().Attributes(), now)
		}
	}
}

// Logs records the resources of committed log records.
func (t *Tracker) Logs(batch []plog.Logs) {
	now := t.now()
	for _, ld := range batch {
		rl := ld.ResourceLogs()
		for i := range rl.Len() {
			t.see(rl.At(i).Resource().Attributes(), now)
		}
	}
}

// Metrics records the resources of stored OTLP metrics.
func (t *Tracker) Metrics(md pmetric.Metrics) {
	now := t.now()
	rm := md.ResourceMetrics()
	for i := range rm.Len() {
		t.see(rm.At(i).Resource().Attributes(), now)
	}
}

func (t *Tracker) see(attrs pcommon.Map, now time.Time) {
	svc, ok := attrs.Get("service.name")
	if !ok || svc.Type() != pcommon.ValueTypeStr || svc.Str() == "" {
		return
	}
	var id string
	if v, ok := attrs.Get("service.instance.id"); ok && v.Type() == pcommon.ValueTypeStr {
		id = v.Str()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := instance{svc.Str(), id}
	if s, ok := t.instances[k]; ok {
		s.last = now
		return
	}
	if len(t.instances) >= t.cfg.MaxInstances {
		t.dropped.Inc()
		return
	}
	// Own copies: the pdata strings belong to the request.
	t.instances[instance{strings.Clone(k.service), strings.Clone(k.id)}] = &seen{last: now}
}

// Run writes the series every FlushInterval until ctx ends.
func (t *Tracker) Run(ctx context.Context) error {
	tick := time.NewTicker(t.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			fctx, cancel := context.WithTimeout(ctx, t.cfg.FlushInterval)
			if err := t.Flush(fctx); err != nil && ctx.Err() == nil {
				t.logger.WarnContext(ctx, "write liveness series", "err", err)
			}
			cancel()
		}
	}
}

type sample struct {
	ls labels.Labels
	v  float64
}

// Flush writes every tracked instance's last-seen time, and stale markers
// for those forgotten.
func (t *Tracker) Flush(ctx context.Context) error {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	now := t.now()
	var out []sample
	t.mu.Lock()
	for k, s := range t.instances {
		ls := t.labels(k)
		if now.Sub(s.last) > t.cfg.ForgetAfter {
			delete(t.instances, k)
			if s.written {
				out = append(out, sample{ls, math.Float64frombits(value.StaleNaN)})
			}
			continue
		}
		s.written = true
		out = append(out, sample{ls, float64(s.last.UnixMilli()) / 1000})
	}
	t.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	app := t.app.AppenderV2(ctx)
	opts := promstorage.AppendV2Options{MetricFamilyName: MetricName, Metadata: metadata.Metadata{
		Type: model.MetricTypeGauge, Unit: "seconds",
		Help: "Unix time at which Vigil last stored spans, logs or OTLP metrics of this service instance."}}
	for _, s := range out {
		if _, err := app.Append(0, s.ls, 0, now.UnixMilli(), s.v, nil, nil, opts); err != nil {
			return errors.Join(fmt.Errorf("append %s: %w", MetricName, err), app.Rollback())
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("commit %s: %w", MetricName, err)
	}
	return nil
}

func (t *Tracker) labels(k instance) labels.Labels {
	b := labels.NewScratchBuilder(4)
	b.Add(model.MetricNameLabel, MetricName)
	b.Add("service_name", k.service)
	if k.id != "" {
		b.Add("service_instance_id", k.id)
	}
	if t.cfg.Replica != "" {
		b.Add("vigil_replica", t.cfg.Replica)
	}
	b.Sort()
	return b.Labels()
}
