package pgcore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-obs/vigil/storage"
)

// ErrCorrupt is wrapped by every error about stored bytes that cannot be
// decoded (a payload, a resource, a histogram sample, a chunk). It is a
// fault of the stored data, not of the connection: Classify leaves it
// alone.
var ErrCorrupt = errors.New("corrupt stored data")

// ErrStatement is wrapped by Classify's answer to an error PostgreSQL
// gave a statement that retrying will not cure: a constraint, a syntax
// error, a value it refuses. It is a fault of Vigil or of its schema, and
// callers answer it as an internal error, showing none of its text.
var ErrStatement = errors.New("statement failed")

// Classify turns an error of a database call into one that callers
// outside storage/postgres can act on without knowing pgx: its chain holds
// no pgx type, only a sentinel and, for the logs, the original text.
//
//   - nil stays nil.
//   - An error that holds no pgx type and already wraps
//     storage.ErrUnavailable, ErrStatement, ErrCorrupt or a context
//     cancellation or deadline is returned unchanged.
//   - A driver error that ended with the context wraps that context
//     error (context.Canceled or context.DeadlineExceeded), whatever else
//     it holds.
//   - A PostgreSQL error whose code means the server cannot serve now
//     (class 08 connection exception, admin, crash or start-up shutdown,
//     too many connections, serialization failure, deadlock) wraps
//     storage.ErrUnavailable; any other PostgreSQL error wraps
//     ErrStatement. Both keep the SQLSTATE (a SQLState method) and the
//     server's message in their text.
//   - Every remaining error (connect and network errors, timeouts, a
//     connection that broke mid-statement) wraps storage.ErrUnavailable.
//
// Errors from pgx are replaced by their text; others stay in the chain.
// Classify is idempotent.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	driver := fromDriver(err)
	if !driver && (errors.Is(err, storage.ErrUnavailable) || errors.Is(err, ErrStatement) || errors.Is(err, ErrCorrupt) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, context.Canceled):
		return opaque(context.Canceled, err, driver)
	case errors.Is(err, context.DeadlineExceeded):
		return opaque(context.DeadlineExceeded, err, driver)
	case errors.As(err, &pgErr):
		kind := ErrStatement
		if retryable(pgErr.Code) {
			kind = storage.ErrUnavailable
		}
		return &dbError{kind: kind, msg: err.Error(), code: pgErr.Code}
	}
	// Connect and network errors, timeouts, and a connection that broke
	// mid-statement ("conn closed", "unexpected EOF") carry no PgError.
	if driver {
		return &dbError{kind: storage.ErrUnavailable, msg: err.Error()}
	}
	return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
}

// opaque is err matched as kind, holding its text in place of the driver
// error when there is one.
func opaque(kind, err error, driver bool) error {
	if !driver {
		return err
	}
	return &dbError{kind: kind, msg: err.Error()}
}

// retryable reports whether a SQLSTATE means the server cannot serve now
// but may soon.
func retryable(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), // connection exception
		code == "57P01", // admin_shutdown
		code == "57P02", // crash_shutdown
		code == "57P03", // cannot_connect_now
		code == "53300", // too_many_connections
		code == "40001", // serialization_failure
		code == "40P01": // deadlock_detected
		return true
	}
	return false
}

// dbError is a classified driver error: it matches kind with errors.Is
// and carries the driver error's text, never the driver error itself.
type dbError struct {
	kind error  // storage.ErrUnavailable, ErrStatement or a context error
	msg  string // the driver error's text, for logs
	code string // SQLSTATE, "" when the server did not answer
}

func (e *dbError) Error() string {
	if e.kind == storage.ErrUnavailable {
		return e.kind.Error() + ": " + e.msg
	}
	return e.msg
}

func (e *dbError) Unwrap() error { return e.kind }

// SQLState returns the SQLSTATE PostgreSQL answered with, or "" when the
// error did not come from the server.
func (e *dbError) SQLState() string { return e.code }

// driverPkg prefixes the import paths of pgx and its packages.
const driverPkg = "github.com/jackc/"

// fromDriver reports whether err's chain holds a value of a pgx type.
func fromDriver(err error) bool {
	if err == nil {
		return false
	}
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if strings.HasPrefix(t.PkgPath(), driverPkg) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return fromDriver(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if fromDriver(e) {
				return true
			}
		}
	}
	return false
}
