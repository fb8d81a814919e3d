package logstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// blockRows returns n rows of one service in (time, id) order with every
// field set, traces shared by runs of records, some without a trace, equal
// times with different ids, and structured and empty payloads.
func blockRows(rng *rand.Rand, n int) []logRow {
	base := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	rows := make([]logRow, n)
	t := base
	var trace [16]byte
	for i := range rows {
		if rng.IntN(4) > 0 {
			t = t.Add(time.Duration(rng.IntN(5000)) * time.Microsecond)
		}
		if rng.IntN(3) == 0 {
			trace = [16]byte{}
			if rng.IntN(2) == 0 {
				trace[0], trace[15] = byte(rng.IntN(255)+1), byte(i)
			}
		}
		rows[i] = logRow{
			time: t, observed: t.Add(time.Duration(rng.IntN(2_000_000)-1_000_000) * time.Microsecond),
			id: int64(rng.Uint64()), resource: int64(rng.IntN(3)) - 1, spanID: int64(rng.Uint64() >> uint(rng.IntN(64))),
			bloom: int64(rng.Uint64()), traceID: trace, service: 7, severity: int16(rng.IntN(25)),
			sevText: []string{"INFO", "WARN", ""}[rng.IntN(3)],
			body:    fmt.Sprintf("request %016x 用户%d登录失败 took %d ms", rng.Uint64(), rng.IntN(100), rng.IntN(3000)),
			payload: []byte{byte(rng.IntN(3)), 0, byte(i)},
		}
		if i%17 == 0 {
			rows[i].body, rows[i].payload = "", nil
		}
	}
	slices.SortFunc(rows, func(a, b logRow) int { return newerFirst(&b, &a) })
	return rows
}

// TestBlockRoundTrip encodes blocks and decodes them back field for field,
// and checks the block-level columns.
func TestBlockRoundTrip(t *testing.T) {
	codec, err := newBlockCodec()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 100, maxBlockRecords} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rows := blockRows(rng, n)
			var tok tokenizer
			b, err := codec.encode(rows, &tok)
			if err != nil {
				t.Fatal(err)
			}
			got, err := codec.decodeBlock(b.start, b.service, b.times, b.data)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n {
				t.Fatalf("decoded %d records of %d", len(got), n)
			}
			var bloom int64
			traces := map[[16]byte]bool{}
			for i := range rows {
				w, g := rows[i], got[i]
				if !w.time.Equal(g.time) || !w.observed.Equal(g.observed) || w.id != g.id || w.resource != g.resource ||
					w.spanID != g.spanID || w.bloom != g.bloom || w.traceID != g.traceID || w.service != g.service ||
					w.severity != g.severity || w.sevText != g.sevText || w.body != g.body || string(w.payload) != string(g.payload) {
					t.Fatalf("record %d:\n got %+v\nwant %+v", i, g, w)
				}
				bloom |= w.bloom
				if w.traceID != ([16]byte{}) {
					traces[w.traceID] = true
				}
				tok.tokens(w.body)
				for _, sp := range tok.spans {
					if _, ok := slices.BinarySearch(b.tokens, tokenHash(tok.buf[sp.start:sp.end])); !ok {
						t.Fatalf("token %q of record %d not in the block's hashes", tok.buf[sp.start:sp.end], i)
					}
				}
			}
			if b.bloom != bloom || len(b.traceIDs) != len(traces) || b.records != int32(n) ||
				!b.start.Equal(rows[0].time) || !b.end.Equal(rows[n-1].time) {
				t.Fatalf("block columns: %+v", b)
			}
		})
	}
}

