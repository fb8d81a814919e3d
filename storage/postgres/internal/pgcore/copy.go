package pgcore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"iter"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EpochUnixMillis is PostgreSQL's timestamp epoch, 2000-01-01 UTC, in
// Unix milliseconds: binary timestamptz values count microseconds from it.
const EpochUnixMillis = 946_684_800_000

// epoch is the timestamp epoch as a time; it is never modified.
var epoch = time.UnixMilli(EpochUnixMillis)

// The binary COPY encoder. Writers render rows in PostgreSQL's binary COPY
// format directly, rather than through pgx's per-value type dispatch, which
// saves a large share of their CPU: a stream is the header, then per row
// its field count and each field as a length word and its bytes in network
// order, then the trailer. The functions append to a buffer the way
// strconv's and encoding/binary's Append functions do:
//
//	b := pgcore.NewCopyStream(size)
//	for _, r := range rows {
//		b = pgcore.AppendRow(b, 2)
//		b = pgcore.AppendInt64(b, r.id)
//		b = pgcore.AppendText(b, r.name)
//	}
//	data := pgcore.EndCopyStream(b)
//
// Each row's fields come in the column order of its COPY statement.

// copyHeader starts a binary COPY stream: signature, flags, no extension.
const copyHeader = "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// copyTrailer ends a binary COPY stream.
const copyTrailer = 0xffff

// nullLength is the length word of a NULL field.
const nullLength = 0xffffffff

// NewCopyStream returns a buffer holding the stream header, with room for
// size bytes of rows. A row takes 2 bytes, and each field 4 bytes plus its
// value.
func NewCopyStream(size int) []byte {
	b := make([]byte, 0, len(copyHeader)+size+2)
	return append(b, copyHeader...)
}

// EndCopyStream appends the trailer: b is then ready to send.
func EndCopyStream(b []byte) []byte { return binary.BigEndian.AppendUint16(b, copyTrailer) }

// AppendRow starts a row of n fields.
func AppendRow(b []byte, n int) []byte { return binary.BigEndian.AppendUint16(b, uint16(n)) }

// AppendNull appends a NULL field.
func AppendNull(b []byte) []byte { return binary.BigEndian.AppendUint32(b, nullLength) }

// AppendInt16 appends a smallint field.
func AppendInt16(b []byte, v int16) []byte {
	b = binary.BigEndian.AppendUint32(b, 2)
	return binary.BigEndian.AppendUint16(b, uint16(v))
}

// AppendInt32 appends an integer field.
func AppendInt32(b []byte, v int32) []byte {
	b = binary.BigEndian.AppendUint32(b, 4)
	return binary.BigEndian.AppendUint32(b, uint32(v))
}

// int4OID is the type oid of integer, which an array field names as its
// elements' type.
const int4OID = 23

// AppendInt32Array appends a one-dimensional integer[] field without NULLs
// (an empty array when vs is empty).
func AppendInt32Array(b []byte, vs []int32) []byte {
	if len(vs) == 0 {
		b = binary.BigEndian.AppendUint32(b, 12)
		b = binary.BigEndian.AppendUint32(b, 0) // no dimensions
		b = binary.BigEndian.AppendUint32(b, 0) // no NULLs
		return binary.BigEndian.AppendUint32(b, int4OID)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(20+8*len(vs)))
	b = binary.BigEndian.AppendUint32(b, 1) // one dimension
	b = binary.BigEndian.AppendUint32(b, 0) // no NULLs
	b = binary.BigEndian.AppendUint32(b, int4OID)
	b = binary.BigEndian.AppendUint32(b, uint32(len(vs)))
	b = binary.BigEndian.AppendUint32(b, 1) // lower bound
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, 4)
		b = binary.BigEndian.AppendUint32(b, uint32(v))
	}
	return b
}

