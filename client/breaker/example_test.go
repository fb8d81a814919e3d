package breaker_test

import (
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/vigil-obs/vigil/client/breaker"
)

// manualClock is a clock the example moves by hand.
type manualClock struct{ t time.Time }

func (c *manualClock) Now() time.Time { return c.t }

// A breaker opens when the failure rate crosses its threshold, fails fast
// while open, and closes again after successful half-open probes.
func Example() {
	clk := &manualClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	b, err := breaker.New(breaker.Config{
		WindowSize:    10,
		MinimumCalls:  4,
		OpenDuration:  30 * time.Second,
		HalfOpenCalls: 2,
	}, breaker.Options{Clock: clk, OnStateChange: func(from, to breaker.State) { fmt.Println(from, "->", to) }})
	if err != nil {
		log.Fatal(err)
	}
	call := func(fail bool) error {
		p, err := b.Allow()
		if err != nil {
			return err
		}
		p.Done(fail)
		return nil
	}
	// Four failures reach MinimumCalls at a 100% failure rate: the
	// fourth opens the breaker, and each is allowed before that.
	for range 4 {
		if err := call(true); err != nil {
			log.Fatal(err)
		}
	}
	err = call(false)
	fmt.Println("fails fast:", errors.Is(err, breaker.ErrOpen))

	clk.t = clk.t.Add(30 * time.Second)
	for range 2 { // the half-open probes
		if err := call(false); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("state:", b.State())
	// Output:
	// closed -> open
	// fails fast: true
	// open -> half_open
	// half_open -> closed
	// state: closed
}