// TestBlockEncodeRejects refuses what a block cannot hold.
func TestBlockEncodeRejects(t *testing.T) {
	codec, err := newBlockCodec()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var tok tokenizer
	two := blockRows(rng, 2)
	mixed := slices.Clone(two)
	mixed[1].service = 8
	reversed := []logRow{two[1], two[0]}
	reversed[0].time = reversed[1].time.Add(time.Second)
	for name, rows := range map[string][]logRow{"empty": nil, "too many": blockRows(rng, maxBlockRecords+1),
		"two services": mixed, "out of order": reversed} {
		if _, err := codec.encode(rows, &tok); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

// TestBlockDecodeCorrupt turns every truncation and a flipped byte of a
// block's uncompressed columns into an error wrapping ErrCorrupt, never a
// panic.
func TestBlockDecodeCorrupt(t *testing.T) {
	codec, err := newBlockCodec()
	if err != nil {
		t.Fatal(err)
	}
	var tok tokenizer
	b, err := codec.encode(blockRows(rand.New(rand.NewPCG(5, 6)), 20), &tok)
	if err != nil {
		t.Fatal(err)
	}
	times, _ := codec.decompress(b.times, "times", nil)
	data, _ := codec.decompress(b.data, "data", nil)
	check := func(what string, ti, da []byte) {
		t.Helper()
		_, err := codec.decodeBlock(b.start, 1, codec.enc.EncodeAll(ti, nil), codec.enc.EncodeAll(da, nil))
		if err == nil {
			t.Fatalf("%s: decoded", what)
		}
		if !errors.Is(err, pgcore.ErrCorrupt) {
			t.Fatalf("%s: %v does not wrap ErrCorrupt", what, err)
		}
	}
	for i := range len(times) {
		check(fmt.Sprintf("times cut at %d", i), times[:i], data)
	}
	for i := range len(data) {
		check(fmt.Sprintf("data cut at %d", i), times, data[:i])
	}
	check("trailing bytes", times, append(slices.Clone(data), 0))
	bad := slices.Clone(times)
	bad[0] = 9
	check("times version", bad, data)
	if _, err := codec.decodeBlock(b.start, 1, []byte("not zstd"), b.data); !errors.Is(err, pgcore.ErrCorrupt) {
		t.Fatalf("not zstd: %v", err)
	}
}

// FuzzBlockDecode decodes arbitrary uncompressed columns (compressed
// here, so the fuzzer reaches the layout) and arbitrary frames: an error
// or records, never a panic; what decodes encodes back to columns that
// decode the same.
func FuzzBlockDecode(f *testing.F) {
	codec, err := newBlockCodec()
	if err != nil {
		f.Fatal(err)
	}
	var tok tokenizer
	for i, n := range []int{1, 3, 20} {
		b, err := codec.encode(blockRows(rand.New(rand.NewPCG(uint64(i), 9)), n), &tok)
		if err != nil {
			f.Fatal(err)
		}
		times, _ := codec.decompress(b.times, "times", nil)
		data, _ := codec.decompress(b.data, "data", nil)
		f.Add(times, data, false)
		f.Add(b.times, b.data, true)
	}
	start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, times, data []byte, compressed bool) {
		if len(times)+len(data) > 1<<16 {
			return
		}
		if !compressed {
			times, data = codec.enc.EncodeAll(times, nil), codec.enc.EncodeAll(data, nil)
		}
		rows, err := codec.decodeBlock(start, 1, times, data)
		if err != nil {
			if !errors.Is(err, pgcore.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if len(rows) == 0 {
			return
		}
		for i := 1; i < len(rows); i++ {
			if rows[i].time.Before(rows[i-1].time) {
				t.Fatalf("times out of order at %d", i)
			}
		}
		// Equal times must come in id order for a block to encode; what
		// the fuzzer made need not.
		slices.SortStableFunc(rows, func(a, b logRow) int { return newerFirst(&b, &a) })
		b, err := codec.encode(rows, &tok)
		if err != nil {
			return // e.g. too many records
		}
		again, err := codec.decodeBlock(b.start, 1, b.times, b.data)
		if err != nil || len(again) != len(rows) {
			t.Fatalf("re-encoded block: %d records, %v", len(again), err)
		}
		for i := range rows {
			if rows[i].body != again[i].body || rows[i].id != again[i].id || rows[i].traceID != again[i].traceID {
				t.Fatalf("record %d changed", i)
			}
		}
	})
}

// BenchmarkBlockSearch decodes a block of 1,000 records and tests each
// against a text search, as a search over compacted windows does for
// every candidate block: a word in no record, a word in one record (as a
// word of one record in a thousand is in most blocks), and the two
// characters of a Chinese word in one record.
func BenchmarkBlockSearch(b *testing.B) {
	codec, err := newBlockCodec()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		must []string
		body string
	}{
		{"absent", []string{"zebraquokka"}, ""},
		{"one", []string{"zebraquokka"}, "cache zebraquokka evicted"},
		{"cjk", []string{"断", "熔"}, "服务熔断已触发"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var tok tokenizer
			rows := blockRows(rand.New(rand.NewPCG(7, 7)), maxBlockRecords)
			if bc.body != "" {
				rows[500].body = bc.body
			}
			blk, err := codec.encode(rows, &tok)
			if err != nil {
				b.Fatal(err)
			}
			f := logFilter{start: blk.start, end: blk.end, must: bc.must}
			for _, m := range bc.must {
				f.mustBytes = append(f.mustBytes, []byte(m))
			}
			row := blockRow{start: blk.start, end: blk.end, service: 7, times: blk.times, data: blk.data}
			all := func(int64, int64) bool { return true }
			var sc blockScratch
			want := 0
			if bc.body != "" {
				want = 1
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(blk.times) + len(blk.data)))
			for b.Loop() {
				recs, err := (&Store{}).matchBlock(codec, &f, &row, all, &sc)
				if err != nil || len(recs) != want {
					b.Fatalf("%d records, %v", len(recs), err)
				}
			}
		})
	}
}

