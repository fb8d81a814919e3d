package jaeger

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/agent"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/zipkincore"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/ingest"
)

// fuzzMaxBody caps HTTP fuzz inputs; datagrams are capped at
// MaxDatagramBytes as on the socket.
const fuzzMaxBody = 16 << 10

var fuzzNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// discard is a consumer that checks it only ever gets valid spans.
type discard struct{ t *testing.T }

func (d discard) ConsumeTraces(_ context.Context, td ptrace.Traces) error {
	eachSpan(td, func(_ ptrace.ResourceSpans, sp ptrace.Span) {
		if sp.TraceID().IsEmpty() || sp.SpanID().IsEmpty() {
			d.t.Fatalf("consumer got a span with an empty id: %s/%s", sp.TraceID(), sp.SpanID())
		}
	})
	return nil
}

func fuzzExporter(t *testing.T) *exporter {
	lim := ingest.DefaultLimits()
	lim.Now = func() time.Time { return fuzzNow }
	lim.MaxAge = -1
	return newExporter(discard{t}, lim, DefaultRetryAfter, slog.New(slog.DiscardHandler))
}

func fuzzThriftBatch() *jaegerthrift.Batch {
	s := sample{traceLow: 0x1122334455667788, start: fuzzNow.Add(-time.Second)}
	return s.thrift()
}

// FuzzDatagram feeds arbitrary datagrams to the UDP handler, as the
// socket workers do: it must never panic, and only valid spans reach the
// consumer.
func FuzzDatagram(f *testing.F) {
	b := fuzzThriftBatch()
	for _, compact := range []bool{true, false} {
		msg := agentMessage(f, b, compact)
		f.Add(msg)
		f.Add(msg[:len(msg)/2])
	}
	zbuf := thrift.NewTMemoryBufferLen(256)
	now := fuzzNow.UnixMicro()
	_ = agent.NewAgentClientFactory(zbuf, thrift.NewTBinaryProtocolFactoryConf(nil)).EmitZipkinBatch(context.Background(), []*zipkincore.Span{{
		TraceID: 1, ID: 2, Name: "z", Timestamp: &now,
		Annotations:       []*zipkincore.Annotation{{Timestamp: now, Value: "cs", Host: &zipkincore.Endpoint{ServiceName: "s"}}},
		BinaryAnnotations: []*zipkincore.BinaryAnnotation{{Key: "k", Value: []byte("v"), AnnotationType: zipkincore.AnnotationType_STRING}},
	}})
	f.Add(bytes.Clone(zbuf.Bytes()))
	f.Add([]byte{})
	f.Add([]byte{0x82})
	f.Add([]byte{0x80, 0x01, 0x00, 0x04})

	reg := newTestUDPMetrics(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > MaxDatagramBytes {
			return
		}
		h := &datagramHandler{exp: fuzzExporter(t), logger: slog.New(slog.DiscardHandler)}
		h.handle(context.Background(), newDatagramDecoder(), data, reg.bind(listenerCompact))
	})
}

func newTestUDPMetrics(tb testing.TB) *udpMetrics {
	m, err := newUDPMetrics(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// HTTP body kinds of FuzzHTTPBodies.
const (
	fuzzThriftBinary uint8 = iota
	fuzzThriftCompact
	fuzzZipkinJSON
	fuzzZipkinProto
	fuzzBodyKinds
)

// FuzzHTTPBodies feeds arbitrary bodies to the HTTP decoders and the
// export that follows them: no panic, and only valid spans reach the
// consumer.
func FuzzHTTPBodies(f *testing.F) {
	b := fuzzThriftBatch()
	bin := thriftBody(f, b)
	f.Add(fuzzThriftBinary, bin)
	f.Add(fuzzThriftBinary, bin[:len(bin)/2])
	if compact, err := newCompactSerializer().Write(context.Background(), b); err == nil {
		f.Add(fuzzThriftCompact, compact)
	}
	f.Add(fuzzZipkinJSON, []byte(`[{"traceId":"0000000000000001","id":"0000000000000002","parentId":"0000000000000003","name":"op","kind":"SERVER",`+
		`"timestamp":1748779199000000,"duration":10,"localEndpoint":{"serviceName":"s","ipv4":"10.0.0.1","port":80},`+
		`"remoteEndpoint":{"serviceName":"r"},"annotations":[{"timestamp":1748779199000001,"value":"x"}],"tags":{"error":"boom","k":"v"}}]`))
	f.Add(fuzzZipkinJSON, []byte(`[]`))
	f.Add(fuzzZipkinProto, []byte{0x0a, 0x1a, 0x0a, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0x1a, 0x08, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		if len(body) > fuzzMaxBody {
			return
		}
		var (
			td  ptrace.Traces
			err error
		)
		switch kind % fuzzBodyKinds {
		case fuzzThriftBinary:
			td, err = decodeThriftBatch(body, false, fuzzMaxBody)
		case fuzzThriftCompact:
			td, err = decodeThriftBatch(body, true, fuzzMaxBody)
		case fuzzZipkinJSON:
			td, err = decodeZipkinJSON(body)
		case fuzzZipkinProto:
			td, err = decodeZipkinProto(body, kind&0x80 != 0)
		}
		if err != nil {
			return
		}
		res := fuzzExporter(t).Export(context.Background(), td, nil, "fuzz")
		if res.Status != nil && res.Status.Message() == "" {
			t.Fatalf("failure without a message: %v", res.Status)
		}
	})
}
