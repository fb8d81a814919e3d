package pgcore

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-obs/vigil/storage"
)

// ErrCorrupt is wrapped by every error about stored bytes that cannot be
// decoded (a payload, a resource, a histogram sample, a chunk). It is a
// fault of the stored data, not of the connection: Classify leaves it
// alone.
var ErrCorrupt = errors.New("corrupt stored data")

// Classify decides which errors of a database call are retryable. It
// returns err unchanged when it is nil, already wraps
// storage.ErrUnavailable, is a context cancellation or deadline, or wraps
// ErrCorrupt. A *pgconn.PgError whose code means the server cannot serve
// now (class 08 connection exception, admin, crash or start-up shutdown,
// too many connections, serialization failure, deadlock) comes back
// wrapped in storage.ErrUnavailable; any other *pgconn.PgError (a
// constraint, a syntax error, a value PostgreSQL refuses) is returned as it
// is, so callers answer it as an internal error. Every remaining error
// (connect and network errors, timeouts, a connection that broke
// mid-statement) is wrapped in storage.ErrUnavailable. The result always
// keeps err in its chain.
func Classify(err error) error {
	if err == nil || errors.Is(err, storage.ErrUnavailable) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrCorrupt) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case len(pgErr.Code) >= 2 && pgErr.Code[:2] == "08", // connection exception
			pgErr.Code == "57P01", // admin_shutdown
			pgErr.Code == "57P02", // crash_shutdown
			pgErr.Code == "57P03", // cannot_connect_now
			pgErr.Code == "53300", // too_many_connections
			pgErr.Code == "40001", // serialization_failure
			pgErr.Code == "40P01": // deadlock_detected
			return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
		}
		return err
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	}
	// Errors on a connection that broke mid-statement ("conn closed",
	// "unexpected EOF") carry no PgError: treat them as unavailability too.
	return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
}
