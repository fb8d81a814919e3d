package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// partitionedTable is a table partitioned by range of time: by day, or by
// chunk window for raw metric samples, whose past partitions are compacted
// into metric_chunks and dropped, so maintenance creates them only from
// the current window on (a late write creates its own, see copyIn).
type partitionedTable struct {
	name     string
	period   time.Duration // 24 h, or metricChunkWindow
	layout   string        // of the partition name's suffix
	fromNow  bool          // create from the current period on, not from the retention cutoff
	aheadMax int           // days created ahead, at most (0 = the configured AheadDays)
}

// logPartitionPeriod is the width of a logs partition.
const logPartitionPeriod = 2 * time.Hour

// partitionedTables lists the tables partitioned by time. Later signals
// add theirs here.
var partitionedTables = []partitionedTable{
	{name: "spans", period: 24 * time.Hour, layout: partitionDateLayout},
	// Logs by two-hour window: a newest-first search reads the windows in
	// order (an ordered Append) and stops once it has its page, so the
	// text index of one window, not of a day, bounds its work.
	{name: "logs", period: logPartitionPeriod, layout: partitionDateLayout + "_15", fromNow: true, aheadMax: 1},
	{name: "metric_samples", period: metricChunkWindow, layout: partitionDateLayout + "_15", fromNow: true, aheadMax: 1},
	{name: "metric_chunks", period: 24 * time.Hour, layout: partitionDateLayout},
}

// partitionedTableNames returns the names of partitionedTables.
func partitionedTableNames() []string {
	out := make([]string, len(partitionedTables))
	for i, t := range partitionedTables {
		out[i] = t.name
	}
	return out
}

func tableSpec(name string) (partitionedTable, bool) {
	for _, t := range partitionedTables {
		if t.name == name {
			return t, true
		}
	}
	return partitionedTable{}, false
}

// maintenanceLockID is the advisory lock key held while creating or
// dropping partitions ("vigilprt"), so replicas never race on DDL.
const maintenanceLockID int64 = 0x76696769_6c707274

const partitionDateLayout = "20060102"

// dayStart truncates t to midnight UTC.
func dayStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// periodStart truncates t to the start of its partition period.
func (t partitionedTable) periodStart(at time.Time) time.Time {
	return periodStart(at, t.period)
}

// periodStart truncates at to the start of its period, periods dividing a
// UTC day evenly.
func periodStart(at time.Time, period time.Duration) time.Time {
	d := dayStart(at)
	return d.Add(at.UTC().Sub(d).Truncate(period))
}

// partitionName names the partition of t that starts at start.
func (t partitionedTable) partitionName(start time.Time) string {
	return t.name + "_p" + start.UTC().Format(t.layout)
}

func partitionName(table string, day time.Time) string {
	spec, _ := tableSpec(table)
	return spec.partitionName(day)
}

// Partitions keeps the partitions of every partitioned table: it
// creates them ahead of time and drops those entirely older than the
// retention period. Safe for concurrent use; several replicas coordinate
// through an advisory lock.
type Partitions struct {
	pool      *pgxpool.Pool
	retention time.Duration
	tableRet  map[string]time.Duration // per-table overrides of retention
	ahead     int                      // days created beyond today
	now       func() time.Time
	logger    *slog.Logger

	mu    sync.Mutex
	known map[string]bool // partitions known to exist
}

// PartitionsConfig configures partition maintenance.
type PartitionsConfig struct {
	Retention time.Duration // how long data is kept; whole days are dropped
	AheadDays int           // days created beyond today (default 2)
	// TableRetention overrides Retention per table ("spans", "logs"), so
	// that each signal keeps its own history; absent or zero entries use
	// Retention.
	TableRetention map[string]time.Duration
	Now            func() time.Time // nil = time.Now
	Logger         *slog.Logger     // nil = discard
}

