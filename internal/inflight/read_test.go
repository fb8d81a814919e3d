package inflight

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// chunkReader returns data n bytes per Read.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.data))
	copy(p, r.data[:k])
	r.data = r.data[k:]
	return k, nil
}

func TestReadAll(t *testing.T) {
	const maxBytes = 1 << 20
	body := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b
	}
	readers := map[string]func([]byte) io.Reader{
		"whole":     func(b []byte) io.Reader { return bytes.NewReader(b) },
		"one byte":  func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"data+EOF":  func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
		"1000 each": func(b []byte) io.Reader { return &chunkReader{data: b, n: 1000} },
	}
	tests := []struct {
		name   string
		size   int
		hint   int64
		want   error
		charge func(size int) int64 // what the reservation holds after a success; nil: only the bound is checked
	}{
		{name: "empty", size: 0},
		{name: "empty, declared", size: 0, hint: 0},
		{name: "small", size: 100},
		{name: "small, declared", size: 100, hint: 100, charge: func(n int) int64 { return int64(n) + 1 }},
		{name: "one step", size: MinStep - 1},
		{name: "one step exactly", size: MinStep},
		{name: "past a step", size: MinStep + 1},
		{name: "large, declared", size: 300_000, hint: 300_000, charge: func(n int) int64 { return int64(n) + 1 }},
		{name: "large", size: 300_000},
		{name: "declared too short", size: 50_000, hint: 10},
		{name: "declared too long", size: 50_000, hint: 900_000},
		{name: "at the limit", size: maxBytes},
		{name: "at the limit, declared", size: maxBytes, hint: maxBytes},
		{name: "over the limit", size: maxBytes + 1, want: ErrTooLarge},
		{name: "far over the limit, declared", size: 3 * maxBytes, hint: 3 * maxBytes, want: ErrTooLarge},
	}
	for _, tt := range tests {
		for rname, reader := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				b, err := New(4*maxBytes, nil)
				if err != nil {
					t.Fatal(err)
				}
				in := body(tt.size)
				res := b.Reserve()
				got, err := ReadAll(reader(in), res, maxBytes, tt.hint)
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				if b.InUse() != res.Bytes() {
					t.Errorf("budget holds %d, reservation %d", b.InUse(), res.Bytes())
				}
				// The buffer doubles only when full: it never holds more
				// than twice what arrived, or the first step.
				if bound := min(maxBytes+1, max(MinStep, 2*int64(tt.size))); res.Bytes() > bound {
					t.Errorf("charged %d for %d bytes, over the bound %d", res.Bytes(), tt.size, bound)
				}
				if tt.want == nil {
					if !bytes.Equal(got, in) {
						t.Fatalf("read %d bytes, want the %d sent", len(got), len(in))
					}
					if int64(cap(got)) > res.Bytes() {
						t.Errorf("buffer of %d bytes, charged %d", cap(got), res.Bytes())
					}
					if tt.charge != nil && res.Bytes() != tt.charge(tt.size) {
						t.Errorf("charged %d, want %d", res.Bytes(), tt.charge(tt.size))
					}
				}
				res.Release()
				if b.InUse() != 0 {
					t.Errorf("budget holds %d after release", b.InUse())
				}
			})
		}
	}
}

func TestReadAllOverBudget(t *testing.T) {
	tests := []struct {
		name        string
		hint        int64
		wantCharged bool // read part of the body before the refusal
	}{
		// A declared length the budget cannot hold is refused up front.
		{name: "declared", hint: 200_000, wantCharged: false},
		// An undeclared one is refused once it outgrows the budget.
		{name: "undeclared", hint: 0, wantCharged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(100_000, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := &chunkReader{data: make([]byte, 200_000), n: 1000}
			res := b.Reserve()
			_, err = ReadAll(r, res, 1<<20, tt.hint)
			if !errors.Is(err, ErrOverBudget) {
				t.Fatalf("err = %v, want ErrOverBudget", err)
			}
			if got := res.Bytes() > 0; got != tt.wantCharged || res.Bytes() > b.Limit() || b.InUse() != res.Bytes() {
				t.Errorf("reservation %d, budget %d of %d", res.Bytes(), b.InUse(), b.Limit())
			}
			if read := 200_000 - len(r.data); (read > 0) != tt.wantCharged {
				t.Errorf("read %d bytes before the refusal", read)
			}
			res.Release()
		})
	}
}

// TestReadAllDeclaredButNotSent is the slow client: a large declared
// length and a few bytes sent cost the first step, not the declared size.
func TestReadAllDeclaredButNotSent(t *testing.T) {
	b, err := New(64<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := b.Reserve()
	cut := errors.New("connection cut")
	_, err = ReadAll(io.MultiReader(bytes.NewReader([]byte("abc")), iotest.ErrReader(cut)), res, 16<<20, 16<<20)
	if err != cut {
		t.Fatalf("err = %v, want the reader's own error", err)
	}
	if res.Bytes() != MinStep {
		t.Errorf("charged %d for 3 bytes of a declared 16 MiB, want %d", res.Bytes(), MinStep)
	}
	res.Release()
}
