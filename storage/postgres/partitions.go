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

// partitionedTables lists the tables partitioned by day. Later signals add
// theirs here.
var partitionedTables = []string{"spans", "logs", "metric_samples"}

// maintenanceLockID is the advisory lock key held while creating or
// dropping partitions ("vigilprt"), so replicas never race on DDL.
const maintenanceLockID int64 = 0x76696769_6c707274

const partitionDateLayout = "20060102"

// dayStart truncates t to midnight UTC.
func dayStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func partitionName(table string, day time.Time) string {
	return table + "_p" + day.Format(partitionDateLayout)
}

// Partitions keeps the daily partitions of every partitioned table: it
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

// Maintain creates the partitions of every table for every day from
// now minus the table's retention to now+ahead, and drops the partitions
// whose whole day lies before now minus the table's retention.
func (p *Partitions) Maintain(ctx context.Context) error {
	now := p.now()
	last := dayStart(now).AddDate(0, 0, p.ahead)
	cutoffs := make(map[string]time.Time, len(partitionedTables))
	for _, t := range partitionedTables {
		first := dayStart(now.Add(-p.retentionOf(t)))
		cutoffs[t] = first
		var days []time.Time
		for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
			days = append(days, d)
		}
		if err := p.ensure(ctx, []string{t}, days); err != nil {
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

// Ensure creates the partitions of every table holding the given days if
// they are missing.
func (p *Partitions) Ensure(ctx context.Context, days []time.Time) error {
	return p.ensure(ctx, partitionedTables, days)
}

// ensure creates the partitions of tables holding the given days.
func (p *Partitions) ensure(ctx context.Context, tables []string, days []time.Time) error {
	var missing []time.Time
	p.mu.Lock()
	for _, d := range days {
		d = dayStart(d)
		for _, t := range tables {
			if !p.known[partitionName(t, d)] {
				missing = append(missing, d)
				break
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
		for _, d := range missing {
			for _, t := range tables {
				name := partitionName(t, d)
				sql := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')",
					pgx.Identifier{name}.Sanitize(), pgx.Identifier{t}.Sanitize(),
					d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339))
				if _, err := tx.Exec(ctx, sql); err != nil {
					return fmt.Errorf("create partition %s: %w", name, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ensure partitions: %w", classify(err))
	}
	p.mu.Lock()
	for _, d := range missing {
		for _, t := range tables {
			p.known[partitionName(t, d)] = true
		}
	}
	p.mu.Unlock()
	return nil
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
			WHERE p.relname = ANY($1)`, partitionedTables)
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
			day, err := time.Parse(partitionDateLayout, strings.TrimPrefix(pt.name, pt.parent+"_p"))
			cutoff, ok := cutoffs[pt.parent]
			if err != nil || !ok || !day.Before(cutoff) {
				continue
			}
			if _, err := tx.Exec(ctx, "DROP TABLE "+pgx.Identifier{pt.name}.Sanitize()); err != nil {
				return fmt.Errorf("drop partition %s: %w", pt.name, classify(err))
			}
			p.logger.InfoContext(ctx, "dropped partition", "partition", pt.name)
			p.mu.Lock()
			delete(p.known, pt.name)
			p.mu.Unlock()
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
