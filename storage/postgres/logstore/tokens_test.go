package logstore

import (
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
		// The hashes are those of exactly these tokens, sorted, distinct.
		var want32 []int32
		for _, tk := range got {
			want32 = append(want32, tokenHash([]byte(tk)))
		}
		slices.Sort(want32)
		if h := tok.hashes(); !slices.Equal(h, slices.Compact(want32)) {
			t.Fatalf("hashes %v, want %v", h, want32)
		}
	})
}

func BenchmarkTokenizer(b *testing.B) {
	bodies := []string{
		`{"level":"info","message":"request completed","requestId":"7f3a9c2e1b4d5a68","method":"GET","path":"/api/users/48213","statusCode":200,"duration":37,"userAgent":"Mozilla/5.0 (X11; Linux x86_64)"}`,
		"GET /api/orders/918273 completed with status 502 in 1834ms upstream payment-service-7d9f8b-2 connection refused, retrying",
		"用户登录失败：密码错误，请求编号 8f2a3b4c5d6e7f80，用户 48213，已重试 3 次",
	}
	var tok tokenizer
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tok.tokens(bodies[i%len(bodies)])
		tok.hashes()
	}
}

// list returns the tokens as strings, in their order.
func (t *tokenizer) list() []string {
	out := make([]string, len(t.spans))
	for i, sp := range t.spans {
		out[i] = string(t.buf[sp.start:sp.end])
	}
	return out
}
