package promapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	vpromql "github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/storage"
)

// TestPromErrorStatus: the query's own errors keep their text, with
// Prometheus's types and statuses; storage errors never show theirs.
func TestPromErrorStatus(t *testing.T) {
	pgErr := &pgconn.PgError{Severity: "ERROR", Code: "22021", Message: `invalid byte sequence for encoding "UTF8": 0x00`}
	_, parseErr := parser.NewParser(parser.Options{}).ParseExpr("sum(")
	tests := []struct {
		name   string
		err    error
		typ    string
		status int
		msg    string // "" means err.Error()
	}{
		{"bad parameter", &promParamError{"query", errors.New("is required")}, promErrBadData, 400, ""},
		{"parse error", fmt.Errorf("instant query: %w", parseErr), promErrBadData, 400, ""},
		{"engine limit", fmt.Errorf("range query: %w", &vpromql.LimitError{Setting: "max_query_bytes", Msg: "too long"}), promErrBadData, 400, ""},
		{"engine timeout", promql.ErrQueryTimeout("expression evaluation"), promErrTimeout, 503, "query timed out in expression evaluation"},
		{"deadline in storage", fmt.Errorf("select series: %w: %w", pgErr, context.DeadlineExceeded), promErrTimeout, 503, promMsgTimeout},
		{"engine canceled", promql.ErrQueryCanceled("expression evaluation"), promErrCanceled, 499, "query was canceled in expression evaluation"},
		{"canceled in storage", &promStorageError{fmt.Errorf("label names: %w", context.Canceled)}, promErrCanceled, 499, promMsgCanceled},
		{"unavailable", fmt.Errorf("expanding series: %w: conn refused 10.0.0.5:5432", storage.ErrUnavailable), promErrUnavailable, 503, promMsgUnavailable},
		{"too many samples", promql.ErrTooManySamples("query execution"), promErrExec, 422, ""},
		{"read limit", fmt.Errorf("expanding series: %w: 1000001 series, limit query.max_series", storage.ErrLimitExceeded), promErrExec, 422, ""},
		{"evaluation error", errors.New("vector cannot contain metrics with the same labelset"), promErrExec, 422, ""},
		{"postgres error through the engine", fmt.Errorf("expanding series: resolve matcher: %w", pgErr), promErrInternal, 500, promMsgInternal},
		{"engine storage error", promql.ErrStorage{Err: errors.New("disk on fire")}, promErrInternal, 500, promMsgInternal},
		{"api's own read", &promStorageError{errors.New("can't scan into dest[0]")}, promErrInternal, 500, promMsgInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			typ, status, msg := promErrorStatus(tc.err)
			want := tc.msg
			if want == "" {
				want = tc.err.Error()
			}
			if typ != tc.typ || status != tc.status || msg != want {
				t.Fatalf("promErrorStatus = %s %d %q, want %s %d %q", typ, status, msg, tc.typ, tc.status, want)
			}
			if status == http.StatusInternalServerError && msg != promMsgInternal {
				t.Fatalf("an internal error shows %q", msg)
			}
		})
	}
}
