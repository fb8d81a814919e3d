package rules

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them
// (Run starts the file watcher and Prometheus's group loops).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