// TestMergeNewest merges raw rows and rows of blocks newest first, keeps a
// record read in both once (compacted between the two reads), and stops
// at n.
func TestMergeNewest(t *testing.T) {
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	raw := []storedLog{{time: at.Add(3), id: 1}, {time: at.Add(2), id: 5}, {time: at.Add(2), id: 2}}
	blocks := []logRow{{time: at.Add(4), id: 9}, {time: at.Add(2), id: 5}, {time: at.Add(2), id: 3}, {time: at.Add(1), id: 7}}
	var got []string
	for _, r := range mergeNewest(raw, blocks, 10) {
		got = append(got, fmt.Sprintf("%d/%d", r.time.Sub(at), r.id))
	}
	if want := []string{"4/9", "3/1", "2/5", "2/3", "2/2", "1/7"}; !slices.Equal(got, want) {
		t.Fatalf("merged %v, want %v", got, want)
	}
	if n := len(mergeNewest(raw, blocks, 3)); n != 3 {
		t.Fatalf("%d rows, want 3", n)
	}
}

// TestLowerToASCII checks what the block search's pre-filter (bodyHits)
// assumes of unicode.ToLower, as the tokenizer lower-cases: no rune but
// ASCII letters, dottedCapitalI and kelvinSign lower-cases to ASCII, and
// no rune lower-cases to a CJK character but itself.
func TestLowerToASCII(t *testing.T) {
	var toASCII []rune
	for r := rune(0); r <= unicode.MaxRune; r++ {
		l := unicode.ToLower(r)
		if l == r {
			continue
		}
		if l < utf8.RuneSelf && r >= utf8.RuneSelf {
			toASCII = append(toASCII, r)
		}
		if storage.IsCJK(l) {
			t.Errorf("%U lower-cases to the CJK character %U", r, l)
		}
	}
	want := []rune{[]rune(string(dottedCapitalI))[0], []rune(string(kelvinSign))[0]}
	if !slices.Equal(toASCII, want) {
		t.Fatalf("runes lower-cased to ASCII: %U, want %U", toASCII, want)
	}
}

