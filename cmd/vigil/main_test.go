package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves a goroutine behind: every
// component `vigil serve` starts must end with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
