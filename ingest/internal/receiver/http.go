package receiver

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/internal/inflight"
)

// Failure is the answer to an HTTP request refused before its data
// reached a consumer, or by the consumer: the HTTP status and the status
// describing it (code, cleaned message, retry hint). The HTTP status
// differs from HTTPStatus(Status.Code()) for failures only HTTP has, such
// as 405, 408, 413 and 415.
type Failure struct {
	HTTP   int
	Status *status.Status
}

// Fail returns the failure whose HTTP status is HTTPStatus of st's code.
func Fail(st *status.Status) *Failure {
	return &Failure{HTTP: HTTPStatus(st.Code()), Status: st}
}

// Authenticate checks the bearer token of r against tokens; a nil or
// disabled tokens lets every request through (nil result). A request
// that does not pass gets the WWW-Authenticate challenge set on w and an
// UNAUTHENTICATED failure (401) naming the problem, for the caller to
// write in its protocol's format.
func Authenticate(w http.ResponseWriter, r *http.Request, tokens *auth.Tokens) *Failure {
	err := tokens.CheckRequest(r)
	if err == nil {
		return nil
	}
	w.Header().Set("WWW-Authenticate", auth.Challenge(err))
	return &Failure{HTTP: http.StatusUnauthorized, Status: status.New(codes.Unauthenticated, CleanMessage(err.Error()))}
}

// WriteHeaders sets what every failure answer carries besides its body:
// Retry-After when the status has a retry hint, and nosniff.
func WriteHeaders(h http.Header, f *Failure) {
	SetRetryAfter(h, f.Status)
	h.Set("X-Content-Type-Options", "nosniff")
}

// WriteText answers f with its message as plain text, as the Jaeger
// collector, Zipkin and Prometheus's remote_write receiver do.
func WriteText(w http.ResponseWriter, f *Failure) {
	WriteHeaders(w.Header(), f)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(f.HTTP)
	_, _ = io.WriteString(w, CleanMessage(f.Status.Message())+"\n")
}

// BodyReader reads HTTP request bodies under a size limit and the
// in-flight byte budget.
type BodyReader struct {
	// MaxBytes bounds a body both as received and after decompression.
	MaxBytes int64
	// Encodings lists the Content-Encoding values decompressed besides
	// none and "identity", among "gzip" (which also accepts "x-gzip"),
	// "deflate" and "zstd"; any other is refused with 415. Nil means
	// Content-Encoding is not looked at and the body is returned as sent
	// (remote_write compresses the body itself, with snappy).
	Encodings []string
	// RetryAfter is the delay suggested when the budget is spent.
	RetryAfter time.Duration
}

// Read reads the body of r, decompressed, into a buffer charged to res
// as it grows (see inflight.ReadAll: it grows with the bytes that
// arrive, never from the declared length). It refuses bodies larger than
// MaxBytes before or after decompression (413, RESOURCE_EXHAUSTED), bodies
// the budget cannot cover (OverBudget: 429 with a retry delay), bodies not
// received within the server's read timeout (408, DEADLINE_EXCEEDED),
// unknown encodings (415) and undecodable ones (400). Once the body is
// in, the connection's read deadline is lifted: it bounds the client's
// sending, not the wait for the consumer, which it would otherwise
// cancel.
func (b BodyReader) Read(w http.ResponseWriter, r *http.Request, res *inflight.Reservation) ([]byte, *Failure) {
	if r.ContentLength > b.MaxBytes {
		return nil, &Failure{http.StatusRequestEntityTooLarge, status.New(codes.ResourceExhausted,
			fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, b.MaxBytes))}
	}
	raw := http.MaxBytesReader(w, r.Body, b.MaxBytes)
	defer raw.Close()

	var (
		src        io.Reader = raw
		ce         string
		compressed bool
	)
	if b.Encodings != nil {
		ce = strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
		zr, err := b.decompressor(ce, raw)
		if err != nil {
			return nil, err
		}
		if zr != nil {
			defer zr.Close()
			src, compressed = zr, true
		}
	}

	var hint int64
	if !compressed {
		hint = r.ContentLength
	}
	body, err := inflight.ReadAll(src, res, b.MaxBytes, hint)
	switch {
	case errors.Is(err, inflight.ErrOverBudget):
		return nil, &Failure{http.StatusTooManyRequests, OverBudget(b.RetryAfter)}
	case errors.Is(err, inflight.ErrTooLarge):
		what := "request body"
		if compressed {
			what = "decompressed request body"
		}
		return nil, &Failure{http.StatusRequestEntityTooLarge, status.New(codes.ResourceExhausted,
			fmt.Sprintf("%s exceeds the limit of %d bytes", what, b.MaxBytes))}
	case err != nil:
		return nil, b.readFailure(ce, err)
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	return body, nil
}

// decompressor returns the reader decompressing raw for Content-Encoding
// ce; nil for none.
func (b BodyReader) decompressor(ce string, raw io.Reader) (io.ReadCloser, *Failure) {
	name := ce
	switch ce {
	case "", "identity":
		return nil, nil
	case "x-gzip":
		name = "gzip"
	}
	allowed := false
	for _, e := range b.Encodings {
		allowed = allowed || e == name
	}
	if !allowed {
		return nil, &Failure{http.StatusUnsupportedMediaType, InvalidArgument(fmt.Sprintf("unsupported content encoding %q, use %s or none", ce, strings.Join(b.Encodings, ", ")))}
	}
	var (
		zr  io.ReadCloser
		err error
	)
	switch name {
	case "gzip":
		zr, err = gzip.NewReader(raw)
	case "deflate":
		zr, err = zlib.NewReader(raw)
	case "zstd":
		var d *zstd.Decoder
		if d, err = zstd.NewReader(raw, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(b.MaxBytes))); err == nil {
			zr = d.IOReadCloser()
		}
	default:
		return nil, &Failure{http.StatusUnsupportedMediaType, InvalidArgument(fmt.Sprintf("unsupported content encoding %q", ce))}
	}
	if err != nil {
		return nil, b.readFailure(ce, err)
	}
	return zr, nil
}

// readFailure classifies an error reading (and decompressing) a body.
func (b BodyReader) readFailure(contentEncoding string, err error) *Failure {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &Failure{http.StatusRequestEntityTooLarge, status.New(codes.ResourceExhausted,
			fmt.Sprintf("request body exceeds the limit of %d bytes", b.MaxBytes))}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &Failure{http.StatusRequestTimeout, status.New(codes.DeadlineExceeded,
			"request body not received within the read timeout")}
	}
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		// The zstd frame declares more memory than the limit allows.
		return &Failure{http.StatusRequestEntityTooLarge, status.New(codes.ResourceExhausted,
			CleanMessage(fmt.Sprintf("decompressed request body exceeds the limit of %d bytes (%v)", b.MaxBytes, err)))}
	}
	if contentEncoding == "" || contentEncoding == "identity" {
		return &Failure{http.StatusBadRequest, InvalidArgument("read request body: " + err.Error())}
	}
	return &Failure{http.StatusBadRequest, InvalidArgument(fmt.Sprintf("decompress %s request body: %v", contentEncoding, err))}
}
