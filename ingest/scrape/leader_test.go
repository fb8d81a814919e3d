package scrape

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-obs/vigil/storage/postgres/leader"
)

// TestOneReplicaScrapes: two managers over one database, each with its
// own pool and storage/postgres/leader's elector: only one scrapes the
// target (counted at the target); the other has no targets. When the
// first stops, the second takes over within two intervals of the lock.
func TestOneReplicaScrapes(t *testing.T) {
	st := newStore(t)
	c, _, _ := appMetrics()
	tg := newTarget(t, c)
	cfg := parseConfig(t, staticJob("app", "", tg.addr()))
	const lockInterval = 200 * time.Millisecond

	var replicas [2]*started
	for i := range replicas {
		pool, err := pgxpool.NewWithConfig(context.Background(), st.pool.Config().Copy())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		el := leader.New(pool, LeaderKey, leader.Options{Interval: lockInterval})
		replicas[i] = start(t, newManager(t, st.pipe, cfg, Options{Elector: el}))
	}
	var first, second *started
	select {
	case <-replicas[0].leading:
		first, second = replicas[0], replicas[1]
	case <-replicas[1].leading:
		first, second = replicas[1], replicas[0]
	case <-time.After(10 * time.Second):
		t.Fatal("no replica leads")
	}
	eventually(t, 10*time.Second, "the leader scrapes", func() bool { return tg.requests.Load() >= 3 })
	if !first.m.Leader() || second.m.Leader() || !first.m.Status().Leader {
		t.Fatalf("leaders: %v and %v", first.m.Leader(), second.m.Leader())
	}
	if n := len(second.m.TargetsActive()); n != 0 {
		t.Errorf("the follower has %d jobs of active targets", n)
	}
	// One scraper: about one request per interval, not two.
	before := tg.requests.Load()
	time.Sleep(10 * testInterval)
	if n := tg.requests.Load() - before; n > 13 {
		t.Errorf("%d requests in 10 intervals: more than one replica scrapes", n)
	}

	first.stop(t)
	select {
	case l := <-second.leading:
		if !l {
			t.Fatal("the second replica stopped leading")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second replica did not take over")
	}
	if first.m.Leader() {
		t.Error("the stopped replica still leads")
	}
	before = tg.requests.Load()
	eventually(t, 10*time.Second, "the second replica scrapes", func() bool { return tg.requests.Load() >= before+3 })
	if n := len(second.m.TargetsActive()["app"]); n != 1 {
		t.Errorf("the new leader has %d targets", n)
	}
}

// termsElector leads for each of its terms in turn, each ended by its
// channel, then returns.
type termsElector struct{ ends []chan struct{} }

func (e termsElector) Run(ctx context.Context, lead func(context.Context) error) error {
	for _, end := range e.ends {
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-end:
			case <-lctx.Done():
			}
			cancel()
		}()
		if err := lead(lctx); err != nil {
			return err
		}
		cancel()
	}
	<-ctx.Done()
	return nil
}

// TestLeadAgain: a replica that loses leadership and wins it back scrapes
// again, its Prometheus metrics registered anew on the same registerer.
func TestLeadAgain(t *testing.T) {
	c, _, _ := appMetrics()
	tg := newTarget(t, c)
	el := termsElector{ends: []chan struct{}{make(chan struct{}), make(chan struct{})}}
	reg := prometheus.NewRegistry()
	m := newManager(t, discard{}, parseConfig(t, staticJob("app", "", tg.addr())), Options{Elector: el, Registerer: reg})
	s := start(t, m)
	for i, end := range el.ends {
		if !<-s.leading {
			t.Fatalf("term %d: not leading", i)
		}
		before := tg.requests.Load()
		eventually(t, 10*time.Second, "scrapes", func() bool { return tg.requests.Load() >= before+2 })
		if got := testutil.ToFloat64(m.metrics.leader); got != 1 {
			t.Errorf("term %d: vigil_scrape_leader %v", i, got)
		}
		close(end)
		if <-s.leading {
			t.Fatalf("term %d: still leading", i)
		}
		// The elector starts the next term at once; only after the last
		// one is "not leading" stable.
		if i == len(el.ends)-1 && (m.Leader() || len(m.TargetsActive()) != 0) {
			t.Errorf("term %d: targets after leadership ended", i)
		}
	}
}
