package registry

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
)

// The health series, named and labelled as consul_exporter's.
const (
	statusMetric  = "consul_health_service_status"
	healthyMetric = "consul_catalog_service_node_healthy"
)

// seriesStatuses are the values of the status label: one series each, 1
// for the current status and 0 for the others.
var seriesStatuses = [...]string{StatusPassing, StatusWarning, StatusCritical, StatusMaintenance}

var (
	statusMeta = promstorage.AppendV2Options{MetricFamilyName: statusMetric, Metadata: metadata.Metadata{Type: model.MetricTypeGauge,
		Help: "Status of health checks associated with a service."}}
	healthyMeta = promstorage.AppendV2Options{MetricFamilyName: healthyMetric, Metadata: metadata.Metadata{Type: model.MetricTypeGauge,
		Help: "Is this service healthy on this node?"}}
)

// sample is one value of one health series.
type sample struct {
	ls   labels.Labels
	v    float64
	opts *promstorage.AppendV2Options
}

// seriesStatus is the status a check's series report: a maintenance
// check's is "maintenance".
func seriesStatus(c Check) string {
	if c.Kind == KindMaintenance {
		return StatusMaintenance
	}
	return c.Status
}

func (c *checker) statusSamples(chk Check, v func(status string) float64) []sample {
	out := make([]sample, 0, len(seriesStatuses))
	for _, s := range seriesStatuses {
		ls := labels.FromStrings(model.MetricNameLabel, statusMetric, "check", chk.ID, "node", c.r.cfg.NodeName,
			"service_id", chk.ServiceID, "service_name", chk.ServiceName, "status", s)
		out = append(out, sample{ls, v(s), &statusMeta})
	}
	return out
}

func (c *checker) healthyLabels(chk Check) labels.Labels {
	return labels.FromStrings(model.MetricNameLabel, healthyMetric, "node", c.r.cfg.NodeName,
		"service_id", chk.ServiceID, "service_name", chk.ServiceName)
}

// seriesWriteTimeout bounds one write of health series.
const seriesWriteTimeout = 5 * time.Second

// writeSeries writes the status series of chk and the health of its
// service, from the statuses the checker knows.
func (c *checker) writeSeries(ctx context.Context, now time.Time, chk Check) {
	if c.r.app == nil {
		return
	}
	cur := seriesStatus(chk)
	samples := c.statusSamples(chk, func(s string) float64 {
		if s == cur {
			return 1
		}
		return 0
	})
	healthy := 1.0
	for _, e := range c.entries {
		if e.check.ServiceID == chk.ServiceID && e.check.Status != StatusPassing {
			healthy = 0
		}
	}
	samples = append(samples, sample{c.healthyLabels(chk), healthy, &healthyMeta})
	c.append(ctx, now, samples)
}

// writeStale ends the series of checks that are gone, and the health
// series of their services when no check of theirs is left.
func (c *checker) writeStale(ctx context.Context, now time.Time, gone []Check) {
	if c.r.app == nil {
		return
	}
	stale := math.Float64frombits(value.StaleNaN)
	var samples []sample
	services := map[string]Check{}
	for _, chk := range gone {
		samples = append(samples, c.statusSamples(chk, func(string) float64 { return stale })...)
		services[chk.ServiceID] = chk
	}
	for _, e := range c.entries {
		delete(services, e.check.ServiceID)
	}
	for _, chk := range services {
		samples = append(samples, sample{c.healthyLabels(chk), stale, &healthyMeta})
	}
	c.append(ctx, now, samples)
}

// append writes samples in one commit. A result obtained before shutdown
// is still written (the metric pipeline outlives the registry), within a
// bound of its own.
func (c *checker) append(ctx context.Context, now time.Time, samples []sample) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), seriesWriteTimeout)
	defer cancel()
	app := c.r.app.AppenderV2(ctx)
	t := now.UnixMilli()
	for _, s := range samples {
		if _, err := app.Append(0, s.ls, 0, t, s.v, nil, nil, *s.opts); err != nil {
			_ = app.Rollback()
			c.r.logger.WarnContext(ctx, "append health series", "err", err)
			return
		}
	}
	if err := app.Commit(); err != nil {
		c.r.logger.WarnContext(ctx, "commit health series", "err", err)
	}
}
