package jaeger

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/agent"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/zipkincore"

	"github.com/vigil-obs/vigil/ingest"
)

// wrongTypeMessage is an emitBatch call whose batch field (1) is an i32
// instead of a struct: the generated reader skips it and the processor
// calls EmitBatch with a nil batch.
func wrongTypeMessage(t *testing.T) []byte {
	t.Helper()
	buf := thrift.NewTMemoryBufferLen(64)
	p := thrift.NewTCompactProtocolConf(buf, nil)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(p.WriteMessageBegin(ctx, "emitBatch", thrift.ONEWAY, 1))
	must(p.WriteStructBegin(ctx, "emitBatch_args"))
	must(p.WriteFieldBegin(ctx, "batch", thrift.I32, 1))
	must(p.WriteI32(ctx, 7))
	must(p.WriteFieldEnd(ctx))
	must(p.WriteFieldStop(ctx))
	must(p.WriteStructEnd(ctx))
	must(p.WriteMessageEnd(ctx))
	must(p.Flush(ctx))
	return bytes.Clone(buf.Bytes())
}

// TestUDPBadDatagramsAreCountedAndIsolated sends every kind of bad
// datagram to both ports, each followed by a good one, and checks that
// all good ones arrive and every bad one is counted by reason.
func TestUDPBadDatagramsAreCountedAndIsolated(t *testing.T) {
	b := setup(t, nil)
	good := agentMessage(t, simpleBatch("svc", "good", 1, 1), true)
	// A Batch without its required process.
	nb := simpleBatch("svc", "x", 1, 1)
	nb.Process = nil
	noProcess := agentMessage(t, nb, false)
	unknownMethod := func() []byte {
		buf := thrift.NewTMemoryBufferLen(64)
		p := thrift.NewTBinaryProtocolConf(buf, nil)
		ctx := context.Background()
		_ = p.WriteMessageBegin(ctx, "emitSomething", thrift.ONEWAY, 1)
		_ = p.WriteStructBegin(ctx, "args")
		_ = p.WriteFieldStop(ctx)
		_ = p.WriteStructEnd(ctx)
		_ = p.WriteMessageEnd(ctx)
		return bytes.Clone(buf.Bytes())
	}()
	bad := []struct {
		name, reason string
		data         []byte
	}{
		{"unknown protocol", malformedUnknownProtocol, []byte("GET / HTTP/1.1\r\n")},
		{"truncated compact", malformedDecode, good[:len(good)/2]},
		{"truncated binary", malformedDecode, agentMessage(t, simpleBatch("svc", "x", 1, 3), false)[:40]},
		{"wrong thrift type", malformedDecode, wrongTypeMessage(t)},
		{"missing required field", malformedDecode, noProcess},
		{"unknown method", malformedDecode, unknownMethod},
		{"protocol id only", malformedDecode, []byte{0x82}},
		{"huge list size", malformedDecode, append(slices.Clone(good[:20]), 0xff, 0xff, 0xff, 0xff, 0x0f)},
		{"longer than 65000 bytes", malformedTruncated, append(slices.Clone(good), make([]byte, MaxDatagramBytes)...)},
	}
	want := map[string]map[string]float64{listenerCompact: {}, listenerBinary: {}}
	sent := 0
	for _, port := range []struct{ listener, addr string }{
		{listenerCompact, b.r.UDPCompactAddr()}, {listenerBinary, b.r.UDPBinaryAddr()},
	} {
		for _, bd := range bad {
			sendUDP(t, port.addr, bd.data, good)
			want[port.listener][bd.reason]++
			sent++
		}
	}
	waitFor(t, "good datagrams", func() bool { return len(b.rec.SpanNames()) == sent })
	for listener, reasons := range want {
		for reason, n := range reasons {
			if got := b.counter(t, "vigil_ingest_jaeger_udp_packets_malformed_total", map[string]string{"listener": listener, "reason": reason}); got != n {
				t.Errorf("%s malformed{%s} = %v, want %v", listener, reason, got, n)
			}
		}
		if got := b.counter(t, "vigil_ingest_jaeger_udp_packets_received_total", map[string]string{"listener": listener}); got != float64(2*len(bad)) {
			t.Errorf("%s received = %v, want %d", listener, got, 2*len(bad))
		}
	}
	if got := b.counter(t, "vigil_ingest_spans_stored_total", map[string]string{"protocol": ingest.ProtocolJaegerUDPCompact}); got != float64(sent) {
		t.Errorf("spans stored = %v, want %d", got, sent)
	}
}

// TestUDPEmptyDatagram checks the empty datagram on its own: it cannot be
// sent through a connected socket on every system in a batch with others.
func TestUDPEmptyDatagram(t *testing.T) {
	b := setup(t, nil)
	sendUDP(t, b.r.UDPCompactAddr(), []byte{})
	waitFor(t, "empty datagram counted", func() bool {
		return b.counter(t, "vigil_ingest_jaeger_udp_packets_malformed_total", map[string]string{"listener": listenerCompact, "reason": malformedEmpty}) == 1
	})
}

