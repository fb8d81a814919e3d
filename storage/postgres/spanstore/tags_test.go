package spanstore

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/storage/postgres/internal/dict"
)

func TestSplitByDay(t *testing.T) {
	mid := time.Date(2026, 3, 7, 0, 0, 0, 0, time.UTC).UnixNano()
	us := int64(time.Microsecond)
	tests := []struct {
		name   string
		lo, hi int64
		want   [][2]int64
	}{
		{"within a day", mid + 10, mid + 20, [][2]int64{{mid + 10, mid + 20}}},
		{"ends at midnight", mid - 5*us, mid - us, [][2]int64{{mid - 5*us, mid - us}}},
		{"across midnight", mid - 5*us, mid + 5*us, [][2]int64{{mid - 5*us, mid - us}, {mid, mid + 5*us}}},
		{"across two", mid - us, mid + day + us, [][2]int64{{mid - us, mid - us}, {mid, mid + day - us}, {mid + day, mid + day + us}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [][2]int64
			for _, r := range splitByDay(tagRow{lo: tt.lo, hi: tt.hi, tag: 7, service: 3}, nil) {
				if r.tag != 7 || r.service != 3 {
					t.Fatalf("row %+v lost its tag or service", r)
				}
				got = append(got, [2]int64{r.lo, r.hi})
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTagCoverage(t *testing.T) {
	var c tagCoverage
	rng := func(lo, hi int64, tag int64) tagRow { return tagRow{lo: lo, hi: hi, tag: tag, service: 1} }
	post := tagRow{lo: 50, hi: 50, tag: 1, posting: true, service: 1}
	if got := c.filter([]tagRow{rng(10, 20, 1), post}); len(got) != 2 {
		t.Fatalf("nothing committed yet: %d rows kept, want 2", len(got))
	}
	c.add([]tagRow{rng(10, 20, 1), post})
	c.add([]tagRow{rng(15, 40, 1)}) // overlaps: both stored, union covered
	tests := []struct {
		name string
		row  tagRow
		keep bool
	}{
		{"inside the first", rng(11, 19, 1), false},
		{"inside the union", rng(12, 38, 1), false},
		{"past the union", rng(30, 41, 1), true},
		{"another tag", rng(12, 13, 2), true},
		{"another service", tagRow{lo: 12, hi: 13, tag: 1, service: 2}, true},
		{"a posting", post, true},
	}
	for _, tt := range tests {
		if got := len(c.filter([]tagRow{tt.row})) == 1; got != tt.keep {
			t.Errorf("%s: kept %v, want %v", tt.name, got, tt.keep)
		}
	}
	c.add([]tagRow{rng(100, 110, 1)}) // disjoint: replaces what is remembered
	if len(c.filter([]tagRow{rng(11, 19, 1)})) != 1 {
		t.Error("a range no longer remembered was left out")
	}
}

// TestTagIndexRows: a batch's rows are postings for values few spans
// carry, a range row per other value, one key row for a key with too
// many values.
func TestTagIndexRows(t *testing.T) {
	x := newTagIndex()
	var tid [16]byte
	for i := range 40 {
		tid[0] = byte(i)
		start := int64(1000 + i)
		tags := []dict.Tag{{Key: 1, Pair: 100}} // on every span
		if i < 2 {
			tags = append(tags, dict.Tag{Key: 1, Pair: 101}) // on two
		}
		tags = append(tags, dict.Tag{Key: 2, Pair: uint64(200 + i)}) // unique
		x.add(5, tags, start, tid)
	}
	var postings, ranges, keys int
	for _, r := range x.rows() {
		switch {
		case r.posting && r.tag == 101:
			postings++
		case !r.posting && r.tag == 100 && r.lo == 1000 && r.hi == 1039:
			ranges++
		case !r.posting && r.tag == 2 && r.lo == 1000 && r.hi == 1039:
			keys++
		default:
			t.Errorf("unexpected row %+v", r)
		}
	}
	if postings != 2 || ranges != 1 || keys != 1 {
		t.Errorf("%d postings, %d range rows, %d key rows; want 2, 1, 1", postings, ranges, keys)
	}
}
