package logstore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

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
	times, _ := codec.decompress(b.times, "times")
	data, _ := codec.decompress(b.data, "data")
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
		times, _ := codec.decompress(b.times, "times")
		data, _ := codec.decompress(b.data, "data")
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
// against a one-word text search, as a search over compacted windows
// does for every candidate block.
func BenchmarkBlockSearch(b *testing.B) {
	codec, err := newBlockCodec()
	if err != nil {
		b.Fatal(err)
	}
	var tok tokenizer
	blk, err := codec.encode(blockRows(rand.New(rand.NewPCG(7, 7)), maxBlockRecords), &tok)
	if err != nil {
		b.Fatal(err)
	}
	f := logFilter{start: blk.start, end: blk.end, must: []string{"zebraquokka"}, mustBytes: [][]byte{[]byte("zebraquokka")}}
	row := blockRow{start: blk.start, end: blk.end, service: 7, times: blk.times, data: blk.data}
	all := func(int64, int64) bool { return true }
	b.ReportAllocs()
	b.SetBytes(int64(len(blk.times) + len(blk.data)))
	for b.Loop() {
		if _, err := (&Store{}).matchBlock(codec, &f, &row, all, &tok); err != nil {
			b.Fatal(err)
		}
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
