package logstore

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

// tokenizer splits bodies into their distinct search tokens, exactly as
// storage.Tokens does, reusing its buffers from one body to the next.
type tokenizer struct {
	buf    []byte      // the lower-cased tokens, back to back
	spans  []tokenSpan // each token's place in buf
	lower  []byte      // a lower-cased body (lowerBody)
	hashed []int32     // the tokens' hashes (hashes)
}

// tokenSpan is one token of a tokenizer: buf[start:end], and its first
// eight bytes as a big-endian number, which orders most pairs of tokens
// without looking at buf.
type tokenSpan struct {
	start, end int32
	key        uint64
}

// tokens fills t with the indexable tokens of s, sorted bytewise and
// without duplicates.
func (t *tokenizer) tokens(s string) {
	t.buf, t.spans = t.buf[:0], t.spans[:0]
	start := -1
	end := func() {
		if start >= 0 {
			t.add(start)
			start = -1
		}
	}
	for i := 0; i < len(s); {
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		i += size
		switch {
		case r < utf8.RuneSelf:
			switch {
			case 'a' <= r && r <= 'z' || '0' <= r && r <= '9':
			case 'A' <= r && r <= 'Z':
				r += 'a' - 'A'
			default:
				end()
				continue
			}
			if start < 0 {
				start = len(t.buf)
			}
			t.buf = append(t.buf, byte(r))
		case r >= 0x1100 && storage.IsCJK(r): // no CJK script starts lower
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
	slices.SortFunc(t.spans, func(x, y tokenSpan) int {
		if x.key != y.key {
			if x.key < y.key {
				return -1
			}
			return 1
		}
		return bytes.Compare(t.buf[x.start:x.end], t.buf[y.start:y.end])
	})
	t.spans = slices.CompactFunc(t.spans, func(x, y tokenSpan) bool {
		return x.key == y.key && bytes.Equal(t.buf[x.start:x.end], t.buf[y.start:y.end])
	})
}

// add ends the token that starts at start in buf, dropping it if it is too
// long to index.
func (t *tokenizer) add(start int) {
	tok := t.buf[start:]
	if len(tok) > maxIndexedToken {
		t.buf = t.buf[:start]
		return
	}
	var k [8]byte
	copy(k[:], tok)
	t.spans = append(t.spans, tokenSpan{start: int32(start), end: int32(len(t.buf)), key: binary.BigEndian.Uint64(k[:])})
}

// hashes returns the tokenHash of each token, sorted and distinct (two
// tokens may share one), in memory the next call reuses.
func (t *tokenizer) hashes() []int32 {
	h := t.hashed[:0]
	for _, sp := range t.spans {
		h = append(h, tokenHash(t.buf[sp.start:sp.end]))
	}
	slices.Sort(h)
	h = slices.Compact(h)
	t.hashed = h
	return h
}
