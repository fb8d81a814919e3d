package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/storage"
)

func TestCleanMessage(t *testing.T) {
	long := strings.Repeat("é", MaxMessageBytes) // two bytes each
	tests := []struct{ in, want string }{
		{"ok", "ok"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{long, long[:MaxMessageBytes] + "..."},
		{"x" + long, "x" + long[:MaxMessageBytes-2] + "..."}, // not cut inside a rune
	}
	for _, tt := range tests {
		got := CleanMessage(tt.in)
		if got != tt.want || !utf8.ValidString(got) {
			t.Errorf("CleanMessage(%.20q…) = %.20q… (%d bytes), want %d bytes", tt.in, got, len(got), len(tt.want))
		}
	}
}

func TestConsumerStatus(t *testing.T) {
	tests := []struct {
		err    error
		code   codes.Code
		reason string
		retry  bool
	}{
		{fmt.Errorf("x: %w", ingest.ErrQueueFull), codes.ResourceExhausted, ingest.ReasonQueueFull, true},
		{ingest.ErrShuttingDown, codes.Unavailable, ingest.ReasonUnavailable, true},
		{fmt.Errorf("x: %w", storage.ErrUnavailable), codes.Unavailable, ingest.ReasonUnavailable, true},
		{context.Canceled, codes.Canceled, ingest.ReasonCanceled, false},
		{context.DeadlineExceeded, codes.DeadlineExceeded, ingest.ReasonCanceled, false},
		{errors.New("secret database detail"), codes.Internal, ingest.ReasonError, false},
	}
	for _, tt := range tests {
		st, reason := ConsumerStatus(context.Background(), slog.New(slog.DiscardHandler), tt.err, 3*time.Second, "samples")
		d, retry := RetryDelay(st)
		if st.Code() != tt.code || reason != tt.reason || retry != tt.retry || (retry && d != 3*time.Second) {
			t.Errorf("%v: %v %q retry %v %v, want %v %q retry %v", tt.err, st.Code(), reason, retry, d, tt.code, tt.reason, tt.retry)
		}
		if strings.Contains(st.Message(), "secret") {
			t.Errorf("%v: message %q carries the consumer's error", tt.err, st.Message())
		}
	}
}

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		code              codes.Code
		http, remoteWrite int
	}{
		{codes.OK, 200, 200},
		{codes.InvalidArgument, 400, 400},
		{codes.Unauthenticated, 401, 401},
		{codes.PermissionDenied, 403, 403},
		{codes.NotFound, 404, 404},
		{codes.ResourceExhausted, 429, 503},
		{codes.Canceled, 499, 499},
		{codes.Unavailable, 503, 503},
		{codes.DeadlineExceeded, 504, 504},
		{codes.Unimplemented, 501, 501},
		{codes.Internal, 500, 500},
		{codes.DataLoss, 500, 500},
	}
	for _, tt := range tests {
		if got := HTTPStatus(tt.code); got != tt.http {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tt.code, got, tt.http)
		}
		if got := RemoteWriteStatus(tt.code); got != tt.remoteWrite {
			t.Errorf("RemoteWriteStatus(%v) = %d, want %d", tt.code, got, tt.remoteWrite)
		}
	}
}

func TestSetRetryAfter(t *testing.T) {
	tests := []struct {
		st   *status.Status
		want string
	}{
		{Retryable(codes.Unavailable, "x", time.Second), "1"},
		{Retryable(codes.Unavailable, "x", 1500*time.Millisecond), "2"},
		{Retryable(codes.Unavailable, "x", 0), "1"},
		{status.New(codes.Internal, "x"), ""},
	}
	for _, tt := range tests {
		h := http.Header{}
		SetRetryAfter(h, tt.st)
		if got := h.Get("Retry-After"); got != tt.want {
			t.Errorf("%v: Retry-After %q, want %q", tt.st.Details(), got, tt.want)
		}
	}
}
