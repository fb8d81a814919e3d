package registry

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/registrystore"
)

// passiveSeriesInterval is how often the health series of a maintenance
// check are written; a TTL check's are written every TTL.
const passiveSeriesInterval = 30 * time.Second

// ttlExpiredOutput is the output of a TTL check that was not updated in
// time, as Consul words it.
const ttlExpiredOutput = "TTL expired"

// checker runs the health checks while its replica is elected. Only its
// lead goroutine touches its fields.
type checker struct {
	r       *Registry
	entries map[string]*entry // by check ID
	loaded  int64             // the index of the state entries reflect
	probe   *prober
}

// entry is one check as the checker schedules it.
type entry struct {
	check   Check
	next    time.Time // when it runs (or its series are written) next
	running bool
}

// result is what a check run reports back to the lead goroutine.
type result struct {
	id      string
	started time.Time
	status  string
	output  string
	ok      bool // the result was stored
	gone    bool // the check was deleted meanwhile
}

func newChecker(r *Registry) *checker {
	return &checker{r: r, probe: newProber()}
}

// lead runs the checks until ctx ends, which is when this replica stops
// being elected.
func (c *checker) lead(ctx context.Context) error {
	r := c.r
	r.logger.InfoContext(ctx, "running health checks")
	c.entries, c.loaded = map[string]*entry{}, -1
	results := make(chan result, r.cfg.MaxChecksInFlight)
	sem := make(chan struct{}, r.cfg.MaxChecksInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	nextSweep, nextRetention := time.Time{}, time.Time{}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		idx, changed := r.changes()
		if idx != c.loaded {
			c.reload(ctx)
		}
		now := r.now()
		for id, e := range c.entries {
			if e.running || now.Before(e.next) {
				continue
			}
			if passive(e.check.Kind) {
				c.writeSeries(ctx, now, e.check)
				e.next = now.Add(seriesInterval(e.check))
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				continue // all slots busy: it runs when one frees
			}
			e.running = true
			chk := e.check
			wg.Go(func() {
				defer func() { <-sem }()
				results <- c.run(ctx, id, chk, now)
			})
		}
		if !now.Before(nextSweep) {
			c.sweep(ctx, now)
			nextSweep = now.Add(r.cfg.SweepInterval)
		}
		if !now.Before(nextRetention) {
			if _, err := r.store.DeleteHistoryBefore(ctx, now.Add(-r.cfg.HistoryRetention)); err != nil && ctx.Err() == nil {
				r.logger.WarnContext(ctx, "delete old check history", "err", err)
			}
			nextRetention = now.Add(time.Hour)
		}
		wake := nextSweep
		for _, e := range c.entries {
			if !e.running && e.next.Before(wake) {
				wake = e.next
			}
		}
		timer.Reset(max(wake.Sub(r.now()), time.Millisecond))
		select {
		case <-ctx.Done():
			r.logger.InfoContext(ctx, "stopped running health checks")
			return ctx.Err()
		case <-timer.C:
		case <-changed:
		case res := <-results:
			c.done(ctx, res)
		}
	}
}

func passive(kind string) bool { return kind == KindTTL || kind == KindMaintenance }

func seriesInterval(c Check) time.Duration {
	switch c.Kind {
	case KindTTL:
		return c.Definition.TTL
	case KindMaintenance:
		return passiveSeriesInterval
	}
	return c.Definition.Interval
}

// reload brings the schedule in line with the stored state: new checks
// are scheduled after their last run (so that a new leader keeps the
// rhythm of the old one), changed definitions take effect, and checks
// gone get stale markers.
func (c *checker) reload(ctx context.Context) {
	st, err := c.r.State(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.r.logger.WarnContext(ctx, "read registry", "err", err)
		}
		return
	}
	c.loaded = st.Index
	now := c.r.now()
	seen := make(map[string]bool, len(st.Checks))
	for _, chk := range st.Checks {
		seen[chk.ID] = true
		e := c.entries[chk.ID]
		if e == nil {
			e = &entry{next: now}
			if !chk.LastRun.IsZero() && !passive(chk.Kind) {
				e.next = chk.LastRun.Add(chk.Definition.Interval)
			}
			c.entries[chk.ID] = e
		} else if e.check.Definition.Interval != chk.Definition.Interval || e.check.Kind != chk.Kind {
			e.next = now
		}
		if passive(chk.Kind) && e.check.Status != chk.Status {
			e.next = now // a TTL update: its series follow at once
		}
		e.check = chk
	}
	var gone []Check
	for id, e := range c.entries {
		if !seen[id] && !e.running {
			gone = append(gone, e.check)
			delete(c.entries, id)
		}
	}
	if len(gone) > 0 {
		c.writeStale(ctx, now, gone)
	}
}

// run runs one active check and stores its result.
func (c *checker) run(ctx context.Context, id string, chk Check, now time.Time) result {
	status, output := c.probe.check(ctx, chk)
	res := result{id: id, started: now, status: status, output: output}
	if ctx.Err() != nil {
		return res // leadership lost mid-run: the next leader runs it
	}
	c.r.m.runs.WithLabelValues(chk.Kind, status).Inc()
	rec, err := c.r.store.RecordResult(ctx, registrystore.Result{CheckID: id, Status: status, Output: output, At: c.r.now()})
	if errors.Is(err, storage.ErrNotFound) {
		res.gone = true
		return res
	}
	if err != nil {
		if ctx.Err() == nil {
			c.r.logger.WarnContext(ctx, "record check result", "check", id, "err", err)
		}
		return res
	}
	res.ok = true
	c.r.advance(rec.Index)
	if rec.Transition != nil {
		c.r.m.transitioned(rec.Transition)
		c.r.logger.InfoContext(ctx, "check status changed", "check", id, "service", chk.ServiceID, "status", status)
	}
	return res
}

// done takes a run's result into the schedule and writes its series.
func (c *checker) done(ctx context.Context, res result) {
	e := c.entries[res.id]
	if e == nil {
		return
	}
	e.running = false
	if res.gone {
		delete(c.entries, res.id)
		c.writeStale(ctx, c.r.now(), []Check{e.check})
		return
	}
	e.next = res.started.Add(e.check.Definition.Interval)
	if !res.ok {
		return
	}
	e.check.Status, e.check.Output = res.status, res.output
	c.writeSeries(ctx, c.r.now(), e.check)
}

// sweep expires TTL checks and deregisters services critical too long.
func (c *checker) sweep(ctx context.Context, now time.Time) {
	r := c.r
	ts, err := r.store.ExpireTTL(ctx, now, ttlExpiredOutput)
	if err != nil && ctx.Err() == nil {
		r.logger.WarnContext(ctx, "expire ttl checks", "err", err)
	}
	for i := range ts {
		r.m.transitioned(&ts[i])
		r.logger.InfoContext(ctx, "ttl check expired", "check", ts[i].CheckID, "service", ts[i].ServiceID)
	}
	ids, err := r.store.DeregisterCritical(ctx, now)
	if err != nil && ctx.Err() == nil {
		r.logger.WarnContext(ctx, "deregister critical services", "err", err)
	}
	for _, id := range ids {
		r.m.deregs.Inc()
		r.logger.InfoContext(ctx, "deregistered critical service", "service", id)
	}
	if len(ts) > 0 || len(ids) > 0 {
		if idx, err := r.store.Index(ctx); err == nil {
			r.advance(idx)
		}
	}
}
