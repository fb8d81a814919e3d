// Package inflighttest checks, for the tests of every HTTP receiver, that
// a client trickling a request body can neither hold more than the first
// buffer step of the in-flight budget nor outlast the read timeout.
package inflighttest

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/internal/inflight"
)

// Target is one receiver endpoint: its address and the head of a request
// (request line and headers, ending in a blank line) that declares a
// large Content-Length; Fill is the byte the body is trickled with.
type Target struct {
	Addr string
	Head string
	Fill byte
}

// Head returns a POST head for path with the given headers (e.g.
// "Content-Type: application/x-protobuf") and Content-Length n.
func Head(path string, n int64, headers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: x\r\n", path)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", n)
	return b.String()
}

// CheckSlowBodies opens conns connections spread over targets, each
// sending its head and then one byte every 50 ms. The server under test
// must run with a read timeout well below 5 s and charge budget. While
// they trickle, the budget may hold at most inflight.MinStep per
// connection; each must then be answered 408; and the budget must be
// given back once they are.
func CheckSlowBodies(t *testing.T, budget *inflight.Budget, conns int, targets ...Target) {
	t.Helper()
	var wg sync.WaitGroup
	answers := make([]string, conns)
	for i := range conns {
		tg := targets[i%len(targets)]
		wg.Go(func() { answers[i] = trickle(tg) })
	}
	time.Sleep(250 * time.Millisecond)
	bound := int64(conns) * inflight.MinStep
	if in := budget.InUse(); in > bound {
		t.Errorf("%d trickling connections hold %d bytes, want at most %d", conns, in, bound)
	}
	wg.Wait()
	for i, a := range answers {
		if a != "HTTP/1.1 408 Request Timeout" {
			t.Errorf("connection %d: %q, want a 408", i, a)
		}
	}
	if budget.Peak() > bound {
		t.Errorf("budget peak %d, want at most %d", budget.Peak(), bound)
	}
	deadline := time.Now().Add(10 * time.Second)
	for budget.InUse() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("budget holds %d bytes once every connection was answered", budget.InUse())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// trickle sends tg's head and then its fill byte every 50 ms (at most 100
// of them) and returns the status line of the answer, or why none came
// within 10 s.
func trickle(tg Target) string {
	c, err := net.Dial("tcp", tg.Addr)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	if _, err := c.Write([]byte(tg.Head)); err != nil {
		return err.Error()
	}
	go func() {
		for range 100 {
			if _, err := c.Write([]byte{tg.Fill}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "no answer: " + err.Error()
	}
	return strings.TrimSpace(line)
}
