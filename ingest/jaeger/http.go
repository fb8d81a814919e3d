package jaeger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/apache/thrift/lib/go/thrift"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	zipkinmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receiver"
	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/internal/inflight"
)

// Paths and content types of the HTTP APIs.
const (
	jaegerTracesPath = "/api/traces"
	zipkinSpansPath  = "/api/v2/spans"

	contentTypeThrift        = "application/x-thrift"
	contentTypeThriftBinary  = "application/vnd.apache.thrift.binary"
	contentTypeThriftCompact = "application/vnd.apache.thrift.compact"
	contentTypeJSON          = "application/json"
	contentTypeProtobuf      = "application/x-protobuf"
)

// bodyDecoder decodes one request body into spans; the error names what is
// wrong and becomes the 400 answer.
type bodyDecoder func(r *http.Request, body []byte) (ptrace.Traces, error)

// httpHandler serves one HTTP ingest path: authentication, method, body
// limits and decompression, decoding, then export. Senders get 202
// Accepted (what the Jaeger collector and Zipkin answer) only once the
// spans are committed.
type httpHandler struct {
	api       string // "jaeger" or "zipkin", for messages
	decoders  map[string]bodyDecoder
	defaultCT string // media type assumed when Content-Type is absent
	exp       *exporter
	counters  *ingest.Counters
	protocol  string
	auth      *auth.Tokens
	budget    *inflight.Budget
	body      receiver.BodyReader
	logger    *slog.Logger
}

// bodyReader reads the bodies of both HTTP APIs: gzip is the only
// compression Jaeger clients and Zipkin reporters use.
func bodyReader(cfg Config) receiver.BodyReader {
	return receiver.BodyReader{MaxBytes: cfg.MaxRequestBytes, Encodings: []string{"gzip"}, RetryAfter: cfg.RetryAfter}
}

func newJaegerHTTPHandler(exp *exporter, opts Options, cfg Config, logger *slog.Logger) http.Handler {
	binary := func(_ *http.Request, body []byte) (ptrace.Traces, error) {
		return decodeThriftBatch(body, false, cfg.MaxRequestBytes)
	}
	mux := http.NewServeMux()
	mux.Handle(jaegerTracesPath, &httpHandler{
		api: "jaeger",
		decoders: map[string]bodyDecoder{
			contentTypeThrift:       binary,
			contentTypeThriftBinary: binary,
			contentTypeThriftCompact: func(_ *http.Request, body []byte) (ptrace.Traces, error) {
				return decodeThriftBatch(body, true, cfg.MaxRequestBytes)
			},
		},
		exp: exp, counters: opts.Metrics.Spans(ingest.ProtocolJaegerHTTP), protocol: ingest.ProtocolJaegerHTTP,
		auth: opts.Auth, budget: opts.Budget, body: bodyReader(cfg), logger: logger,
	})
	return mux
}

func newZipkinHTTPHandler(exp *exporter, opts Options, cfg Config, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(zipkinSpansPath, &httpHandler{
		api: "zipkin",
		decoders: map[string]bodyDecoder{
			contentTypeJSON: func(_ *http.Request, body []byte) (ptrace.Traces, error) {
				return decodeZipkinJSON(body)
			},
			contentTypeProtobuf: func(r *http.Request, body []byte) (ptrace.Traces, error) {
				// X-B3-Flags: 1 marks debug spans, as Zipkin's server reads it.
				return decodeZipkinProto(body, r.Header.Get("X-B3-Flags") == "1")
			},
		},
		defaultCT: contentTypeJSON,
		exp:       exp, counters: opts.Metrics.Spans(ingest.ProtocolZipkinHTTP), protocol: ingest.ProtocolZipkinHTTP,
		auth: opts.Auth, budget: opts.Budget, body: bodyReader(cfg), logger: logger,
	})
	return mux
}

