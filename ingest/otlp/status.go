package otlp

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
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

// maxMessageBytes bounds the messages put in statuses and partial
// successes; decoder errors can quote large parts of the input.
const maxMessageBytes = 2048

// cleanMessage makes msg safe for a protobuf string field (valid UTF-8, as
// exporters' decoders require) and bounded in size.
func cleanMessage(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if len(msg) <= maxMessageBytes {
		return msg
	}
	cut := maxMessageBytes
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "..."
}

// invalidArgument is the status of a request that cannot be accepted as
// sent; exporters must not retry it.
func invalidArgument(msg string) *status.Status {
	return status.New(codes.InvalidArgument, cleanMessage(msg))
}

// retryable returns a status carrying a RetryInfo detail, which OTLP
// exporters honour as the delay before their next attempt.
func retryable(code codes.Code, msg string, after time.Duration) *status.Status {
	st := status.New(code, msg)
	if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)}); err == nil {
		return withInfo
	}
	return st
}

// overBudget is the status of a request refused because the in-flight
// byte budget shared by the receivers is spent.
func overBudget(retryAfter time.Duration) *status.Status {
	return retryable(codes.ResourceExhausted, "too many request bytes in flight, retry later", retryAfter)
}

// consumerStatus maps an error of an ingest consumer to the status the
// exporter gets and to the reason label of the rejected counter, logging
// the errors that are Vigil's fault. Messages are fixed strings: the
// consumer's error may carry database details.
func consumerStatus(ctx context.Context, logger *slog.Logger, err error, retryAfter time.Duration, signal string) (*status.Status, string) {
	switch {
	case errors.Is(err, ingest.ErrQueueFull):
		return retryable(codes.ResourceExhausted, "ingest queue full, retry later", retryAfter), ingest.ReasonQueueFull
	case errors.Is(err, ingest.ErrShuttingDown):
		return retryable(codes.Unavailable, "ingest pipeline shutting down, retry later", retryAfter), ingest.ReasonUnavailable
	case errors.Is(err, storage.ErrUnavailable):
		return retryable(codes.Unavailable, "storage unavailable, retry later", retryAfter), ingest.ReasonUnavailable
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, "request canceled before the "+signal+" were stored"), ingest.ReasonCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "deadline exceeded before the "+signal+" were stored"), ingest.ReasonCanceled
	default:
		logger.ErrorContext(ctx, "store "+signal, "err", err)
		return status.New(codes.Internal, "internal error storing "+signal), ingest.ReasonError
	}
}

// httpStatus maps a gRPC code to the HTTP status of an OTLP/HTTP answer, as
// grpc-gateway does (499 is the de-facto "client closed request").
func httpStatus(c codes.Code) int {
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
