package postgres

import (
	"context"
	"testing"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	errs := make(chan error, 4)
	applied := make(chan []int, 4)
	for i := 0; i < 4; i++ {
		go func() {
			v, err := Migrate(ctx, pool, nil)
			errs <- err
			applied <- v
		}()
	}
	total := 0
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		total += len(<-applied)
	}
	all, _ := loadMigrations()
	if total != len(all) {
		t.Fatalf("migrations applied %d times in total, want %d (each once)", total, len(all))
	}
	applied2, known, err := SchemaVersion(ctx, pool)
	if err != nil || applied2 != known {
		t.Fatalf("schema version %d/%d err %v", applied2, known, err)
	}
}
