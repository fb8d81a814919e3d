package inflight

import (
	"errors"
	"io"
)

// MinStep is the first buffer ReadAll allocates for a body of unknown or
// larger length: what a request holds before it has sent anything.
const MinStep = 8 << 10

// ErrTooLarge is returned by ReadAll when the reader holds more than the
// allowed bytes.
var ErrTooLarge = errors.New("body exceeds the size limit")

// ReadAll reads r to EOF into one buffer and returns what it read.
//
// The buffer grows with the bytes that actually arrive, never from a
// declared length: it starts at MinStep (8 KiB) and doubles when full, up
// to maxBytes+1 (one byte more than allowed tells an oversized body). A
// sizeHint > 0, the declared Content-Length of an uncompressed body, only
// caps the steps: the buffer grows to exactly sizeHint+1 rather than past
// it, so an honest declared length costs no slack, and a body that turns
// out longer keeps doubling. The added capacity of each step is charged
// to res before it is allocated, so the buffer never holds more than res
// was charged for, and res is charged at most max(MinStep, 2 × bytes
// read). The buffers that earlier steps outgrew are garbage and are not
// charged.
//
// A request that declares more than the budget has free right now is
// refused before anything is read or charged: it would most likely be
// refused half-way, its bytes read for nothing. The declared length is
// only compared, never reserved.
//
// It returns ErrTooLarge when r holds more than maxBytes bytes,
// ErrOverBudget when res cannot grow or the declared length does not fit
// (res's Budget counted the request as refused), or the error of r
// unwrapped, so that callers can classify it (*http.MaxBytesError, a
// deadline, a decompression error). Whatever the outcome, the bytes
// charged stay on res until the caller releases it.
func ReadAll(r io.Reader, res *Reservation, maxBytes, sizeHint int64) ([]byte, error) {
	maxBytes = max(maxBytes, 0)
	if sizeHint > 0 && sizeHint <= maxBytes && !res.fits(sizeHint) {
		return nil, ErrOverBudget
	}
	limit := maxBytes + 1
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			next := nextCap(int64(cap(buf)), limit, sizeHint)
			if !res.Grow(next - int64(cap(buf))) {
				return nil, ErrOverBudget
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > maxBytes {
			return nil, ErrTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// nextCap returns the capacity after c: double (at least MinStep), at
// most limit, and at most hint+1 while below it.
func nextCap(c, limit, hint int64) int64 {
	next := max(2*c, MinStep)
	if hint > 0 && hint < limit && c < hint+1 {
		next = min(next, hint+1)
	}
	return min(next, limit)
}