// TestBlockSearchTokens searches a block for words that are part of
// longer words, in other cases, split by punctuation, across two bodies,
// and Chinese characters, and checks that matchBlock returns exactly the
// records whose tokens hold every word, with the pre-filter over all the
// bodies (bodyHits) and without it (a block holding a rune that
// lower-cases to ASCII).
func TestBlockSearchTokens(t *testing.T) {
	codec, err := newBlockCodec()
	if err != nil {
		t.Fatal(err)
	}
	bodies := []string{
		"zebraquokka here", "ZebraQuokka there", "zebraquokkas everywhere", "azebraquokka", "zebra-quokka",
		"zebra.quokka", "ends with zebra", "quokka starts", "熔断器打开", "熔 断", "服务熔断", "断了", "ZEBRAQUOKKA 熔断",
		"", "İnventory down", "inventory up", "INVENTORY", "zebraquo\u212a\u212aa", "straße Straße STRASSE", "x",
		"zebraquokka", "fooZEBRAQUOKKAbar", "zebraquokka熔", "a zebraquokka b zebraquokka c",
	}
	queries := [][]string{
		{"zebraquokka"}, {"zebra"}, {"quokka"}, {"zebra", "quokka"}, {"熔"}, {"断"}, {"断", "熔"},
		{"inventory"}, {"straße"}, {"x"}, {"zebraquokka", "熔"}, {"nothing"},
	}
	// with: bodies that make every block fall back (a rune lower-cased to
	// ASCII) or not.
	for _, fallback := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(11, 12))
		rows := blockRows(rng, 400)
		for i := range rows {
			b := bodies[rng.IntN(len(bodies))]
			if !fallback && (strings.Contains(b, string(dottedCapitalI)) || strings.Contains(b, string(kelvinSign))) {
				b = "plain"
			}
			rows[i].body = b
		}
		var tok tokenizer
		blk, err := codec.encode(rows, &tok)
		if err != nil {
			t.Fatal(err)
		}
		row := blockRow{start: blk.start, end: blk.end, service: 7, times: blk.times, data: blk.data}
		for _, must := range queries {
			f := logFilter{start: blk.start, end: blk.end, must: must}
			for _, m := range must {
				f.mustBytes = append(f.mustBytes, []byte(m))
			}
			var want []int64
			for i := range rows {
				tok.tokens(rows[i].body)
				have := map[string]bool{}
				for _, sp := range tok.spans {
					have[string(tok.buf[sp.start:sp.end])] = true
				}
				if !slices.ContainsFunc(must, func(m string) bool { return !have[m] }) {
					want = append(want, rows[i].id)
				}
			}
			var sc blockScratch
			recs, err := (&Store{}).matchBlock(codec, &f, &row, func(int64, int64) bool { return true }, &sc)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, r := range recs {
				got = append(got, r.id)
			}
			if !slices.Equal(got, want) {
				t.Errorf("fallback %v, %q: %d records, want %d", fallback, must, len(got), len(want))
			}
			fast := f.bodyHits(&sc, len(rows)) != nil
			cjk := !slices.ContainsFunc(must, func(m string) bool { return isASCII([]byte(m)) })
			if wantFast := (!fallback || cjk) && !slices.Contains(must, "straße"); fast != wantFast {
				t.Errorf("fallback %v, %q: pre-filter used %v", fallback, must, fast)
			}
		}
	}
}

// TestBlockCompressible decodes a block whose columns compress far more
// than eight times (the same body and time in every record), which a
// decoder sizing its output from the frame's length would refuse.
func TestBlockCompressible(t *testing.T) {
	codec, err := newBlockCodec()
	if err != nil {
		t.Fatal(err)
	}
	rows := blockRows(rand.New(rand.NewPCG(1, 1)), maxBlockRecords)
	for i := range rows {
		rows[i] = logRow{time: rows[0].time, observed: rows[0].time, id: int64(i), service: 7, severity: 9,
			body: "the same message, repeated for every record of the block"}
	}
	var tok tokenizer
	b, err := codec.encode(rows, &tok)
	if err != nil {
		t.Fatal(err)
	}
	raw := 0
	for _, frame := range [][]byte{b.times, b.data} {
		var h zstd.Header
		if err := h.Decode(frame); err != nil || !h.HasFCS {
			t.Fatalf("frame header: %v, content size %v", err, h.HasFCS)
		}
		raw += int(h.FrameContentSize)
	}
	if ratio := raw / (len(b.times) + len(b.data)); ratio <= 8 {
		t.Fatalf("compressed %d times only", ratio)
	}
	got, err := codec.decodeBlock(b.start, 7, b.times, b.data)
	if err != nil || len(got) != len(rows) || got[999].body != rows[999].body || got[999].id != 999 {
		t.Fatalf("%d records, %v", len(got), err)
	}
}