// AppendInt64 appends a bigint field.
func AppendInt64(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

// AppendFloat64 appends a double precision field, bit for bit (NaN
// payloads such as Prometheus's staleness marker included).
func AppendFloat64(b []byte, v float64) []byte { return AppendInt64(b, int64(math.Float64bits(v))) }

// AppendTimestamptz appends a timestamptz field, truncated to
// microseconds.
func AppendTimestamptz(b []byte, t time.Time) []byte {
	return AppendInt64(b, t.Sub(epoch).Microseconds())
}

// AppendTimestamptzMillis appends a timestamptz field of ms milliseconds
// since the Unix epoch.
func AppendTimestamptzMillis(b []byte, ms int64) []byte {
	return AppendInt64(b, (ms-EpochUnixMillis)*1000)
}

// AppendBytes appends a field of raw bytes: a bytea, or a uuid when p has
// 16 bytes.
func AppendBytes(b, p []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
}

// AppendText appends a text field; s must be valid UTF-8 without NUL.
func AppendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// BeginField starts a field whose value the caller appends in place (a
// chunk, a tsvector) and returns the mark EndField takes.
func BeginField(b []byte) ([]byte, int) { return append(b, 0, 0, 0, 0), len(b) }

// EndField sets the length of the field begun at mark to what was
// appended since, and returns that length.
func EndField(b []byte, mark int) int {
	n := len(b) - mark - 4
	binary.BigEndian.PutUint32(b[mark:], uint32(n))
	return n
}

// Ensurer creates the partitions holding the given times when they are
// missing; *postgres.Partitions is one.
type Ensurer interface {
	Ensure(ctx context.Context, times []time.Time) error
}

// Times yields at(&rows[i]) for each row: the times CopyIn needs to create
// missing partitions, without building a slice of them.
func Times[R any](rows []R, at func(*R) time.Time) iter.Seq[time.Time] {
	return func(yield func(time.Time) bool) {
		for i := range rows {
			if !yield(at(&rows[i])) {
				return
			}
		}
	}
}

// CopyIn sends data, a binary COPY stream, with copySQL on one pooled
// connection; COPY is one statement, so it commits whole or not at all.
// When PostgreSQL reports a row for a time without a partition (a clock
// jump, a long-running process), CopyIn has parts create the partitions
// of the periods of times and sends the stream once more; with parts nil
// it does not retry. Errors are not classified.
func CopyIn(ctx context.Context, pool *pgxpool.Pool, parts Ensurer, copySQL string, data []byte, times iter.Seq[time.Time]) error {
	send := func() error {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		_, err = conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), copySQL)
		return err
	}
	return retryPartitions(ctx, parts, times, send)
}

// Copy is one binary COPY stream and the COPY statement it is for.
type Copy struct {
	SQL  string
	Data []byte
}

// CopyAllIn is CopyIn for several streams: it sends them in order in one
// transaction on one pooled connection, so that they commit together or
// not at all, with one commit (one WAL flush) for all. times must cover
// the rows of every stream.
func CopyAllIn(ctx context.Context, pool *pgxpool.Pool, parts Ensurer, copies []Copy, times iter.Seq[time.Time]) error {
	if len(copies) == 1 {
		return CopyIn(ctx, pool, parts, copies[0].SQL, copies[0].Data, times)
	}
	send := func() error {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		for _, c := range copies {
			if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(c.Data), c.SQL); err != nil {
				return errors.Join(err, tx.Rollback(context.WithoutCancel(ctx)))
			}
		}
		return tx.Commit(ctx)
	}
	return retryPartitions(ctx, parts, times, send)
}

// retryPartitions runs send, and once more after parts created the
// partitions of times when send failed for a row without a partition.
func retryPartitions(ctx context.Context, parts Ensurer, times iter.Seq[time.Time], send func() error) error {
	err := send()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" || parts == nil {
		return err
	}
	// Distinct hours are enough: every partition period is a whole number
	// of hours.
	hours := map[time.Time]struct{}{}
	for t := range times {
		hours[t.UTC().Truncate(time.Hour)] = struct{}{}
	}
	list := make([]time.Time, 0, len(hours))
	for h := range hours {
		list = append(list, h)
	}
	if err := parts.Ensure(ctx, list); err != nil {
		return err
	}
	return send()
}

// CopyFrom sends data, a binary COPY stream, with copySQL on conn, inside
// whatever transaction conn is in. Errors are not classified.
func CopyFrom(ctx context.Context, conn *pgconn.PgConn, copySQL string, data []byte) error {
	_, err := conn.CopyFrom(ctx, bytes.NewReader(data), copySQL)
	return err
}
