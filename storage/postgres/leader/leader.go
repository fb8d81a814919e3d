// Package leader elects, across the Vigil replicas that share one
// database, the one replica that runs a job that must run once: rule
// evaluation and notification dispatch. The leader holds a session
// advisory lock on a connection of its own, outside the pool; PostgreSQL
// releases the lock when that session ends, so a replica that dies (even
// by kill -9) hands over as soon as its connection closes, and a follower
// takes the lock at its next try, within Options.Interval.
//
// A leader checks its connection every Interval. When the check fails it
// cancels the job's context and closes the connection (which releases the
// lock, if the server still holds it), then campaigns again. Two replicas
// can therefore overlap only for as long as a broken connection takes to
// be noticed; jobs that must never overlap also need idempotent writes,
// which rule evaluation and Alertmanager's notification log have.
package leader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Key names one job that must run on one replica at a time; it is the
// advisory lock key ("vigil" + a tag), distinct from the keys the stores
// use for migrations, partition maintenance and compaction.
type Key int64

const (
	// KeyRules is held by the replica that evaluates the rule groups.
	KeyRules Key = 0x76696769_6c72756c
	// KeyNotify is held by the replica that dispatches notifications.
	KeyNotify Key = 0x76696769_6c6e7466
)

const (
	tryLockSQL = "SELECT pg_try_advisory_lock($1)"
	unlockSQL  = "SELECT pg_advisory_unlock($1)"
	pingSQL    = "SELECT 1"
)

// Options configure an Elector.
type Options struct {
	// Interval is how often a follower tries to take the lock and how
	// often a leader checks its connection. Default 1s.
	Interval time.Duration
	// Logger gets leadership changes; nil discards.
	Logger *slog.Logger
}

// Elector campaigns for one Key. It is safe for concurrent use; Run must
// be called at most once at a time.
type Elector struct {
	pool     *pgxpool.Pool
	key      Key
	interval time.Duration
	logger   *slog.Logger
	leader   atomic.Bool
}

// New returns an Elector for key over the database of pool. It opens its
// own connection (with the pool's connection settings) when it campaigns.
func New(pool *pgxpool.Pool, key Key, opts Options) *Elector {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Elector{
		pool:     pool,
		key:      key,
		interval: opts.Interval,
		logger:   opts.Logger.With("component", "leader", "key", fmt.Sprintf("%#x", int64(key))),
	}
}

// Leader reports whether this replica holds the lock now.
func (e *Elector) Leader() bool { return e.leader.Load() }

// Run campaigns until ctx ends. Whenever this replica holds the lock it
// calls lead with a context that is cancelled when the lock is lost (its
// connection broke) or ctx ends, and waits for lead to return before it
// releases the lock and campaigns again. An error from lead is logged and
// leadership released; the next campaign starts after Interval. Run
// returns nil when ctx ends, after lead has returned.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context) error) error {
	t := time.NewTicker(e.interval)
	defer t.Stop()
	for {
		conn, err := e.acquire(ctx)
		if err != nil && ctx.Err() == nil {
			e.logger.WarnContext(ctx, "campaign failed", "err", err)
		}
		if conn != nil {
			e.hold(ctx, conn, lead)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// acquire opens a connection and tries the lock on it. It returns the
// connection when the lock is held, nil otherwise.
func (e *Elector) acquire(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*e.interval)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, e.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	var locked bool
	if err := conn.QueryRow(cctx, tryLockSQL, int64(e.key)).Scan(&locked); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("try lock: %w", err)
	}
	if !locked {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, nil
	}
	return conn, nil
}

// hold runs lead while the lock's connection answers, then releases the
// lock and closes the connection.
func (e *Elector) hold(ctx context.Context, conn *pgx.Conn, lead func(ctx context.Context) error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.leader.Store(true)
	e.logger.InfoContext(ctx, "leading")
	done := make(chan error, 1)
	go func() { done <- lead(lctx) }()

	t := time.NewTicker(e.interval)
	defer t.Stop()
	var leadErr error
	finished := false
	for !finished {
		select {
		case leadErr = <-done:
			finished = true
		case <-ctx.Done():
			leadErr = <-done
			finished = true
		case <-t.C:
			if err := e.ping(lctx, conn); err != nil && lctx.Err() == nil {
				e.logger.WarnContext(ctx, "lost leadership", "err", err)
				cancel()
				leadErr = <-done
				finished = true
			}
		}
	}
	e.leader.Store(false)
	if leadErr != nil && !errors.Is(leadErr, context.Canceled) {
		e.logger.ErrorContext(ctx, "leader job failed", "err", leadErr)
	}
	uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer ucancel()
	_, _ = conn.Exec(uctx, unlockSQL, int64(e.key))
	_ = conn.Close(uctx)
	e.logger.InfoContext(ctx, "stopped leading")
}

// ping checks the lock's session within one interval.
func (e *Elector) ping(ctx context.Context, conn *pgx.Conn) error {
	pctx, cancel := context.WithTimeout(ctx, e.interval)
	defer cancel()
	_, err := conn.Exec(pctx, pingSQL)
	return err
}
