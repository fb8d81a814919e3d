package pgcore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-obs/vigil/storage"
)

func TestClassify(t *testing.T) {
	pg := func(code string) error {
		return fmt.Errorf("query: %w", &pgconn.PgError{Severity: "ERROR", Code: code, Message: "server says " + code})
	}
	tests := []struct {
		name string
		err  error
		want error // the sentinel the result matches
		same bool  // returned unchanged
		code string
	}{
		{"canceled", fmt.Errorf("x: %w", context.Canceled), context.Canceled, true, ""},
		{"deadline", context.DeadlineExceeded, context.DeadlineExceeded, true, ""},
		{"corrupt", fmt.Errorf("decode: %w", ErrCorrupt), ErrCorrupt, true, ""},
		{"already unavailable", fmt.Errorf("%w: x", storage.ErrUnavailable), storage.ErrUnavailable, true, ""},
		{"already a statement error", fmt.Errorf("%w: x", ErrStatement), ErrStatement, true, ""},
		{"constraint", pg("23505"), ErrStatement, false, "23505"},
		{"bad value", pg("22021"), ErrStatement, false, "22021"},
		{"syntax", pg("42601"), ErrStatement, false, "42601"},
		{"connection exception", pg("08006"), storage.ErrUnavailable, false, "08006"},
		{"admin shutdown", pg("57P01"), storage.ErrUnavailable, false, "57P01"},
		{"crash shutdown", pg("57P02"), storage.ErrUnavailable, false, "57P02"},
		{"cannot connect now", pg("57P03"), storage.ErrUnavailable, false, "57P03"},
		{"too many connections", pg("53300"), storage.ErrUnavailable, false, "53300"},
		{"serialization failure", pg("40001"), storage.ErrUnavailable, false, "40001"},
		{"deadlock", pg("40P01"), storage.ErrUnavailable, false, "40P01"},
		{"canceled by the server for the context", errors.Join(pg("57014"), context.DeadlineExceeded), context.DeadlineExceeded, false, ""},
		{"connect error", connectError(t), storage.ErrUnavailable, false, ""},
		{"broken connection", io.ErrUnexpectedEOF, storage.ErrUnavailable, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.err)
			if !errors.Is(got, tt.want) {
				t.Fatalf("Classify(%v) = %v, want it to match %v", tt.err, got, tt.want)
			}
			if tt.same && got != tt.err {
				t.Fatalf("Classify(%v) = %v, want it unchanged", tt.err, got)
			}
			if leaked := driverTypes(got); len(leaked) > 0 {
				t.Fatalf("Classify(%v) exposes %v", tt.err, leaked)
			}
			if !strings.Contains(got.Error(), tt.err.Error()) {
				t.Errorf("Classify(%v) = %q lost the text", tt.err, got)
			}
			var sql interface{ SQLState() string }
			if errors.As(got, &sql) && sql.SQLState() != tt.code || tt.code != "" && !errors.As(got, &sql) {
				t.Errorf("Classify(%v): SQLSTATE %v, want %q", tt.err, sql, tt.code)
			}
			if again := Classify(got); again != got {
				t.Errorf("Classify is not idempotent: %v → %v", got, again)
			}
			for _, other := range []error{storage.ErrUnavailable, ErrStatement, context.Canceled, context.DeadlineExceeded, ErrCorrupt} {
				if other != tt.want && errors.Is(got, other) {
					t.Errorf("Classify(%v) = %v also matches %v", tt.err, got, other)
				}
			}
		})
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) is not nil")
	}
}

// connectError is the error of connecting to a port nobody listens on.
func connectError(t *testing.T) error {
	t.Helper()
	conn, err := pgconn.Connect(context.Background(), "postgres://vigil@127.0.0.1:1/vigil?connect_timeout=5")
	if err == nil {
		_ = conn.Close(context.Background())
		t.Fatal("connected to port 1")
	}
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("connect: %T %v, want a *pgconn.ConnectError", err, err)
	}
	return err
}