// TestASCIILower lower-cases every byte value at every place of an
// eight-byte word and in the tail, as the tokenizer lower-cases ASCII.
func TestASCIILower(t *testing.T) {
	for n := range 20 {
		for at := range n {
			src := make([]byte, n)
			for i := range src {
				src[i] = byte(0x41 + i) // some upper-case neighbours
			}
			for c := range 256 {
				src[at] = byte(c)
				got := asciiLower(nil, src)
				for i, b := range src {
					want := b
					if 'A' <= b && b <= 'Z' {
						want = b + 'a' - 'A'
					}
					if got[i] != want {
						t.Fatalf("%d bytes, %#x at %d: byte %d is %#x, want %#x", n, c, at, i, got[i], want)
					}
				}
			}
		}
	}
}

// TestPhrasesFound checks phrasesFound against PostgreSQL's phrase search:
// every character spacedApart accepts is a word of its own there, a body
// holding a phrase of such characters verbatim matches it whatever
// surrounds it, and a phrase with any other character, or a body holding
// the characters apart, is left to PostgreSQL.
func TestPhrasesFound(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	var apart []string
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if spacedApart(r) {
			apart = append(apart, string(r))
		}
	}
	var notWords []string
	err := b.store.pool.QueryRow(ctx, `SELECT coalesce(array_agg(c), '{}') FROM unnest($1::text[]) AS u(c)
		WHERE length(to_tsvector('simple', vigil_log_text(c))) <> 1`, apart).Scan(&notWords)
	if err != nil {
		t.Fatal(err)
	}
	if len(notWords) > 0 {
		t.Fatalf("%d characters are not one word each to PostgreSQL: %q", len(notWords), notWords[:min(len(notWords), 20)])
	}
	filter := func(terms ...string) logFilter {
		q := explicit(storage.LogQuery{Text: terms})
		f, _, err := b.store.parseFilter(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	around := []string{"", " ", "a", "x-", "-", "1", "1.5", "熔", "ー", "・", "é", "'", `\`, "foo.bar", "http://h/", "。", "\t", "한"}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		var p strings.Builder
		for range 2 + rng.IntN(3) {
			p.WriteString(apart[rng.IntN(len(apart))])
		}
		phrase := p.String()
		body := around[rng.IntN(len(around))] + phrase + around[rng.IntN(len(around))]
		f := filter(phrase)
		if !f.cjkPhrases || !f.phrasesFound(body) {
			t.Fatalf("phrase %q in %q: not found", phrase, body)
		}
		kept, err := b.store.recheckPhrases(ctx, &f, []logRow{{body: body}})
		if err != nil {
			t.Fatal(err)
		}
		if len(kept) != 1 {
			t.Fatalf("phrase %q in %q: PostgreSQL finds no match", phrase, body)
		}
	}
	for _, c := range []struct {
		terms []string
		body  string
	}{
		{[]string{"熔断"}, "熔 断"},  // PostgreSQL's to decide: a match
		{[]string{"熔断"}, "断熔"},   // and not one
		{[]string{"熔断a"}, "熔断a"}, // not CJK only
		{[]string{"熔 断"}, "熔 断"}, // nor this
		{[]string{"熔断", "ab cd"}, "熔断 ab cd"},
	} {
		if f := filter(c.terms...); f.phrasesFound(c.body) {
			t.Errorf("%q in %q: found without PostgreSQL", c.terms, c.body)
		}
	}
	if f := filter("熔断", "服务"); !f.phrasesFound("服务熔断") || f.phrasesFound("服 务熔断") {
		t.Error("two CJK phrases: both must be in the body")
	}
}