// TestUDPInvalidSpansAreDropped checks that a datagram whose spans all
// fail validation is counted as dropped and its spans as rejected, and a
// partly valid one stores the valid rest.
func TestUDPInvalidSpansAreDropped(t *testing.T) {
	b := setup(t, nil)
	allBad := simpleBatch("svc", "bad", 0, 2) // trace id all zeros
	mixed := simpleBatch("svc", "mixed", 5, 2)
	mixed.Spans[1].TraceIdLow = 0
	sendUDP(t, b.r.UDPBinaryAddr(), agentMessage(t, allBad, true), agentMessage(t, mixed, true))
	waitFor(t, "valid span", func() bool { return len(b.rec.SpanNames()) == 1 })
	if got := b.counter(t, "vigil_ingest_spans_rejected_total", map[string]string{"protocol": ingest.ProtocolJaegerUDPCompact, "reason": ingest.ReasonInvalidID}); got != 3 {
		t.Errorf("spans rejected{invalid_id} = %v, want 3", got)
	}
	if got := b.counter(t, "vigil_ingest_jaeger_udp_packets_dropped_total", map[string]string{"listener": listenerBinary, "reason": droppedInvalid}); got != 1 {
		t.Errorf("packets dropped{invalid} = %v, want 1", got)
	}
}

// TestUDPPipelineFullDrops checks that ErrQueueFull from the consumer
// drops the datagram with counters, and later datagrams are stored.
func TestUDPPipelineFullDrops(t *testing.T) {
	b := setup(t, nil)
	b.rec.SetErr(ingest.ErrQueueFull)
	sendUDP(t, b.r.UDPCompactAddr(), agentMessage(t, simpleBatch("svc", "refused", 1, 3), true))
	waitFor(t, "drop counted", func() bool {
		return b.counter(t, "vigil_ingest_jaeger_udp_packets_dropped_total", map[string]string{"listener": listenerCompact, "reason": ingest.ReasonQueueFull}) == 1
	})
	if got := b.counter(t, "vigil_ingest_spans_rejected_total", map[string]string{"protocol": ingest.ProtocolJaegerUDPCompact, "reason": ingest.ReasonQueueFull}); got != 3 {
		t.Errorf("spans rejected{queue_full} = %v, want 3", got)
	}
	b.rec.SetErr(nil)
	sendUDP(t, b.r.UDPCompactAddr(), agentMessage(t, simpleBatch("svc", "later", 2, 1), true))
	waitFor(t, "later datagram", func() bool { return slices.Equal(b.rec.SpanNames(), []string{"later"}) })
}

// TestUDPReaderNeverBlocks holds the only worker in the consumer: the
// reader keeps reading, queues one datagram and drops the rest, counted.
func TestUDPReaderNeverBlocks(t *testing.T) {
	b := setup(t, func(c *Config, o *Options) {
		c.UDPWorkers, c.UDPQueueSize = 1, 1
		o.Traces.(*recorder).Hold()
	})
	const n = 6
	for i := range n {
		if i == 1 {
			waitFor(t, "worker held", func() bool { return b.rec.Held() == 1 })
		}
		sendUDP(t, b.r.UDPCompactAddr(), agentMessage(t, simpleBatch("svc", fmt.Sprint("s", i), int64(i+1), 1), true))
	}
	received := map[string]string{"listener": listenerCompact}
	waitFor(t, "all datagrams read", func() bool {
		return b.counter(t, "vigil_ingest_jaeger_udp_packets_received_total", received) == n
	})
	// One datagram is with the worker, one in the queue.
	dropped := b.counter(t, "vigil_ingest_jaeger_udp_packets_dropped_total", map[string]string{"listener": listenerCompact, "reason": droppedWorkerQueueFull})
	if dropped != n-2 {
		t.Errorf("dropped{worker_queue_full} = %v, want %d", dropped, n-2)
	}
	b.rec.Release()
	waitFor(t, "held datagrams stored", func() bool { return len(b.rec.SpanNames()) == 2 })
}

// TestUDPZipkinThrift checks Agent.emitZipkinBatch, which old Zipkin
// senders use through the Jaeger agent.
func TestUDPZipkinThrift(t *testing.T) {
	b := setup(t, nil)
	buf := thrift.NewTMemoryBufferLen(256)
	now := nowMicros()
	span := &zipkincore.Span{
		TraceID: 77, ID: 78, Name: "zipkin-op", Timestamp: &now, Duration: new(int64(10)),
		Annotations: []*zipkincore.Annotation{{Timestamp: now, Value: "sr", Host: &zipkincore.Endpoint{ServiceName: "legacy"}}},
	}
	if err := agent.NewAgentClientFactory(buf, thrift.NewTCompactProtocolFactoryConf(nil)).EmitZipkinBatch(context.Background(), []*zipkincore.Span{span}); err != nil {
		t.Fatal(err)
	}
	sendUDP(t, b.r.UDPCompactAddr(), bytes.Clone(buf.Bytes()))
	waitFor(t, "zipkin span", func() bool { return slices.Equal(b.rec.SpanNames(), []string{"zipkin-op"}) })
}
