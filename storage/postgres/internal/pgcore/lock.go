package pgcore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	tryLockSQL = "SELECT pg_try_advisory_lock($1)"
	unlockSQL  = "SELECT pg_advisory_unlock($1)"
)

// TryLock acquires a connection from pool and tries the session advisory
// lock key on it. When it got the lock it returns the connection and the
// function that unlocks and releases it (on a context that is not
// cancelled, since a session lock outlives a failed transaction; a
// connection that cannot unlock is closed instead). When another session
// holds the lock it returns nil, nil, nil. Errors are classified.
func TryLock(ctx context.Context, pool *pgxpool.Pool, key int64) (*pgxpool.Conn, func(), error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, nil, Classify(err)
	}
	var locked bool
	if err := conn.QueryRow(ctx, tryLockSQL, key).Scan(&locked); err != nil {
		conn.Release()
		return nil, nil, Classify(err)
	}
	if !locked {
		conn.Release()
		return nil, nil, nil
	}
	return conn, func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, unlockSQL, key); err != nil {
			_ = conn.Conn().Close(uctx)
		}
		conn.Release()
	}, nil
}
