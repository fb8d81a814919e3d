package postgres

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// Widths of the partitions of the tables partitioned by a window shorter
// than a day. Windows are aligned to midnight UTC.
const (
	// LogWindow is the width of a logs partition: a newest-first search
	// reads the windows in order and stops once it has its page, so the
	// text index of one window, not of a day, bounds its work.
	LogWindow = 2 * time.Hour
	// SampleWindow is the width of a metric_samples partition, and the
	// span of time one metric_chunks row covers: compaction turns a
	// past window's raw partition into chunks and drops it.
	SampleWindow = 2 * time.Hour
)

// partitionedTable is a table partitioned by range of time: by day, or by
// a shorter window for logs and raw metric samples. Raw samples of past
// windows are compacted and dropped, and old log windows are rarely
// written, so maintenance creates their partitions only from the current
// window on (a late write creates its own, see pgcore.CopyIn).
type partitionedTable struct {
	name     string
	period   time.Duration // 24 h, LogWindow or SampleWindow
	layout   string        // of the partition name's suffix
	fromNow  bool          // create from the current period on, not from the retention cutoff
	aheadMax int           // days created ahead, at most (0 = the configured AheadDays)
	// retentionOf names the table whose retention this one follows: the
	// compacted form of a table is kept exactly as long as its rows.
	retentionOf string
}

const partitionDateLayout = "20060102"