// driverTypes lists the pgx types in err's chain.
func driverTypes(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	if name := fmt.Sprintf("%T", err); strings.Contains(name, "pgconn.") || strings.Contains(name, "pgx.") || strings.Contains(name, "pgproto3.") {
		out = append(out, name)
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		out = append(out, driverTypes(u.Unwrap())...)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = append(out, driverTypes(e)...)
		}
	}
	return out
}

// TestCopyStream checks the wire form of every kind of field against
// PostgreSQL's binary COPY format.
func TestCopyStream(t *testing.T) {
	b := NewCopyStream(0)
	b = AppendRow(b, 10)
	b = AppendNull(b)
	b = AppendInt16(b, -2)
	b = AppendInt32(b, 7)
	b = AppendInt64(b, -1)
	b = AppendFloat64(b, math.Inf(1))
	b = AppendTimestamptz(b, time.Date(2000, 1, 1, 0, 0, 1, 0, time.UTC))
	b = AppendTimestamptzMillis(b, EpochUnixMillis-1)
	b = AppendText(b, "ok")
	b = AppendBytes(b, []byte{9})
	b, mark := BeginField(b)
	b = append(b, 1, 2, 3)
	if n := EndField(b, mark); n != 3 {
		t.Errorf("EndField returned %d, want 3", n)
	}
	got := EndCopyStream(b)

	be := binary.BigEndian
	minus1ms := int64(-1000)
	var want []byte
	want = append(want, "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00"...)
	want = be.AppendUint16(want, 10)
	want = be.AppendUint32(want, 0xffffffff)
	want = be.AppendUint16(be.AppendUint32(want, 2), 0xfffe)
	want = be.AppendUint32(be.AppendUint32(want, 4), 7)
	want = be.AppendUint64(be.AppendUint32(want, 8), math.MaxUint64)
	want = be.AppendUint64(be.AppendUint32(want, 8), math.Float64bits(math.Inf(1)))
	want = be.AppendUint64(be.AppendUint32(want, 8), 1_000_000)
	want = be.AppendUint64(be.AppendUint32(want, 8), uint64(minus1ms))
	want = append(be.AppendUint32(want, 2), "ok"...)
	want = append(be.AppendUint32(want, 1), 9)
	want = append(be.AppendUint32(want, 3), 1, 2, 3)
	want = be.AppendUint16(want, 0xffff)
	if string(got) != string(want) {
		t.Fatalf("stream\n got %x\nwant %x", got, want)
	}
}

func TestDecoder(t *testing.T) {
	var b []byte
	b = binary.AppendUvarint(b, 300)
	b = binary.AppendVarint(b, -5)
	b = binary.AppendUvarint(b, 2)
	b = append(b, "hi"...)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(1.5))
	d := NewDecoder(b)
	if u, v, s, f := d.Uvarint(), d.Varint(), d.Str(), d.Float64(); u != 300 || v != -5 || s != "hi" || f != 1.5 {
		t.Fatalf("read %d %d %q %v", u, v, s, f)
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	// Every truncation is an error wrapping ErrCorrupt, and reads after
	// it return zero values.
	for i := range b {
		d := NewDecoder(b[:i])
		d.Uvarint()
		d.Varint()
		d.Str()
		d.Float64()
		if err := d.Finish(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
		if d.Uvarint() != 0 || d.Str() != "" {
			t.Fatalf("truncated at %d: reads after an error return data", i)
		}
	}
	// A count beyond the input is refused before anything is allocated.
	d = NewDecoder(binary.AppendUvarint(nil, 1<<40))
	if d.Count(); !errors.Is(d.Err(), ErrCorrupt) {
		t.Fatalf("huge count: %v", d.Err())
	}
}

func TestArgs(t *testing.T) {
	args := Args{"first"}
	got := args.Bind("a BETWEEN %s AND %s", 1, 2) + " AND " + args.Bind("b = %s", "x")
	if got != "a BETWEEN $2 AND $3 AND b = $4" || len(args) != 4 || args[3] != "x" {
		t.Fatalf("got %q with %v", got, args)
	}
}
