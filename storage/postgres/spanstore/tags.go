package spanstore

import (
	"sync"
	"time"

	"github.com/vigil-obs/vigil/storage/postgres/internal/dict"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// The span_tags rows of one written batch (migration 0014): per service
// and top-level span attribute key, postings for the values few spans of
// the batch carry and a range row for each other value, or, when the key
// has too many values in the batch, one range row under the key's hash.
const (
	// tagPostingMax is the most spans of a batch and service that carry
	// a value for the value to get postings rather than a range row.
	tagPostingMax = 2
	// tagValuesMax is the most distinct values of one key per batch and
	// service that get rows of their own; past it the key gets one range
	// row under its hash, so that ids and other unique values cost one
	// row per batch, not one per span.
	tagValuesMax = 16
)

// tagPosting is one span carrying a tag.
type tagPosting struct {
	start   int64 // Unix ns
	traceID [16]byte
}

// pairAgg is what a batch holds of one value of a key of one service.
type pairAgg struct {
	pair   uint64
	n      int
	lo, hi int64 // Unix ns
	posts  [tagPostingMax]tagPosting
}

// keyAgg is what a batch holds of one key of one service: its values
// until there are more than tagValuesMax, then only its time range.
type keyAgg struct {
	service  int32
	key      uint64
	lo, hi   int64 // Unix ns, over every value
	overflow bool
	pairs    []pairAgg
}

// tagIndex collects the tags of a batch's spans: the keyAggs in an
// open-addressing table (a batch meets a few dozen keys per service, and
// this runs for every attribute of every span). Not safe for concurrent
// use.
type tagIndex struct {
	slots []int32 // 1 + index in aggs, 0 when free; a power of two long
	aggs  []keyAgg
}

func newTagIndex() *tagIndex { return &tagIndex{slots: make([]int32, 64)} }

// find returns the index in x.aggs of the keyAgg of (service, key),
// adding it when new.
func (x *tagIndex) find(service int32, key uint64, start int64) int {
	mask := len(x.slots) - 1
	for i := int((key ^ uint64(service)*0x9e3779b97f4a7c15) >> 7 & uint64(mask)); ; i = (i + 1) & mask {
		j := x.slots[i]
		if j == 0 {
			x.aggs = append(x.aggs, keyAgg{service: service, key: key, lo: start, hi: start})
			x.slots[i] = int32(len(x.aggs))
			if 2*len(x.aggs) > len(x.slots) {
				x.grow()
			}
			return len(x.aggs) - 1
		}
		if a := &x.aggs[j-1]; a.key == key && a.service == service {
			return int(j - 1)
		}
	}
}

// grow doubles the table.
func (x *tagIndex) grow() {
	x.slots = make([]int32, 2*len(x.slots))
	mask := len(x.slots) - 1
	for j := range x.aggs {
		a := &x.aggs[j]
		i := int((a.key ^ uint64(a.service)*0x9e3779b97f4a7c15) >> 7 & uint64(mask))
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = int32(j + 1)
	}
}

// add records the tags of one span.
func (x *tagIndex) add(service int32, tags []dict.Tag, start int64, traceID [16]byte) {
	for _, t := range tags {
		k := &x.aggs[x.find(service, t.Key, start)]
		k.lo, k.hi = min(k.lo, start), max(k.hi, start)
		if k.overflow {
			continue
		}
		i := 0
		for i < len(k.pairs) && k.pairs[i].pair != t.Pair {
			i++
		}
		if i == len(k.pairs) {
			if i == tagValuesMax {
				k.overflow, k.pairs = true, nil
				continue
			}
			k.pairs = append(k.pairs, pairAgg{pair: t.Pair, lo: start, hi: start})
		}
		p := &k.pairs[i]
		if p.n < tagPostingMax {
			p.posts[p.n] = tagPosting{start, traceID}
		}
		p.n++
		p.lo, p.hi = min(p.lo, start), max(p.hi, start)
	}
}

// tagRow is one row of span_tags.
type tagRow struct {
	lo, hi  int64 // Unix ns
	tag     int64
	traceID [16]byte
	posting bool
	service int32
}

// rows returns the span_tags rows of the batch.
func (x *tagIndex) rows() []tagRow {
	var out []tagRow
	for _, k := range x.aggs {
		if k.overflow {
			out = splitByDay(tagRow{lo: k.lo, hi: k.hi, tag: int64(k.key), service: k.service}, out)
			continue
		}
		for _, p := range k.pairs {
			if p.n > tagPostingMax {
				out = splitByDay(tagRow{lo: p.lo, hi: p.hi, tag: int64(p.pair), service: k.service}, out)
				continue
			}
			for _, ps := range p.posts[:p.n] {
				out = append(out, tagRow{lo: ps.start, hi: ps.start, tag: int64(p.pair), traceID: ps.traceID, posting: true, service: k.service})
			}
		}
	}
	return out
}

// encodeTagCopy renders rows as a binary COPY stream for tagCopySQL.
func encodeTagCopy(rows []tagRow) []byte {
	b := pgcore.NewCopyStream(len(rows) * 70)
	for i := range rows {
		r := &rows[i]
		b = pgcore.AppendRow(b, tagCopyColumns)
		b = pgcore.AppendTimestamptz(b, time.Unix(0, r.lo))
		b = pgcore.AppendTimestamptz(b, time.Unix(0, r.hi))
		b = pgcore.AppendInt64(b, r.tag)
		if r.posting {
			b = pgcore.AppendBytes(b, r.traceID[:])
		} else {
			b = pgcore.AppendNull(b)
		}
		b = pgcore.AppendInt32(b, r.service)
	}
	return pgcore.EndCopyStream(b)
}

const day = int64(24 * time.Hour)

// splitByDay returns r, a range row, cut at midnight UTC: span_tags is
// partitioned by day of lo and dropped with the spans of that day, so a
// row must not cover spans of a later day.
func splitByDay(r tagRow, out []tagRow) []tagRow {
	for r.lo/day != r.hi/day {
		end := (r.lo/day+1)*day - int64(time.Microsecond)
		head := r
		head.hi = end
		out = append(out, head)
		r.lo = end + int64(time.Microsecond)
	}
	return append(out, r)
}

// tagCoverage remembers, per service, tag and day, a time range that
// committed range rows of span_tags cover together: a batch whose range
// row for the tag lies inside it needs no row of its own. When spans
// arrive in random order over the last hour, the first batches' ranges
// cover nearly all of it, and later batches write almost no range rows.
// Safe for concurrent use.
type tagCoverage struct {
	mu sync.Mutex
	m  map[coverKey][2]int64 // [lo, hi], Unix ns
}

type coverKey struct {
	service int32
	tag     int64
	day     int64
}

// tagCoverageMax bounds the entries remembered; past it they are
// forgotten, which costs rows, never correctness.
const tagCoverageMax = 1 << 16

// filter returns rows without the range rows that committed ones cover.
func (c *tagCoverage) filter(rows []tagRow) []tagRow {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := rows[:0]
	for _, r := range rows {
		if !r.posting {
			if have, ok := c.m[coverKey{r.service, r.tag, r.lo / day}]; ok && have[0] <= r.lo && r.hi <= have[1] {
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// add records the range rows of rows, which are committed: a row
// overlapping the remembered range extends it (both are stored, so
// their union is covered), another replaces it.
func (c *tagCoverage) add(rows []tagRow) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) > tagCoverageMax {
		c.m = map[coverKey][2]int64{}
	}
	for _, r := range rows {
		if r.posting {
			continue
		}
		k := coverKey{r.service, r.tag, r.lo / day}
		have, ok := c.m[k]
		if ok && r.lo <= have[1] && have[0] <= r.hi {
			c.m[k] = [2]int64{min(have[0], r.lo), max(have[1], r.hi)}
			continue
		}
		c.m[k] = [2]int64{r.lo, r.hi}
	}
}
