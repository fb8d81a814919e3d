package registrystore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/registrystore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func setup(t *testing.T) (*registrystore.Store, func(context.Context, string) error) {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	exec := func(ctx context.Context, sql string) error {
		_, err := pool.Exec(ctx, sql)
		return err
	}
	return registrystore.New(pool), exec
}

func TestRegisterRecordExpire(t *testing.T) {
	ctx := context.Background()
	s, _ := setup(t)
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	idx0, err := s.Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reg := registrystore.Registration{
		Service: registrystore.Service{ID: "web-1", Name: "web", Tags: []string{"a"}, Port: 80, Meta: map[string]string{"k": "v"}},
		Checks: []registrystore.Check{
			{ID: "http", Name: "h", Kind: registrystore.KindHTTP, Definition: registrystore.Definition{HTTP: "http://x/", Interval: time.Second,
				DeregisterCriticalServiceAfter: time.Minute}},
			{ID: "ttl", Name: "t", Kind: registrystore.KindTTL, Definition: registrystore.Definition{TTL: 10 * time.Second}},
		},
	}
	idx1, err := s.Register(ctx, reg, t0)
	if err != nil || idx1 != idx0+1 {
		t.Fatalf("register: index %d, %v (want %d)", idx1, err, idx0+1)
	}
	st, err := s.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Index != idx1 || len(st.Services) != 1 || len(st.Checks) != 2 || st.Services[0].Meta["k"] != "v" || st.Services[0].CreateIndex != idx1 {
		t.Fatalf("state = %+v", st)
	}
	if c := st.Checks[0]; c.ID != "http" || c.Status != registrystore.StatusCritical || c.ServiceName != "web" || c.Definition.Interval != time.Second {
		t.Fatalf("new check = %+v", c)
	}

	// A run that changes nothing does not move the index.
	rec, err := s.RecordResult(ctx, registrystore.Result{CheckID: "http", Status: "passing", Output: "ok", At: t0.Add(time.Second)})
	if err != nil || rec.Transition == nil || rec.Index != idx1+1 {
		t.Fatalf("first result: %+v, %v", rec, err)
	}
	rec, err = s.RecordResult(ctx, registrystore.Result{CheckID: "http", Status: "passing", Output: "ok", At: t0.Add(2 * time.Second)})
	if err != nil || rec.Transition != nil || rec.Index != idx1+1 {
		t.Fatalf("unchanged result: %+v, %v", rec, err)
	}
	// Long output is cut to 4 KiB.
	if _, err := s.RecordResult(ctx, registrystore.Result{CheckID: "http", Status: "passing", Output: strings.Repeat("é", 5000), At: t0.Add(3 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	st, _ = s.State(ctx)
	if c := st.Checks[0]; len(c.Output) > registrystore.MaxOutput || len(c.Output) < registrystore.MaxOutput-1 || !c.LastRun.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("output %d bytes, last run %s", len(c.Output), c.LastRun)
	}
	if _, err := s.RecordResult(ctx, registrystore.Result{CheckID: "nope", Status: "passing", At: t0}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown check: %v", err)
	}
	if _, err := s.UpdateTTL(ctx, registrystore.Result{CheckID: "http", Status: "passing", At: t0}); !errors.Is(err, registrystore.ErrNotTTL) {
		t.Fatalf("ttl update of an http check: %v", err)
	}

	// TTL: passing until its deadline, then critical once.
	if _, err := s.UpdateTTL(ctx, registrystore.Result{CheckID: "ttl", Status: "passing", Output: "up", At: t0}); err != nil {
		t.Fatal(err)
	}
	if ts, err := s.ExpireTTL(ctx, t0.Add(5*time.Second), "TTL expired"); err != nil || len(ts) != 0 {
		t.Fatalf("early expiry: %v, %v", ts, err)
	}
	ts, err := s.ExpireTTL(ctx, t0.Add(10*time.Second), "TTL expired")
	if err != nil || len(ts) != 1 || ts[0].CheckID != "ttl" || ts[0].ServiceID != "web-1" {
		t.Fatalf("expiry: %v, %v", ts, err)
	}
	if ts, err := s.ExpireTTL(ctx, t0.Add(11*time.Second), "TTL expired"); err != nil || len(ts) != 0 {
		t.Fatalf("second expiry: %v, %v", ts, err)
	}
	hist, err := s.History(ctx, "ttl", 10)
	if err != nil || len(hist) != 3 || hist[0].Status != "critical" || hist[1].Status != "passing" || hist[2].Status != "critical" {
		t.Fatalf("ttl history = %+v, %v", hist, err)
	}

	// Re-registering keeps statuses; replacing drops other checks.
	reg.Checks = reg.Checks[:1]
	reg.ReplaceExistingChecks = true
	if _, err := s.Register(ctx, reg, t0.Add(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	st, _ = s.State(ctx)
	if len(st.Checks) != 1 || st.Checks[0].Status != "passing" || st.Services[0].CreateIndex != idx1 {
		t.Fatalf("after re-register: %+v", st)
	}

	// Critical longer than a minute: deregistered.
	if _, err := s.RecordResult(ctx, registrystore.Result{CheckID: "http", Status: "critical", Output: "down", At: t0.Add(30 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.DeregisterCritical(ctx, t0.Add(80*time.Second)); err != nil || len(ids) != 0 {
		t.Fatalf("early deregistration: %v, %v", ids, err)
	}
	if ids, err := s.DeregisterCritical(ctx, t0.Add(90*time.Second)); err != nil || len(ids) != 1 || ids[0] != "web-1" {
		t.Fatalf("deregistration: %v, %v", ids, err)
	}
	if _, err := s.Deregister(ctx, "web-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deregister twice: %v", err)
	}
	// History outlives the check until retention removes it.
	if n, err := s.DeleteHistoryBefore(ctx, t0.Add(time.Hour)); err != nil || n != 6 {
		t.Fatalf("deleted %d, %v", n, err)
	}
}

// TestFollowFallsBackToPolling: notifications wake a follower; when its
// LISTEN session is killed it still learns of changes by re-reading the
// index, and listens again.
func TestFollowFallsBackToPolling(t *testing.T) {
	s, exec := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var seen int64
	var errs int
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Follow(ctx, 50*time.Millisecond, func(i int64) {
			mu.Lock()
			seen = max(seen, i)
			mu.Unlock()
		}, func(error) {
			mu.Lock()
			errs++
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	register := func(id string) int64 {
		idx, err := s.Register(context.Background(), registrystore.Registration{Service: registrystore.Service{ID: id, Name: id}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	waitFor("the first index", func() bool { return seen > 0 })
	idx := register("a")
	waitFor("a notification", func() bool { return seen >= idx })

	if err := exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = '`+registrystore.ListenApplicationName+`' AND datname = current_database()`); err != nil {
		t.Fatal(err)
	}
	waitFor("the lost session to be reported", func() bool { return errs > 0 })
	idx = register("b")
	waitFor("the change after the session was lost", func() bool { return seen >= idx })
	// Listening again: a later change arrives too.
	idx = register("c")
	waitFor("a later change", func() bool { return seen >= idx })
}
