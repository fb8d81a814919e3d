package derive_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them
// (Run, the pools of the PairStore tests).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
