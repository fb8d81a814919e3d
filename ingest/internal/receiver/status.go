package receiver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/storage"
)

// MaxMessageBytes bounds the messages put in answers (statuses, partial
// successes, plain-text bodies): decoder errors can quote large parts of
// the input.
const MaxMessageBytes = 2048

// CleanMessage makes msg safe for a protobuf string field (valid UTF-8,
// as senders' decoders require) and at most MaxMessageBytes long, plus
// "..." when it was cut.
func CleanMessage(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if len(msg) <= MaxMessageBytes {
		return msg
	}
	cut := MaxMessageBytes
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "..."
}

// InvalidArgument is the status of a request that cannot be accepted as
// sent; senders must not retry it. msg is cleaned.
func InvalidArgument(msg string) *status.Status {
	return status.New(codes.InvalidArgument, CleanMessage(msg))
}

// Retryable returns a status carrying a RetryInfo detail of after, the
// delay OTLP exporters and the OTel Collector's exporters wait before
// their next attempt. Over HTTP the same delay becomes Retry-After (see
// SetRetryAfter).
func Retryable(code codes.Code, msg string, after time.Duration) *status.Status {
	st := status.New(code, msg)
	if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)}); err == nil {
		return withInfo
	}
	return st
}

// RetryDelay returns the delay of st's RetryInfo detail; false when it
// has none, which means "do not retry this as it is".
func RetryDelay(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// OverBudget is the status of a request refused because the in-flight
// byte budget shared by the receivers is spent: RESOURCE_EXHAUSTED with
// a retry delay (HTTP 429, or 503 for remote_write).
func OverBudget(retryAfter time.Duration) *status.Status {
	return Retryable(codes.ResourceExhausted, "too many request bytes in flight, retry later", retryAfter)
}

// ConsumerStatus maps an error of an ingest consumer to the status the
// sender gets and to the reason label of the rejected counters, logging
// the errors that are Vigil's fault. noun names what was refused ("spans",
// "samples"). Messages are fixed strings: the consumer's error may carry
// database details.
//
//	consumer error                   code                reason       retry hint
//	ingest.ErrQueueFull              RESOURCE_EXHAUSTED  queue_full   yes
//	ingest.ErrShuttingDown           UNAVAILABLE         unavailable  yes
//	storage.ErrUnavailable           UNAVAILABLE         unavailable  yes
//	context.Canceled                 CANCELLED           canceled     no
//	context.DeadlineExceeded         DEADLINE_EXCEEDED   canceled     no
//	anything else                    INTERNAL            error        no
func ConsumerStatus(ctx context.Context, logger *slog.Logger, err error, retryAfter time.Duration, noun string) (*status.Status, string) {
	switch {
	case errors.Is(err, ingest.ErrQueueFull):
		return Retryable(codes.ResourceExhausted, "ingest queue full, retry later", retryAfter), ingest.ReasonQueueFull
	case errors.Is(err, ingest.ErrShuttingDown):
		return Retryable(codes.Unavailable, "ingest pipeline shutting down, retry later", retryAfter), ingest.ReasonUnavailable
	case errors.Is(err, storage.ErrUnavailable):
		return Retryable(codes.Unavailable, "storage unavailable, retry later", retryAfter), ingest.ReasonUnavailable
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, "request canceled before the "+noun+" were stored"), ingest.ReasonCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "deadline exceeded before the "+noun+" were stored"), ingest.ReasonCanceled
	default:
		logger.ErrorContext(ctx, "store "+noun, "err", err)
		return status.New(codes.Internal, "internal error storing "+noun), ingest.ReasonError
	}
}

// HTTPStatus maps a gRPC code to the HTTP status of the same answer, as
// grpc-gateway does (499 is the de-facto "client closed request"). The
// answers that ask for a retry are 429 (RESOURCE_EXHAUSTED), 503
// (UNAVAILABLE) and 504 (DEADLINE_EXCEEDED), which OTLP/HTTP exporters,
// Jaeger clients and Zipkin reporters retry.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Canceled:
		return 499
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.Unimplemented:
		return http.StatusNotImplemented
	default:
		return http.StatusInternalServerError
	}
}

// RemoteWriteStatus is HTTPStatus for Prometheus remote_write senders,
// which retry every 5xx answer but a 429 only with retry_on_http_429 (off
// by default) and drop the request otherwise: RESOURCE_EXHAUSTED (queue
// full, in-flight budget spent) is 503 there, so that the samples are
// sent again rather than lost.
func RemoteWriteStatus(c codes.Code) int {
	if c == codes.ResourceExhausted {
		return http.StatusServiceUnavailable
	}
	return HTTPStatus(c)
}

// SetRetryAfter sets the Retry-After header of an HTTP answer to the
// RetryInfo delay of st, rounded up to whole seconds and at least 1; it
// does nothing when st carries no retry hint.
func SetRetryAfter(h http.Header, st *status.Status) {
	d, ok := RetryDelay(st)
	if !ok {
		return
	}
	secs := int64((d + time.Second - 1) / time.Second)
	h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
}
