package jaeger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/agent"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/zipkincore"
	zipkinthrift "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinthriftconverter"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"

	"github.com/vigil-obs/vigil/ingest"
)

// Thrift protocol ids: the first byte of a message in each encoding. A
// strict binary message starts with the version word 0x8001xxxx, a compact
// one with the protocol id 0x82.
const (
	protocolIDBinary  = 0x80
	protocolIDCompact = 0x82
)

// Names of the UDP listeners, the listener label of the packet counters.
const (
	listenerCompact = "compact"
	listenerBinary  = "binary"
)

// Reasons of the malformed-packet counter.
const (
	malformedEmpty           = "empty"            // a zero-length datagram
	malformedTruncated       = "truncated"        // longer than MaxDatagramBytes, cut by the kernel
	malformedUnknownProtocol = "unknown_protocol" // first byte neither 0x80 nor 0x82
	malformedDecode          = "decode"           // not a valid Agent.emitBatch/emitZipkinBatch message
)

// Reasons of the dropped-packet counter, besides the consumer's
// ingest.Reason* values (queue_full, unavailable, canceled, error).
const (
	// droppedWorkerQueueFull: the port's datagram queue was full, so the
	// reader dropped the datagram undecoded rather than stop reading.
	droppedWorkerQueueFull = "worker_queue_full"
	// droppedInvalid: every span of the datagram failed validation.
	droppedInvalid = "invalid"
	// droppedKernelBuffer: the kernel dropped the datagram before the
	// reader saw it, its socket receive buffer being full (Linux only,
	// SO_RXQ_OVFL). Such datagrams are not counted as received.
	droppedKernelBuffer = "kernel_buffer"
)

// datagram is a buffer from the pool holding n bytes of one packet.
type datagram struct {
	buf *[]byte
	n   int
}

// udpServer reads one UDP port. One reader goroutine only reads: it never
// decodes nor waits for the pipeline, so that a slow database never
// blocks the socket. It hands each datagram to a bounded queue drained by
// workers, and drops the datagram (counted) when the queue is full.
type udpServer struct {
	name    string // listenerCompact or listenerBinary
	conn    *net.UDPConn
	queue   chan datagram
	workers int
	pool    *sync.Pool
	handler *datagramHandler
	packets packetCounters
	logger  *slog.Logger

	// kernelDrops is the socket's cumulative kernel drop counter as last
	// reported; only the reader goroutine uses it.
	kernelDrops uint32
}

func newUDPServer(name, addr string, cfg Config, pool *sync.Pool, h *datagramHandler, m *udpMetrics, logger *slog.Logger) (*udpServer, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("resolve udp %s address %q: %w", name, addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("listen udp %s: %w", name, err)
	}
	if err := conn.SetReadBuffer(cfg.UDPSocketBufferBytes); err != nil {
		return nil, errors.Join(fmt.Errorf("set udp %s read buffer: %w", name, err), conn.Close())
	}
	if err := enableKernelDrops(conn); err != nil {
		return nil, errors.Join(fmt.Errorf("count udp %s kernel drops: %w", name, err), conn.Close())
	}
	logger = logger.With("listener", name)
	if got, err := receiveBufferBytes(conn); err == nil {
		// Linux reports twice the usable size and caps what is asked at
		// net.core.rmem_max.
		msg := "udp receive buffer"
		if got/2 < cfg.UDPSocketBufferBytes {
			msg = "udp receive buffer capped by the kernel, raise net.core.rmem_max for more"
		}
		logger.Info(msg, "requested_bytes", cfg.UDPSocketBufferBytes, "kernel_bytes", got)
	}
	return &udpServer{
		name:    name,
		conn:    conn,
		queue:   make(chan datagram, cfg.UDPQueueSize),
		workers: cfg.UDPWorkers,
		pool:    pool,
		handler: h,
		packets: m.bind(name),
		logger:  logger,
	}, nil
}

