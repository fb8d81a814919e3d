package postgres

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them
// (Partitions.Run start goroutines).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
