package metricstore

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them
// (the compactor's Run starts goroutines).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
