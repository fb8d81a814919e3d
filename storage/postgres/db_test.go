package postgres

import (
	"context"
	"testing"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

// TestOpenSessionSettings checks the settings every pooled connection
// gets: plans with the real values, no JIT compilation.
func TestOpenSessionSettings(t *testing.T) {
	ctx := context.Background()
	pool, err := Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for setting, want := range map[string]string{"plan_cache_mode": "force_custom_plan", "jit": "off"} {
		var got string
		if err := pool.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&got); err != nil || got != want {
			t.Errorf("%s = %q (%v), want %q", setting, got, err, want)
		}
	}
}
