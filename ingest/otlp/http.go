package otlp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/internal/inflight"
)

// Content types of OTLP/HTTP. Answers use the request's, spelled exactly
// so, as exporters compare them literally.
const (
	contentTypeProto = "application/x-protobuf"
	contentTypeJSON  = "application/json"
)

// maxJSONDepth bounds the nesting of JSON bodies. pdata's JSON decoder has
// no depth limit of its own; this leaves room for attribute values nested
// as deep as ingest.MaxAttributeValueDepth allows (up to four JSON levels
// each) plus the fixed envelope, so that such values reach validation and
// get its precise message.
const maxJSONDepth = 4*ingest.MaxAttributeValueDepth + 64

// encoding is the body encoding of an OTLP/HTTP request and its answer.
type encoding int

const (
	encProto encoding = iota + 1
	encJSON
)

func (e encoding) String() string {
	if e == encJSON {
		return "json"
	}
	return "protobuf"
}

func (e encoding) contentType() string {
	if e == encJSON {
		return contentTypeJSON
	}
	return contentTypeProto
}

// otlpMessage is what the pdata request and response wrappers of every
// signal implement.
type otlpMessage interface {
	MarshalProto() ([]byte, error)
	UnmarshalProto([]byte) error
	MarshalJSON() ([]byte, error)
	UnmarshalJSON([]byte) error
}

// unmarshal decodes body into m. On failure it returns an error naming
// where the body is wrong as precisely as it can: the field path and byte
// offset for protobuf (md describes m's message), the text before the
// error for JSON.
func (e encoding) unmarshal(m otlpMessage, md protoreflect.MessageDescriptor, body []byte) error {
	if e == encJSON {
		if err := checkJSONShape(body, maxJSONDepth); err != nil {
			return err
		}
		if err := m.UnmarshalJSON(body); err != nil {
			return errors.New(tidyJSONError(err))
		}
		return nil
	}
	if err := m.UnmarshalProto(body); err != nil {
		if where := locateProtoError(body, md); where != "" {
			return errors.New(where)
		}
		return err
	}
	return nil
}

func (e encoding) marshal(m otlpMessage) ([]byte, error) {
	if e == encJSON {
		return m.MarshalJSON()
	}
	return m.MarshalProto()
}

// checkJSONShape refuses what pdata's JSON decoder would let through or
// choke on: nesting of objects and arrays deeper than maxDepth levels (its
// decoder recurses without bound) and data after the top-level object (it
// stops reading there). Syntax errors are left to the decoder.
func checkJSONShape(data []byte, maxDepth int) error {
	depth := 0
	inString, escaped := false, false
	for i, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > maxDepth {
				return fmt.Errorf("JSON nested deeper than %d levels at byte %d", maxDepth, i)
			}
		case '}', ']':
			depth--
			if depth == 0 {
				if rest := bytes.TrimLeft(data[i+1:], " \t\r\n"); len(rest) > 0 {
					return fmt.Errorf("unexpected data after the top-level object at byte %d", len(data)-len(rest))
				}
				return nil
			}
		}
	}
	return nil
}

// requestEncoding returns the encoding named by the Content-Type of r.
func requestEncoding(r *http.Request) (encoding, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return 0, false
	}
	switch mt {
	case contentTypeProto:
		return encProto, true
	case contentTypeJSON:
		return encJSON, true
	}
	return 0, false
}

// httpSignal decodes the body of one signal's OTLP/HTTP request, exports
// it and returns the encoded response, or the status of the failure.
type httpSignal interface {
	export(ctx context.Context, body []byte, enc encoding) ([]byte, *status.Status)
}

// httpHandler serves one signal's OTLP/HTTP path.
type httpHandler struct {
	signal     httpSignal
	auth       *auth.Tokens
	budget     *inflight.Budget
	maxBytes   int64
	retryAfter time.Duration
	logger     *slog.Logger
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	enc, encOK := requestEncoding(r)
	if err := h.auth.CheckRequest(r); err != nil {
		w.Header().Set("WWW-Authenticate", auth.Challenge(err))
		h.writeError(w, enc, http.StatusUnauthorized, status.New(codes.Unauthenticated, err.Error()))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.writeError(w, enc, http.StatusMethodNotAllowed, status.New(codes.Unimplemented, "method "+r.Method+" not allowed, OTLP/HTTP uses POST"))
		return
	}
	if !encOK {
		h.writeError(w, 0, http.StatusUnsupportedMediaType, status.New(codes.InvalidArgument,
			cleanMessage(fmt.Sprintf("unsupported content type %q, use %s or %s", r.Header.Get("Content-Type"), contentTypeProto, contentTypeJSON))))
		return
	}
	res := h.budget.Reserve()
	defer res.Release()
	body, fail := h.readBody(w, r, res)
	if fail != nil {
		res.Release()
		h.logger.DebugContext(r.Context(), "invalid otlp request", "path", r.URL.Path, "status", fail.code, "err", fail.st.Message())
		h.writeError(w, enc, fail.code, fail.st)
		return
	}
	resp, st := h.signal.export(r.Context(), body, enc)
	if st != nil {
		if st.Code() == codes.InvalidArgument {
			h.logger.DebugContext(r.Context(), "invalid otlp request", "path", r.URL.Path, "err", st.Message())
		}
		h.writeError(w, enc, httpStatus(st.Code()), st)
		return
	}
	w.Header().Set("Content-Type", enc.contentType())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
}

