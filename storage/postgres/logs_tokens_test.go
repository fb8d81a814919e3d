package postgres

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-obs/vigil/storage"
)

// indexable is storage.Tokens deduplicated, without the tokens too long to
// index, sorted: what the tokens column must hold.
func indexable(s string) []string {
	var out []string
	for _, t := range storage.Tokens(s) {
		if len(t) <= maxIndexedToken {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func FuzzTokenizer(f *testing.F) {
	for _, s := range []string{
		"", "GET /api/users/42 completed with status 200 in 12ms",
		"用户登录失败: connection refused 熔断 ÄÖÜ straße İstanbul", "x_y x-y x.y X Y x",
		strings.Repeat("a", 64) + " " + strings.Repeat("b", 65), "\xff\xfe invalid \x00 utf8",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var tok tokenizer
		tok.tokens("warm up the buffers with something else entirely")
		tok.tokens(s)
		got, want := tok.list(), indexable(s)
		if len(got) == 0 && len(want) == 0 {
			return
		}
		if !slices.Equal(got, want) {
			t.Fatalf("tokens of %q: got %q, want %q", s, got, want)
		}
		// The array encoding holds exactly these tokens.
		b := tok.appendArray(nil)
		if n := binary.BigEndian.Uint32(b); int(n) != len(b)-4 {
			t.Fatalf("array length %d, have %d bytes", n, len(b)-4)
		}
		if dims := binary.BigEndian.Uint32(b[4:]); dims != 1 || int(binary.BigEndian.Uint32(b[16:])) != len(got) {
			t.Fatalf("array header %x", b[:24])
		}
	})
}
