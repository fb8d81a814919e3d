package postgres

import (
	"bytes"
	"encoding/binary"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/vigil-obs/vigil/storage"
)

// maxIndexedToken is the longest token, in bytes, that goes into the
// tokens column (and so the GIN index): longer ones (base64 blobs, long
// hex strings) would bloat the index and can still be found, more slowly,
// by the phrase check.
const maxIndexedToken = 64

// textOID is PostgreSQL's type OID of text, the element type of tokens.
const textOID = 25

// tokenizer splits bodies into their distinct search tokens, exactly as
// storage.Tokens does, reusing its buffers from one body to the next.
type tokenizer struct {
	buf   []byte   // the lower-cased tokens, back to back
	spans [][2]int // each token's [start, end) in buf
}

// tokens fills t with the distinct indexable tokens of s, in no
// particular order.
func (t *tokenizer) tokens(s string) {
	t.buf, t.spans = t.buf[:0], t.spans[:0]
	start := -1
	end := func() {
		if start >= 0 {
			t.add(start)
			start = -1
		}
	}
	for _, r := range s {
		switch {
		case storage.IsCJK(r):
			end()
			at := len(t.buf)
			t.buf = utf8.AppendRune(t.buf, r)
			t.add(at)
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if start < 0 {
				start = len(t.buf)
			}
			t.buf = utf8.AppendRune(t.buf, unicode.ToLower(r))
		default:
			end()
		}
	}
	end()
}

// add ends the token that starts at start in buf, dropping it if it is too
// long or already seen.
func (t *tokenizer) add(start int) {
	tok := t.buf[start:]
	if len(tok) > maxIndexedToken || t.seen(tok) {
		t.buf = t.buf[:start]
		return
	}
	t.spans = append(t.spans, [2]int{start, len(t.buf)})
}

// seen reports whether tok is already among the tokens. Bodies have a few
// dozen distinct tokens, where a linear scan beats a map.
func (t *tokenizer) seen(tok []byte) bool {
	for _, sp := range t.spans {
		if bytes.Equal(t.buf[sp[0]:sp[1]], tok) {
			return true
		}
	}
	return false
}

// appendArray appends the tokens as a one-dimensional text[] in
// PostgreSQL's binary format, preceded by its length, to b.
func (t *tokenizer) appendArray(b []byte) []byte {
	lenAt := len(b)
	b = append(b, 0, 0, 0, 0)
	if len(t.spans) == 0 {
		b = binary.BigEndian.AppendUint32(b, 0) // dimensions
		b = binary.BigEndian.AppendUint32(b, 0) // no NULLs
		b = binary.BigEndian.AppendUint32(b, textOID)
	} else {
		b = binary.BigEndian.AppendUint32(b, 1)
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint32(b, textOID)
		b = binary.BigEndian.AppendUint32(b, uint32(len(t.spans)))
		b = binary.BigEndian.AppendUint32(b, 1) // lower bound
		for _, sp := range t.spans {
			b = binary.BigEndian.AppendUint32(b, uint32(sp[1]-sp[0]))
			b = append(b, t.buf[sp[0]:sp[1]]...)
		}
	}
	binary.BigEndian.PutUint32(b[lenAt:], uint32(len(b)-lenAt-4))
	return b
}

// list returns the tokens as strings, sorted (for tests and queries).
func (t *tokenizer) list() []string {
	out := make([]string, len(t.spans))
	for i, sp := range t.spans {
		out[i] = string(t.buf[sp[0]:sp[1]])
	}
	slices.Sort(out)
	return out
}
