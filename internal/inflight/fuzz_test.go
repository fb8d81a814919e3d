package inflight

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReadAll checks ReadAll's contract for any body, read in chunks of
// any size, under any limit, budget and declared length: it returns the
// body exactly or says why not, and never charges more than the budget,
// its bound of twice the bytes read, or keeps a charge once released.
func FuzzReadAll(f *testing.F) {
	f.Add([]byte("hello"), uint8(1), uint32(100), uint32(1<<20), int64(5))
	f.Add([]byte{}, uint8(0), uint32(0), uint32(1), int64(0))
	f.Add(bytes.Repeat([]byte{1}, 9000), uint8(63), uint32(8192), uint32(1<<20), int64(-1))
	f.Add(bytes.Repeat([]byte{2}, 20000), uint8(7), uint32(1<<20), uint32(12000), int64(20000))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, maxBytes, limit uint32, hint int64) {
		if len(data) > 1<<16 {
			t.Skip("body over the fuzzing size cap")
		}
		maxB := int64(maxBytes % (1 << 17))
		b, err := New(int64(limit%(1<<18))+1, nil)
		if err != nil {
			t.Fatal(err)
		}
		res := b.Reserve()
		got, err := ReadAll(&chunkReader{data: data, n: int(chunk%64) + 1}, res, maxB, hint)
		if b.InUse() != res.Bytes() || b.Peak() > b.Limit() {
			t.Fatalf("budget holds %d (peak %d, limit %d), reservation %d", b.InUse(), b.Peak(), b.Limit(), res.Bytes())
		}
		if bound := min(maxB+1, max(MinStep, 2*int64(len(data)))); res.Bytes() > bound {
			t.Fatalf("charged %d for a %d-byte body, over the bound %d", res.Bytes(), len(data), bound)
		}
		switch {
		case err == nil:
			if !bytes.Equal(got, data) || int64(len(data)) > maxB {
				t.Fatalf("read %d bytes of %d, limit %d", len(got), len(data), maxB)
			}
			if int64(cap(got)) > res.Bytes() {
				t.Fatalf("buffer of %d bytes, charged %d", cap(got), res.Bytes())
			}
		case errors.Is(err, ErrTooLarge):
			if int64(len(data)) <= maxB {
				t.Fatalf("ErrTooLarge for %d bytes, limit %d", len(data), maxB)
			}
		case errors.Is(err, ErrOverBudget):
		default:
			t.Fatalf("unexpected error %v", err)
		}
		res.Release()
		if b.InUse() != 0 {
			t.Fatalf("budget holds %d after release", b.InUse())
		}
	})
}
