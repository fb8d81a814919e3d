package jaeger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"github.com/klauspost/compress/gzip"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv2"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"

	"github.com/vigil-obs/vigil/ingest"
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
	api        string // "jaeger" or "zipkin", for messages
	decoders   map[string]bodyDecoder
	defaultCT  string // media type assumed when Content-Type is absent
	exp        *exporter
	counters   *ingest.Counters
	protocol   string
	auth       *auth.Tokens
	budget     *inflight.Budget
	maxBytes   int64
	retryAfter time.Duration
	logger     *slog.Logger
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
		auth: opts.Auth, budget: opts.Budget, maxBytes: cfg.MaxRequestBytes, retryAfter: cfg.RetryAfter, logger: logger,
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
		auth: opts.Auth, budget: opts.Budget, maxBytes: cfg.MaxRequestBytes, retryAfter: cfg.RetryAfter, logger: logger,
	})
	return mux
}

// zipkinJSONDecoder keeps string tags as strings, as Zipkin stores them.
var zipkinJSONDecoder = zipkinv2.NewJSONTracesUnmarshaler(false)

// decodeZipkinJSON reads a Zipkin v2 JSON list of spans.
func decodeZipkinJSON(body []byte) (ptrace.Traces, error) {
	td, err := zipkinJSONDecoder.UnmarshalTraces(body)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("decode zipkin json spans: %w", err)
	}
	return td, nil
}

// decodeZipkinProto reads a Zipkin v2 protobuf ListOfSpans.
func decodeZipkinProto(body []byte, debug bool) (ptrace.Traces, error) {
	td, err := zipkinv2.NewProtobufTracesUnmarshaler(debug, false).UnmarshalTraces(body)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("decode zipkin protobuf spans: %w", err)
	}
	return td, nil
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
	td, err := jaegertranslator.ThriftToTraces(batch)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("translate thrift Batch: %w", err)
	}
	return td, nil
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.auth.CheckRequest(r); err != nil {
		w.Header().Set("WWW-Authenticate", auth.Challenge(err))
		h.writeError(w, http.StatusUnauthorized, err.Error())
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed, use POST")
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
		h.writeError(w, http.StatusUnsupportedMediaType,
			fmt.Sprintf("unsupported content type %q, use one of %s", ct, strings.Join(h.contentTypes(), ", ")))
		return
	}
	charge := h.budget.Reserve()
	defer charge.Release()
	body, code, err := h.readBody(w, r, charge)
	if err != nil {
		charge.Release()
		h.logger.DebugContext(r.Context(), "invalid "+h.api+" request", "status", code, "err", err)
		h.writeError(w, code, err.Error())
		return
	}
	td, err := decode(r, body)
	if err != nil {
		h.logger.DebugContext(r.Context(), "invalid "+h.api+" request", "err", err)
		h.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res := h.exp.export(r.Context(), td, h.counters, h.protocol)
	if res.st != nil {
		h.writeError(w, httpStatus(res.st.Code()), res.st.Message())
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if res.rejected > 0 {
		// Neither API can report a partial success; say it in the body
		// for people, as the spans are counted in the metrics.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusAccepted)
		_, _ = fmt.Fprintf(w, "%d spans rejected: %s\n", res.rejected, cleanMessage(res.message))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (h *httpHandler) contentTypes() []string {
	return slices.Sorted(maps.Keys(h.decoders))
}

// readBody reads the body, gunzipping it when Content-Encoding says so,
// into a buffer charged to res as it grows. It refuses bodies larger than
// maxBytes before or after decompression (413), bodies the budget cannot
// cover (429: retry later) and bodies not received within the read
// timeout (408). Other failures are 400. Once the body is in, the
// connection's read deadline is lifted, as in the OTLP receiver.
func (h *httpHandler) readBody(w http.ResponseWriter, r *http.Request, res *inflight.Reservation) ([]byte, int, error) {
	if r.ContentLength > h.maxBytes {
		return nil, http.StatusRequestEntityTooLarge,
			fmt.Errorf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, h.maxBytes)
	}
	raw := http.MaxBytesReader(w, r.Body, h.maxBytes)
	defer raw.Close()
	var src io.Reader = raw
	compressed := false
	switch ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return nil, readFailure(err), fmt.Errorf("decompress gzip request body: %w", err)
		}
		defer zr.Close()
		src, compressed = zr, true
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported content encoding %q, use gzip or none", ce)
	}
	var hint int64
	if !compressed {
		hint = r.ContentLength
	}
	body, err := inflight.ReadAll(src, res, h.maxBytes, hint)
	switch {
	case errors.Is(err, inflight.ErrOverBudget):
		return nil, http.StatusTooManyRequests, errors.New("too many request bytes in flight, retry later")
	case errors.Is(err, inflight.ErrTooLarge):
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("decompressed request body exceeds the limit of %d bytes", h.maxBytes)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, http.StatusRequestTimeout, errors.New("request body not received within the read timeout")
	case err != nil:
		return nil, readFailure(err), fmt.Errorf("read request body: %w", err)
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	return body, 0, nil
}

func readFailure(err error) int {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// writeError answers with a plain-text message, as the Jaeger collector
// and Zipkin do. Retryable answers get Retry-After.
func (h *httpHandler) writeError(w http.ResponseWriter, code int, msg string) {
	hdr := w.Header()
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		secs := int64((h.retryAfter + time.Second - 1) / time.Second)
		hdr.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	}
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, cleanMessage(msg)+"\n")
}

// httpStatus maps the code of an export failure to an HTTP status.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.Canceled:
		return 499
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}
