package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves a goroutine behind: every
// component `vigil serve` starts must end with it. Prometheus's Consul
// discovery is the one exception: once cancelled it still waits for its
// next refresh tick (at most 5 s for the registry's job) before it returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/prometheus/prometheus/discovery/consul.(*Discovery).Run"))
}