// NewPartitions returns a partition keeper for pool.
func NewPartitions(pool *pgxpool.Pool, cfg PartitionsConfig) *Partitions {
	if cfg.AheadDays <= 0 {
		cfg.AheadDays = 2
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Partitions{pool: pool, retention: cfg.Retention, tableRet: cfg.TableRetention, ahead: cfg.AheadDays, now: cfg.Now,
		logger: cfg.Logger.With("component", "partitions"), known: map[string]bool{}}
}

// Maintain creates the partitions of every table for every period from
// now minus the table's retention (or from the current period for raw
// metric samples) to now+ahead, and drops the partitions whose whole
// period lies before now minus the table's retention.
func (p *Partitions) Maintain(ctx context.Context) error {
	now := p.now()
	cutoffs := make(map[string]time.Time, len(partitionedTables))
	for _, t := range partitionedTables {
		ahead := p.ahead
		if t.aheadMax > 0 {
			ahead = min(ahead, t.aheadMax)
		}
		last := dayStart(now).AddDate(0, 0, ahead)
		first := t.periodStart(now.Add(-p.retentionOf(t.name)))
		cutoffs[t.name] = first
		if t.fromNow {
			first = t.periodStart(now)
		}
		var starts []time.Time
		for d := first; !d.After(last); d = d.Add(t.period) {
			starts = append(starts, d)
		}
		if err := p.ensure(ctx, []partitionedTable{t}, starts); err != nil {
			return err
		}
	}
	return p.dropBefore(ctx, cutoffs)
}

// retentionOf returns the retention of table.
func (p *Partitions) retentionOf(table string) time.Duration {
	if r := p.tableRet[table]; r > 0 {
		return r
	}
	return p.retention
}

// Ensure creates the partitions of every table holding the given times if
// they are missing.
func (p *Partitions) Ensure(ctx context.Context, times []time.Time) error {
	return p.ensure(ctx, partitionedTables, times)
}

// ensure creates the partitions of tables holding the given times.
func (p *Partitions) ensure(ctx context.Context, tables []partitionedTable, times []time.Time) error {
	type part struct {
		table partitionedTable
		start time.Time
	}
	var missing []part
	seen := map[string]bool{}
	p.mu.Lock()
	for _, at := range times {
		for _, t := range tables {
			start := t.periodStart(at)
			name := t.partitionName(start)
			if !p.known[name] && !seen[name] {
				seen[name] = true
				missing = append(missing, part{t, start})
			}
		}
	}
	p.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", maintenanceLockID); err != nil {
			return err
		}
		for _, m := range missing {
			name := m.table.partitionName(m.start)
			sql := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')",
				pgx.Identifier{name}.Sanitize(), pgx.Identifier{m.table.name}.Sanitize(),
				m.start.Format(time.RFC3339), m.start.Add(m.table.period).Format(time.RFC3339))
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("create partition %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ensure partitions: %w", classify(err))
	}
	p.mu.Lock()
	for _, m := range missing {
		p.known[m.table.partitionName(m.start)] = true
	}
	p.mu.Unlock()
	return nil
}

// forget drops name from the partitions known to exist, after it was
// dropped.
func (p *Partitions) forget(name string) {
	p.mu.Lock()
	delete(p.known, name)
	p.mu.Unlock()
}

// dropBefore drops every daily partition whose day is before its table's
// cutoff.
func (p *Partitions) dropBefore(ctx context.Context, cutoffs map[string]time.Time) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", maintenanceLockID); err != nil {
			return fmt.Errorf("drop partitions: %w", classify(err))
		}
		rows, err := tx.Query(ctx, `SELECT c.relname, p.relname FROM pg_inherits i
			JOIN pg_class c ON c.oid = i.inhrelid
			JOIN pg_class p ON p.oid = i.inhparent
			WHERE p.relname = ANY($1)`, partitionedTableNames())
		if err != nil {
			return fmt.Errorf("list partitions: %w", classify(err))
		}
		type part struct{ name, parent string }
		parts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (part, error) {
			var x part
			err := r.Scan(&x.name, &x.parent)
			return x, err
		})
		if err != nil {
			return fmt.Errorf("list partitions: %w", classify(err))
		}
		for _, pt := range parts {
			spec, _ := tableSpec(pt.parent)
			start, err := time.Parse(spec.layout, strings.TrimPrefix(pt.name, pt.parent+"_p"))
			cutoff, ok := cutoffs[pt.parent]
			if err != nil || !ok || !start.Before(cutoff) {
				continue
			}
			if _, err := tx.Exec(ctx, "DROP TABLE "+pgx.Identifier{pt.name}.Sanitize()); err != nil {
				return fmt.Errorf("drop partition %s: %w", pt.name, classify(err))
			}
			p.logger.InfoContext(ctx, "dropped partition", "partition", pt.name)
			p.forget(pt.name)
		}
		return nil
	})
}

// Run maintains partitions every interval until ctx is cancelled. Errors
// are logged and retried at the next tick; they never stop the loop.
func (p *Partitions) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := p.Maintain(ctx); err != nil && ctx.Err() == nil {
			p.logger.WarnContext(ctx, "partition maintenance", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