// run reads until the connection is closed, then lets the workers drain
// the queue with consumeCtx and returns once they have.
func (s *udpServer) run(consumeCtx context.Context) {
	var wg sync.WaitGroup
	for range s.workers {
		wg.Go(func() { s.work(consumeCtx) })
	}
	s.read()
	close(s.queue)
	wg.Wait()
}

// read is the socket loop. It returns once the connection is closed.
func (s *udpServer) read() {
	oob := make([]byte, oobBytes)
	for {
		bp := s.pool.Get().(*[]byte)
		n, oobn, flags, _, err := s.conn.ReadMsgUDP(*bp, oob)
		if oobn > 0 {
			s.countKernelDrops(oob[:oobn])
		}
		if err != nil {
			s.pool.Put(bp)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Errors on an unconnected UDP socket are transient (e.g. a
			// signal); the Jaeger agent also keeps reading.
			s.logger.Warn("read udp datagram", "err", err)
			continue
		}
		s.packets.received.Inc()
		if flags&syscall.MSG_TRUNC != 0 {
			s.packets.malformed.WithLabelValues(malformedTruncated).Inc()
			s.pool.Put(bp)
			continue
		}
		select {
		case s.queue <- datagram{buf: bp, n: n}:
		default:
			s.packets.dropped.WithLabelValues(droppedWorkerQueueFull).Inc()
			s.pool.Put(bp)
		}
	}
}

// countKernelDrops turns the cumulative drop counter the kernel attached
// to a datagram into an increment of the dropped counter. The counter
// only reaches Vigil with the next datagram read: drops are counted when
// traffic resumes.
func (s *udpServer) countKernelDrops(oob []byte) {
	total, ok := kernelDrops(oob)
	if !ok {
		return
	}
	if delta := total - s.kernelDrops; delta > 0 {
		s.packets.dropped.WithLabelValues(droppedKernelBuffer).Add(float64(delta))
	}
	s.kernelDrops = total
}

func (s *udpServer) work(ctx context.Context) {
	d := newDatagramDecoder()
	for dg := range s.queue {
		s.handler.handle(ctx, d, (*dg.buf)[:dg.n], s.packets)
		s.pool.Put(dg.buf)
	}
}

func (s *udpServer) addr() string { return s.conn.LocalAddr().String() }

// datagramHandler decodes datagrams and exports their spans; it is shared
// by the workers of both UDP ports and safe for concurrent use.
type datagramHandler struct {
	exp     *exporter
	compact *ingest.Counters // spans of compact-thrift datagrams
	binary  *ingest.Counters // spans of binary-thrift datagrams
	logger  *slog.Logger
}

// handle decodes one datagram and exports its spans, counting the packet's
// fate on pc. It waits until the consumer answers; a refused datagram is
// dropped, counted by reason: UDP has no way to ask the sender to retry.
// d is the calling worker's decoder; data is not retained.
func (h *datagramHandler) handle(ctx context.Context, d *datagramDecoder, data []byte, pc packetCounters) {
	td, enc, reason, err := d.decode(ctx, data)
	if err != nil {
		pc.malformed.WithLabelValues(reason).Inc()
		h.logger.DebugContext(ctx, "malformed jaeger datagram", "bytes", len(data), "reason", reason, "err", err)
		return
	}
	protocol, counters := ingest.ProtocolJaegerUDPBinary, h.binary
	if enc == protocolIDCompact {
		protocol, counters = ingest.ProtocolJaegerUDPCompact, h.compact
	}
	res := h.exp.Export(ctx, td, counters, protocol)
	switch {
	case res.Status == nil:
	case res.Status.Code() == codes.InvalidArgument:
		pc.dropped.WithLabelValues(droppedInvalid).Inc()
	default:
		pc.dropped.WithLabelValues(res.Reason).Inc()
	}
}

// agentCapture is the Agent service handler: it keeps what the processor
// decoded so that the worker converts and exports it afterwards.
type agentCapture struct {
	method string // "emitBatch", "emitZipkinBatch", or "" before a call
	batch  *jaegerthrift.Batch
	zipkin []*zipkincore.Span
}

// EmitBatch implements agent.Agent.
func (c *agentCapture) EmitBatch(_ context.Context, batch *jaegerthrift.Batch) error {
	c.method, c.batch = "emitBatch", batch
	return nil
}

// EmitZipkinBatch implements agent.Agent.
func (c *agentCapture) EmitZipkinBatch(_ context.Context, spans []*zipkincore.Span) error {
	c.method, c.zipkin = "emitZipkinBatch", spans
	return nil
}

// datagramDecoder turns one Agent message into pdata with the Jaeger IDL
// processor and the contrib translators. Each worker owns one: it is not
// safe for concurrent use.
type datagramDecoder struct {
	capture   agentCapture
	processor *agent.AgentProcessor
	conf      *thrift.TConfiguration
	out       *thrift.TMemoryBuffer // answers to unknown methods, discarded
	oprot     thrift.TProtocol
}

func newDatagramDecoder() *datagramDecoder {
	d := &datagramDecoder{
		conf: &thrift.TConfiguration{MaxMessageSize: MaxDatagramBytes, MaxFrameSize: MaxDatagramBytes},
		out:  thrift.NewTMemoryBufferLen(256),
	}
	d.processor = agent.NewAgentProcessor(&d.capture)
	d.oprot = thrift.NewTBinaryProtocolConf(d.out, d.conf)
	return d
}

// decode reads one datagram, whichever its encoding: the first byte tells
// binary (0x80) from compact (0x82) thrift, so both ports take both, as
// clients such as jaeger-client for Node send binary thrift to 6831. It
// returns the spans and the protocol id, or the malformed reason and the
// error.
func (d *datagramDecoder) decode(ctx context.Context, data []byte) (ptrace.Traces, byte, string, error) {
	if len(data) == 0 {
		return ptrace.Traces{}, 0, malformedEmpty, errors.New("decode datagram: empty")
	}
	trans := &thrift.TMemoryBuffer{Buffer: bytes.NewBuffer(data)}
	var iprot thrift.TProtocol
	switch data[0] {
	case protocolIDCompact:
		iprot = thrift.NewTCompactProtocolConf(trans, d.conf)
	case protocolIDBinary:
		iprot = thrift.NewTBinaryProtocolConf(trans, d.conf)
	default:
		return ptrace.Traces{}, 0, malformedUnknownProtocol,
			fmt.Errorf("decode datagram: first byte 0x%02x is neither binary (0x80) nor compact (0x82) thrift", data[0])
	}
	d.capture = agentCapture{}
	defer d.out.Reset()
	if _, err := d.processor.Process(ctx, iprot, d.oprot); err != nil {
		return ptrace.Traces{}, 0, malformedDecode, fmt.Errorf("decode agent message: %w", err)
	}
	td, err := d.capture.traces()
	if err != nil {
		return ptrace.Traces{}, 0, malformedDecode, err
	}
	return td, data[0], "", nil
}

// traces converts what the processor captured.
func (c *agentCapture) traces() (ptrace.Traces, error) {
	switch {
	case c.method == "":
		return ptrace.Traces{}, errors.New("decode agent message: no emitBatch or emitZipkinBatch call")
	case c.method == "emitBatch" && c.batch == nil:
		return ptrace.Traces{}, errors.New("decode agent message: emitBatch without a batch")
	case c.batch != nil:
		td, err := thriftToTraces(c.batch)
		if err != nil {
			return ptrace.Traces{}, fmt.Errorf("translate jaeger batch: %w", err)
		}
		return td, nil
	}
	// ToDomain's error only describes annotations it could not map; the
	// trace it returns is complete, as the Jaeger agent treats it.
	trace, _ := zipkinthrift.ToDomain(c.zipkin)
	td, err := protoToTraces([]*model.Batch{{Spans: trace.Spans}})
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("translate zipkin batch: %w", err)
	}
	return td, nil
}