// decodeZipkinJSON reads a Zipkin v2 JSON list of spans, as zipkinv2's
// JSON unmarshaler does.
func decodeZipkinJSON(body []byte) (ptrace.Traces, error) {
	var spans []*zipkinmodel.SpanModel
	if err := json.Unmarshal(body, &spans); err != nil {
		return ptrace.Traces{}, fmt.Errorf("decode zipkin json spans: %w", err)
	}
	td, err := zipkinToTraces(spans)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("decode zipkin json spans: %w", err)
	}
	return td, nil
}

// decodeZipkinProto reads a Zipkin v2 protobuf ListOfSpans, as zipkinv2's
// protobuf unmarshaler does.
func decodeZipkinProto(body []byte, debug bool) (ptrace.Traces, error) {
	spans, err := zipkin_proto3.ParseSpans(body, debug)
	if err == nil {
		var td ptrace.Traces
		if td, err = zipkinToTraces(spans); err == nil {
			return td, nil
		}
	}
	return ptrace.Traces{}, fmt.Errorf("decode zipkin protobuf spans: %w", err)
}

// decodeThriftBatch reads one jaeger.Batch struct in binary (as the Jaeger
// collector and clients' HTTP senders use) or compact thrift.
func decodeThriftBatch(body []byte, compact bool, maxBytes int64) (ptrace.Traces, error) {
	conf := &thrift.TConfiguration{MaxMessageSize: int32(maxBytes), MaxFrameSize: int32(maxBytes)}
	trans := &thrift.TMemoryBuffer{Buffer: bytes.NewBuffer(body)}
	var prot thrift.TProtocol = thrift.NewTBinaryProtocolConf(trans, conf)
	if compact {
		prot = thrift.NewTCompactProtocolConf(trans, conf)
	}
	batch := &jaegerthrift.Batch{}
	if err := batch.Read(context.Background(), prot); err != nil {
		return ptrace.Traces{}, fmt.Errorf("decode thrift Batch: %w", err)
	}
	td, err := thriftToTraces(batch)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("translate thrift Batch: %w", err)
	}
	return td, nil
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if fail := receiver.Authenticate(w, r, h.auth); fail != nil {
		receiver.WriteText(w, fail)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		receiver.WriteText(w, &receiver.Failure{HTTP: http.StatusMethodNotAllowed,
			Status: status.New(codes.Unimplemented, "method "+r.Method+" not allowed, use POST")})
		return
	}
	ct := r.Header.Get("Content-Type")
	mt := h.defaultCT
	if ct != "" {
		parsed, _, err := mime.ParseMediaType(ct)
		if err != nil {
			mt = ""
		} else {
			mt = parsed
		}
	}
	decode, ok := h.decoders[mt]
	if !ok {
		receiver.WriteText(w, &receiver.Failure{HTTP: http.StatusUnsupportedMediaType, Status: receiver.InvalidArgument(
			fmt.Sprintf("unsupported content type %q, use one of %s", ct, strings.Join(h.contentTypes(), ", ")))})
		return
	}
	charge := h.budget.Reserve()
	defer charge.Release()
	body, fail := h.body.Read(w, r, charge)
	if fail != nil {
		charge.Release()
		h.logger.DebugContext(r.Context(), "invalid "+h.api+" request", "status", fail.HTTP, "err", fail.Status.Message())
		receiver.WriteText(w, fail)
		return
	}
	td, err := decode(r, body)
	if err != nil {
		h.logger.DebugContext(r.Context(), "invalid "+h.api+" request", "err", err)
		receiver.WriteText(w, receiver.Fail(receiver.InvalidArgument(err.Error())))
		return
	}
	res := h.exp.Export(r.Context(), td, h.counters, h.protocol)
	if res.Status != nil {
		receiver.WriteText(w, receiver.Fail(res.Status))
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if res.Rejected > 0 {
		// Neither API can report a partial success; say it in the body
		// for people, as the spans are counted in the metrics.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusAccepted)
		_, _ = fmt.Fprintf(w, "%d spans rejected: %s\n", res.Rejected, receiver.CleanMessage(res.Message))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (h *httpHandler) contentTypes() []string {
	return slices.Sorted(maps.Keys(h.decoders))
}
