package leader

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// campaign runs an elector whose job reports its start and end on
// channels and waits for its context to end.
type campaign struct {
	started chan struct{}
	ended   chan struct{}
	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
	err     error
	e       *Elector
}

// stop ends the campaign and returns what Run returned.
func (c *campaign) stop() error {
	c.once.Do(func() {
		c.cancel()
		c.err = <-c.done
	})
	return c.err
}

func start(t *testing.T, e *Elector) *campaign {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &campaign{started: make(chan struct{}, 8), ended: make(chan struct{}, 8), cancel: cancel, done: make(chan error, 1), e: e}
	go func() {
		c.done <- e.Run(ctx, func(ctx context.Context) error {
			c.started <- struct{}{}
			<-ctx.Done()
			c.ended <- struct{}{}
			return ctx.Err()
		})
	}()
	t.Cleanup(func() { _ = c.stop() })
	return c
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestOneLeaderAndHandOver(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	opts := Options{Interval: 50 * time.Millisecond}
	a := start(t, New(pool, KeyRules, opts))
	wait(t, a.started, "first leader")
	if !a.e.Leader() {
		t.Fatal("a leads but Leader() is false")
	}
	b := start(t, New(pool, KeyRules, opts))
	// Another key is independent: a notify elector leads at once.
	n := start(t, New(pool, KeyNotify, opts))
	wait(t, n.started, "leader of the other key")

	// b stays a follower while a holds the lock: give it several
	// campaigns' worth of chances (this only waits; it asserts no time).
	for range 5 {
		if b.e.Leader() {
			t.Fatal("two leaders for one key")
		}
		time.Sleep(opts.Interval)
	}
	select {
	case <-b.started:
		t.Fatal("b led while a held the lock")
	default:
	}

	// Stopping a hands over to b.
	if err := a.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	wait(t, a.ended, "a's job to end")
	wait(t, b.started, "b to take over")
	if a.e.Leader() {
		t.Fatal("a still reports leading after Run returned")
	}
}

func TestLostSessionCancelsTheJob(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	opts := Options{Interval: 50 * time.Millisecond}
	a := start(t, New(pool, KeyRules, opts))
	wait(t, a.started, "leader")
	b := start(t, New(pool, KeyRules, opts))

	// The server ends the leader's session, as when its replica dies.
	tag, err := pool.Exec(context.Background(), `
		SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != 1 {
		t.Fatalf("terminated %d sessions, want 1", tag.RowsAffected())
	}
	wait(t, a.ended, "the old leader's job to be cancelled")
	// Either replica may win the next campaign; exactly one leads.
	select {
	case <-a.started:
	case <-b.started:
	case <-time.After(30 * time.Second):
		t.Fatal("nobody took over")
	}
}

func TestJobErrorReleasesLeadership(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	e := New(pool, KeyNotify, Options{Interval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	calls := 0
	done := make(chan error, 1)
	again := make(chan struct{})
	go func() {
		done <- e.Run(ctx, func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 2 {
				close(again)
			}
			return errors.New("boom")
		})
	}()
	wait(t, again, "a second campaign after a failed job")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if e.Leader() {
		t.Fatal("Leader() after Run returned")
	}
}