// partitionedTables lists the tables partitioned by time, as the
// migrations create them.
var partitionedTables = []partitionedTable{
	{name: "spans", period: 24 * time.Hour, layout: partitionDateLayout},
	{name: "span_tags", period: 24 * time.Hour, layout: partitionDateLayout, retentionOf: "spans"}, // the search index of spans
	{name: "logs", period: LogWindow, layout: partitionDateLayout + "_15", fromNow: true, aheadMax: 1},
	{name: "log_blocks", period: LogWindow, layout: partitionDateLayout + "_15", fromNow: true, aheadMax: 1, retentionOf: "logs"},
	{name: "metric_samples", period: SampleWindow, layout: partitionDateLayout + "_15", fromNow: true, aheadMax: 1},
	{name: "metric_chunks", period: 24 * time.Hour, layout: partitionDateLayout},
	{name: "servicemap_traces", period: 24 * time.Hour, layout: partitionDateLayout},
	{name: "servicemap_rollups", period: 24 * time.Hour, layout: partitionDateLayout},
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

// dayStart truncates t to midnight UTC.
func dayStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// periodStart truncates at to the start of its partition period.
func (t partitionedTable) periodStart(at time.Time) time.Time {
	return PeriodStart(at, t.period)
}

// PeriodStart truncates at to the start of its period, periods dividing a
// UTC day evenly (LogWindow, SampleWindow).
func PeriodStart(at time.Time, period time.Duration) time.Time {
	d := dayStart(at)
	return d.Add(at.UTC().Sub(d).Truncate(period))
}

// partitionName names the partition of t that starts at start.
func (t partitionedTable) partitionName(start time.Time) string {
	return t.name + "_p" + start.UTC().Format(t.layout)
}

// Partitions keeps the partitions of every partitioned table: it
// creates them ahead of time and drops those entirely older than the
// retention period (Maintain, every Interval in Run), and creates the one
// a late write needs (Ensure). Every store writes through the same
// Partitions. Safe for concurrent use; several replicas coordinate
// through an advisory lock.
type Partitions struct {
	pool      *pgxpool.Pool
	retention time.Duration
	tableRet  map[string]time.Duration // per-table overrides of retention
	ahead     int                      // days created beyond today
	interval  time.Duration
	now       func() time.Time
	logger    *slog.Logger

	mu    sync.Mutex
	known map[string]bool // partitions known to exist
}

// PartitionsConfig configures partition maintenance.
type PartitionsConfig struct {
	Retention time.Duration // how long data is kept; whole partitions are dropped
	AheadDays int           // days created beyond today (default 2)
	// TableRetention overrides Retention per table ("spans", "logs"), so
	// that each signal keeps its own history; absent or zero entries use
	// Retention. Compacted log blocks (log_blocks) follow "logs".
	TableRetention map[string]time.Duration
	// Interval is the time between two maintenance passes of Run
	// (default 1 h).
	Interval time.Duration
	// Now is the clock retention is measured by (nil = time.Now).
	Now func() time.Time
	// Logger receives what Run does (nil = discard).
	Logger *slog.Logger
}

// NewPartitions returns a partition keeper for pool.
func NewPartitions(pool *pgxpool.Pool, cfg PartitionsConfig) *Partitions {
	if cfg.AheadDays <= 0 {
		cfg.AheadDays = 2
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Partitions{pool: pool, retention: cfg.Retention, tableRet: cfg.TableRetention, ahead: cfg.AheadDays,
		interval: cfg.Interval, now: cfg.Now, logger: cfg.Logger.With("component", "partitions"), known: map[string]bool{}}
}

// Maintain creates the partitions of every table for every period from
// now minus the table's retention (or from the current period for the
// tables partitioned by window) to now+ahead, and drops the partitions
// whose whole period lies before now minus the table's retention.
func (p *Partitions) Maintain(ctx context.Context) error {
	now := p.now()
	cutoffs := make(map[string]time.Time, len(partitionedTables))
	for _, t := range partitionedTables {
		ahead := p.ahead
		if t.aheadMax > 0 {
			ahead = min(ahead, t.aheadMax)
		}
		last := dayStart(now).AddDate(0, 0, ahead)
		first := t.periodStart(now.Add(-p.retentionOf(t)))
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

// Run maintains partitions at once and then every Interval until ctx is
// cancelled, and returns nil then. Errors are logged and retried at the
// next pass; they never stop the loop.
func (p *Partitions) Run(ctx context.Context) error {
	t := time.NewTicker(p.interval)
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

// retentionOf returns the retention of t: that of the table it follows,
// if any.
func (p *Partitions) retentionOf(t partitionedTable) time.Duration {
	table := t.name
	if t.retentionOf != "" {
		table = t.retentionOf
	}
	if r := p.tableRet[table]; r > 0 {
		return r
	}
	return p.retention
}

// Ensure creates the partitions of every table holding the given times if
// they are missing. It is idempotent.
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
		if _, err := tx.Exec(ctx, lockMaintenanceSQL, maintenanceLockID); err != nil {
			return err
		}
		for _, m := range missing {
			name := m.table.partitionName(m.start)
			sql := fmt.Sprintf(createPartitionSQL, pgx.Identifier{name}.Sanitize(), pgx.Identifier{m.table.name}.Sanitize(),
				m.start.Format(time.RFC3339), m.start.Add(m.table.period).Format(time.RFC3339))
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("create partition %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ensure partitions: %w", pgcore.Classify(err))
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

// Conn is what Partitions runs a statement on besides its pool: a
// *pgx.Conn, *pgxpool.Conn or *pgxpool.Pool.
type Conn interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Partition is one partition of a partitioned table.
type Partition struct {
	Name  string
	Start time.Time // start of its period
}

// childPartition is a partition with the name of its table.
type childPartition struct {
	Partition
	table string
}

// listPartitions returns the partitions of tables, by table and then
// oldest first, reading the catalogue through conn. Partitions whose
// names Vigil did not give are left out.
func listPartitions(ctx context.Context, conn Conn, tables []string) ([]childPartition, error) {
	rows, err := conn.Query(ctx, listPartitionsSQL, tables)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", pgcore.Classify(err))
	}
	var (
		out          []childPartition
		name, parent string
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &parent}, func() error {
		spec, _ := tableSpec(parent)
		start, err := time.Parse(spec.layout, strings.TrimPrefix(name, parent+"_p"))
		if err == nil {
			out = append(out, childPartition{Partition{Name: name, Start: start}, parent})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", pgcore.Classify(err))
	}
	slices.SortFunc(out, func(a, b childPartition) int {
		return cmp.Or(strings.Compare(a.table, b.table), a.Start.Compare(b.Start))
	})
	return out, nil
}

// List returns the partitions of table, oldest first, reading the
// catalogue through conn.
func (p *Partitions) List(ctx context.Context, conn Conn, table string) ([]Partition, error) {
	parts, err := listPartitions(ctx, conn, []string{table})
	if err != nil {
		return nil, err
	}
	out := make([]Partition, len(parts))
	for i, pt := range parts {
		out[i] = pt.Partition
	}
	return out, nil
}

// DropIfEmpty drops the partition name, in a transaction on conn that
// holds the maintenance lock and locks its parent (alone) and then the
// partition exclusively, in the order readers lock them, unless
// it holds rows (a late write filled it since the caller emptied it). It
// reports whether it dropped it.
func (p *Partitions) DropIfEmpty(ctx context.Context, conn Conn, name string) (bool, error) {
	dropped := false
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockMaintenanceSQL, maintenanceLockID); err != nil {
			return err
		}
		ident := pgx.Identifier{name}.Sanitize()
		var parent string
		if err := tx.QueryRow(ctx, parentOfSQL, ident).Scan(&parent); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(lockParentSQL, pgx.Identifier{parent}.Sanitize())); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(lockPartitionSQL, ident)); err != nil {
			return err
		}
		var nonEmpty bool
		if err := tx.QueryRow(ctx, fmt.Sprintf(partitionHasRowsSQL, ident)).Scan(&nonEmpty); err != nil {
			return err
		}
		if nonEmpty {
			return nil
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(dropPartitionSQL, ident)); err != nil {
			return err
		}
		dropped = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("drop: %w", pgcore.Classify(err))
	}
	if dropped {
		p.forget(name)
	}
	return dropped, nil
}

// dropBefore drops every partition whose period starts before its
// table's cutoff.
func (p *Partitions) dropBefore(ctx context.Context, cutoffs map[string]time.Time) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockMaintenanceSQL, maintenanceLockID); err != nil {
			return fmt.Errorf("drop partitions: %w", pgcore.Classify(err))
		}
		parts, err := listPartitions(ctx, tx, partitionedTableNames())
		if err != nil {
			return err
		}
		for _, pt := range parts {
			cutoff, ok := cutoffs[pt.table]
			if !ok || !pt.Start.Before(cutoff) {
				continue
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf(lockParentSQL, pgx.Identifier{pt.table}.Sanitize())); err != nil {
				return fmt.Errorf("drop partition %s: %w", pt.Name, pgcore.Classify(err))
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf(dropPartitionSQL, pgx.Identifier{pt.Name}.Sanitize())); err != nil {
				return fmt.Errorf("drop partition %s: %w", pt.Name, pgcore.Classify(err))
			}
			p.logger.InfoContext(ctx, "dropped partition", "partition", pt.Name)
			p.forget(pt.Name)
		}
		return nil
	})
}
