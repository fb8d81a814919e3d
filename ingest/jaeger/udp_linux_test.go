//go:build linux

package jaeger

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"github.com/prometheus/client_golang/prometheus"
)

// TestUDPKernelDropsAreCounted fills a small socket receive buffer before
// anything reads it, so that the kernel drops most of a burst, and checks
// that the drops are counted with reason "kernel_buffer" once traffic
// resumes: every datagram sent is either received or counted as dropped.
func TestUDPKernelDropsAreCounted(t *testing.T) {
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	cfg := Config{UDPCompactAddr: "127.0.0.1:0", UDPSocketBufferBytes: 4096, ShutdownTimeout: 5 * time.Second}
	r, err := New(cfg, Options{Traces: rec, Registerer: reg, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{r: r, rec: rec, reg: reg}
	if got, err := receiveBufferBytes(r.udp[0].conn); err != nil || got > 64<<10 {
		t.Fatalf("receive buffer %d bytes (%v), want the small one asked for", got, err)
	}
	if got := b.counter(t, "vigil_ingest_jaeger_udp_packets_dropped_total", map[string]string{"listener": listenerCompact, "reason": droppedKernelBuffer}); got != 0 {
		t.Fatalf("kernel drops %v before any traffic", got)
	}

	// The socket is bound but not read until Run: the burst overflows it.
	const burst = 200
	batch := simpleBatch("svc", "burst", 1, 1)
	pad := strings.Repeat("p", 2000)
	batch.Spans[0].Tags = append(batch.Spans[0].Tags, &jaegerthrift.Tag{Key: "pad", VType: jaegerthrift.TagType_STRING, VStr: &pad})
	msg := agentMessage(t, batch, true)
	datagrams := make([][]byte, burst)
	for i := range datagrams {
		datagrams[i] = msg
	}
	sendUDP(t, r.UDPCompactAddr(), datagrams...)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// The kernel reports its count with the next datagram it delivers:
	// once "last" is stored, everything before it has been read.
	waitFor(t, "the datagrams queued before Run", func() bool { return len(rec.SpanNames()) > 0 })
	sendUDP(t, r.UDPCompactAddr(), agentMessage(t, simpleBatch("svc", "last", 2, 1), true))
	waitFor(t, "the last datagram", func() bool { return slices.Contains(rec.SpanNames(), "last") })

	received := b.counter(t, "vigil_ingest_jaeger_udp_packets_received_total", map[string]string{"listener": listenerCompact})
	dropped := b.counter(t, "vigil_ingest_jaeger_udp_packets_dropped_total", map[string]string{"listener": listenerCompact, "reason": droppedKernelBuffer})
	t.Logf("sent %d, received %v, dropped by the kernel %v", burst+1, received, dropped)
	if dropped == 0 || received+dropped != burst+1 {
		t.Errorf("received %v + kernel drops %v, want %d with some drops", received, dropped, burst+1)
	}
}
