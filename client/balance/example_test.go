package balance_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/vigil-obs/vigil/client/balance"
)

func usable(*balance.Endpoint) bool { return true }

// Smooth weighted round robin interleaves picks instead of sending weight
// calls in a row to the heaviest instance.
func Example_weightedRoundRobin() {
	b, _ := balance.New(balance.Config{Policy: balance.WeightedRoundRobin}, nil)
	b.Update([]*balance.Endpoint{
		balance.NewEndpoint("a:80", 5),
		balance.NewEndpoint("b:80", 1),
		balance.NewEndpoint("c:80", 1),
	})
	var picks []string
	for range 7 {
		picks = append(picks, strings.TrimSuffix(b.Pick(time.Now(), balance.Request{}, usable).Addr, ":80"))
	}
	fmt.Println(strings.Join(picks, " "))
	// Output: a a b a c a a
}

// P2C over peak-EWMA latency avoids an instance as soon as it answers slowly.
func Example_p2cEWMA() {
	b, _ := balance.New(balance.Config{}, rand.NewPCG(1, 2)) // the default policy
	fast1, fast2, slow := balance.NewEndpoint("fast1:80", 1), balance.NewEndpoint("fast2:80", 1), balance.NewEndpoint("slow:80", 1)
	b.Update([]*balance.Endpoint{fast1, fast2, slow})
	now := time.Now()
	for ep, rtt := range map[*balance.Endpoint]time.Duration{fast1: 5 * time.Millisecond, fast2: 5 * time.Millisecond, slow: 50 * time.Millisecond} {
		ep.Begin()
		ep.Finish()
		ep.Observe(balance.EWMAConfig{}, now, rtt, false)
	}
	counts := map[string]int{}
	for range 1000 {
		counts[b.Pick(now, balance.Request{}, usable).Addr]++
	}
	fmt.Println("slow instance picks:", counts["slow:80"])
	// Output: slow instance picks: 0
}

// Ring hash keeps a key on its instance.
func Example_ringHash() {
	b, _ := balance.New(balance.Config{Policy: balance.RingHash}, nil)
	b.Update([]*balance.Endpoint{balance.NewEndpoint("a:80", 1), balance.NewEndpoint("b:80", 1), balance.NewEndpoint("c:80", 1)})
	req := balance.Request{Hash: balance.HashKey("user-42"), HasHash: true}
	first := b.Pick(time.Now(), req, usable)
	same := true
	for range 100 {
		same = same && b.Pick(time.Now(), req, usable) == first
	}
	fmt.Println("sticky:", same)
	// Output: sticky: true
}
