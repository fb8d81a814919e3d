package registrystore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// ListenApplicationName is the application_name of Follow's session, so
// that operators can tell it in pg_stat_activity.
const ListenApplicationName = "vigil registry listener"

// Follow calls onIndex with the change index until ctx ends: once it has
// a LISTEN session of its own (a connection outside the pool, with the
// pool's settings), with the index read after LISTEN and then with the
// payload of every notification; while it has none, with the index read
// every poll (and, to check the session, every ten polls while it has
// one). onIndex is called from one goroutine; it must not block
// long. Follow returns nil when ctx ends; failures to connect or read are
// reported to onErr (which may be nil) and retried.
func (s *Store) Follow(ctx context.Context, poll time.Duration, onIndex func(int64), onErr func(error)) error {
	if poll <= 0 {
		poll = time.Second
	}
	report := func(err error) {
		if onErr != nil && ctx.Err() == nil {
			onErr(err)
		}
	}
	for ctx.Err() == nil {
		err := s.listen(ctx, 10*poll, onIndex)
		if ctx.Err() != nil {
			return nil
		}
		report(err)
		// No session: poll the index until one can be had again.
		if idx, err := s.Index(ctx); err == nil {
			onIndex(idx)
		} else {
			report(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
	return nil
}

// listen holds one LISTEN session until it fails or ctx ends.
func (s *Store) listen(ctx context.Context, keepalive time.Duration, onIndex func(int64)) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = ListenApplicationName
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("listen: connect: %w", pgcore.Classify(err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, listenSQL); err != nil {
		return fmt.Errorf("listen: %w", pgcore.Classify(err))
	}
	var idx int64
	if err := conn.QueryRow(ctx, indexSQL).Scan(&idx); err != nil {
		return fmt.Errorf("listen: read index: %w", pgcore.Classify(err))
	}
	onIndex(idx)
	for {
		// A session that broke without the socket noticing (a network
		// partition) would wait forever: every keepalive the index is read
		// on it, which both checks the session and catches up.
		wctx, cancel := context.WithTimeout(ctx, keepalive)
		n, err := conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !timedOut || conn.IsClosed() {
				return fmt.Errorf("listen: wait: %w", pgcore.Classify(err))
			}
			pctx, cancel := context.WithTimeout(ctx, keepalive)
			err := conn.QueryRow(pctx, indexSQL).Scan(&idx)
			cancel()
			if err != nil {
				return fmt.Errorf("listen: read index: %w", pgcore.Classify(err))
			}
			onIndex(idx)
			continue
		}
		v, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil {
			return errors.Join(fmt.Errorf("listen: payload %q: %w", n.Payload, err), pgcore.ErrCorrupt)
		}
		onIndex(v)
	}
}