// httpFailure is an answer to a request that could not be read.
type httpFailure struct {
	code int
	st   *status.Status
}

// readBody reads the request body, decompressing it, into a buffer
// charged to res as it grows. It refuses bodies larger than maxBytes
// before or after decompression (413), bodies the budget cannot cover
// (429: retry later) and bodies not received within the read timeout
// (408). Once the body is in, the connection's read deadline
// (ReadTimeout) is lifted: it bounds the client's sending, not the wait
// for the pipeline, which would otherwise be cancelled by it.
func (h *httpHandler) readBody(w http.ResponseWriter, r *http.Request, res *inflight.Reservation) ([]byte, *httpFailure) {
	if r.ContentLength > h.maxBytes {
		return nil, &httpFailure{http.StatusRequestEntityTooLarge, status.New(codes.ResourceExhausted,
			fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, h.maxBytes))}
	}
	raw := http.MaxBytesReader(w, r.Body, h.maxBytes)
	defer raw.Close()

	var (
		src        io.Reader = raw
		ce                   = strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
		compressed           = true
	)
	switch ce {
	case "", "identity":
		compressed = false
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return nil, readFailure(ce, err, h.maxBytes)
		}
		defer zr.Close()
		src = zr
	case "deflate":
		zr, err := zlib.NewReader(raw)
		if err != nil {
			return nil, readFailure(ce, err, h.maxBytes)
		}
		defer zr.Close()
		src = zr
	case "zstd":
		zr, err := zstd.NewReader(raw, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(h.maxBytes)))
		if err != nil {
			return nil, readFailure(ce, err, h.maxBytes)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, &httpFailure{http.StatusUnsupportedMediaType, status.New(codes.InvalidArgument,
			cleanMessage(fmt.Sprintf("unsupported content encoding %q, use gzip, deflate, zstd or none", ce)))}
	}

	var hint int64
	if !compressed {
		hint = r.ContentLength
	}
	body, err := inflight.ReadAll(src, res, h.maxBytes, hint)
	switch {
	case errors.Is(err, inflight.ErrOverBudget):
		return nil, &httpFailure{http.StatusTooManyRequests, overBudget(h.retryAfter)}
	case errors.Is(err, inflight.ErrTooLarge):
		what := "request body"
		if compressed {
			what = "decompressed request body"
		}
		return nil, &httpFailure{http.StatusRequestEntityTooLarge, status.New(codes.ResourceExhausted,
			fmt.Sprintf("%s exceeds the limit of %d bytes", what, h.maxBytes))}
	case err != nil:
		return nil, readFailure(ce, err, h.maxBytes)
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	return body, nil
}

// readFailure classifies an error reading (and decompressing) a body.
func readFailure(contentEncoding string, err error, maxBytes int64) *httpFailure {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &httpFailure{http.StatusRequestEntityTooLarge, status.New(codes.ResourceExhausted,
			fmt.Sprintf("request body exceeds the limit of %d bytes", maxBytes))}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &httpFailure{http.StatusRequestTimeout, status.New(codes.DeadlineExceeded,
			"request body not received within the read timeout")}
	}
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		// The zstd frame declares more memory than the limit allows.
		return &httpFailure{http.StatusRequestEntityTooLarge, status.New(codes.ResourceExhausted,
			fmt.Sprintf("decompressed request body exceeds the limit of %d bytes (%v)", maxBytes, err))}
	}
	if contentEncoding == "" || contentEncoding == "identity" {
		return &httpFailure{http.StatusBadRequest, invalidArgument("read request body: " + err.Error())}
	}
	return &httpFailure{http.StatusBadRequest, invalidArgument(fmt.Sprintf("decompress %s request body: %v", contentEncoding, err))}
}

// writeError answers with st encoded as a google.rpc.Status in enc, as the
// OTLP/HTTP specification asks, or as plain text when the request's
// encoding is unknown. Retryable answers get a Retry-After header.
func (h *httpHandler) writeError(w http.ResponseWriter, enc encoding, code int, st *status.Status) {
	hdr := w.Header()
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		secs := int64((h.retryAfter + time.Second - 1) / time.Second)
		hdr.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	}
	hdr.Set("X-Content-Type-Options", "nosniff")
	var (
		body []byte
		err  error
	)
	switch enc {
	case encProto:
		body, err = proto.Marshal(st.Proto())
	case encJSON:
		body, err = protojson.Marshal(st.Proto())
	}
	if enc == 0 || err != nil {
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, st.Message()+"\n")
		return
	}
	hdr.Set("Content-Type", enc.contentType())
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
