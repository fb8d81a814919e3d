package pgcore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-obs/vigil/storage"
)

func TestClassify(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code}) }
	tests := []struct {
		name        string
		err         error
		unavailable bool
	}{
		{"nil", nil, false},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), false},
		{"deadline", context.DeadlineExceeded, false},
		{"corrupt", fmt.Errorf("decode: %w", ErrCorrupt), false},
		{"constraint", pg("23505"), false},
		{"bad value", pg("22021"), false},
		{"connection exception", pg("08006"), true},
		{"admin shutdown", pg("57P01"), true},
		{"too many connections", pg("53300"), true},
		{"serialization failure", pg("40001"), true},
		{"deadlock", pg("40P01"), true},
		{"broken connection", io.ErrUnexpectedEOF, true},
		{"already classified", fmt.Errorf("%w: x", storage.ErrUnavailable), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.err)
			if errors.Is(got, storage.ErrUnavailable) != tt.unavailable {
				t.Fatalf("Classify(%v) = %v, unavailable %v", tt.err, got, !tt.unavailable)
			}
			if tt.err != nil && !errors.Is(got, tt.err) {
				t.Fatalf("Classify(%v) = %v lost the error", tt.err, got)
			}
			if !tt.unavailable && got != tt.err {
				t.Fatalf("Classify(%v) = %v, want it unchanged", tt.err, got)
			}
		})
	}
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
