package logstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// Reading compacted records. A search runs over logs and log_blocks alike
// and merges the two: the block-level columns narrow the blocks (time
// range, service, severity, trace ids, token hashes, attribute Bloom), and
// every record of a candidate block is then tested exactly as the SQL over
// logs tests a row (timeMatches, fieldsMatch and textMatches, and for
// phrases phrasesFound or else recheckPhrases, PostgreSQL's own phrase
// search), so raw and compacted windows give the same results.

// blockBatchMax bounds the blocks a newest-first scan fetches at once; it
// starts with blockBatchFirst and doubles.
const (
	blockBatchFirst = 4
	blockBatchMax   = 64
)

// blockRow is a log_blocks row as a search reads it.
type blockRow struct {
	start, end time.Time
	id         int64
	service    int32
	times      []byte
	data       []byte
}

// blockWhere renders f as the SQL conditions a block holding a match of f
// with a time in [lo, hi] must meet, binding their arguments in args.
func (f *logFilter) blockWhere(lo, hi time.Time, args *pgcore.Args) []string {
	where := []string{
		args.Bind(condBlockEnd, lo),
		args.Bind(condBlockStart, hi),
		// A block lies within one window: this prunes the partitions
		// before lo's.
		args.Bind(condBlockWindow, postgres.PeriodStart(lo, postgres.LogWindow)),
	}
	if f.service != 0 {
		where = append(where, args.Bind(condService, f.service))
	}
	if f.minSev > 0 {
		where = append(where, args.Bind(condBlockSeverity, f.minSev))
	}
	if f.traceID != ([16]byte{}) {
		where = append(where, args.Bind(condBlockTrace, f.traceID))
	}
	if len(f.must) > 0 {
		where = append(where, args.Bind(condBlockTokens, f.hashes()))
	}
	return f.bloomWhere(where, args)
}

// hashes returns the tokenHash of each token of f's text terms.
func (f *logFilter) hashes() []int32 {
	out := make([]int32, len(f.mustBytes))
	for i, tk := range f.mustBytes {
		out[i] = tokenHash(tk)
	}
	return out
}

// indexed reports whether f narrows blocks through a GIN index (trace
// ids or tokens), which the block scans then order by an expression so
// that the planner does not prefer walking the end_time index.
func (f *logFilter) indexed() bool {
	return f.traceID != ([16]byte{}) || len(f.must) > 0
}

// recordLevel reports whether f tests more of a record than its time,
// service and severity, so that a histogram must decode blocks' data.
func (f *logFilter) recordLevel() bool {
	return f.traceID != ([16]byte{}) || f.spanID != 0 || len(f.must) > 0 || len(f.phrases) > 0 ||
		f.mask != 0 || len(f.alts) > 0
}

// timeMatches tests a record's time (µs) and severity as the SQL over logs
// does, f's window included.
func (f *logFilter) timeMatches(t int64, sev int16) bool {
	return t >= f.start.UnixMicro() && t <= f.end.UnixMicro() && (f.minSev == 0 || sev >= f.minSev)
}

// fieldsMatch tests a record's trace id, span id and attr_bloom as the
// SQL over logs does.
func (f *logFilter) fieldsMatch(traceID [16]byte, spanID, bloom int64) bool {
	return (f.traceID == ([16]byte{}) || traceID == f.traceID) && (f.spanID == 0 || spanID == f.spanID) &&
		f.bloomMatches(bloom)
}

// textMatches tests that every token of the text terms is among body's
// (tok is scratch space), first looking for them in the lower-cased body
// if lowerFirst (the caller has not ruled the body in already).
func (f *logFilter) textMatches(body string, tok *tokenizer, lowerFirst bool) bool {
	if len(f.must) == 0 {
		return true
	}
	if lowerFirst {
		// Every token of a body is part of the body lower-cased rune by
		// rune: a cheap test that most bodies fail, before tokenizing.
		lower := lowerBody(tok, body)
		for _, m := range f.mustBytes {
			if !bytes.Contains(lower, m) {
				return false
			}
		}
	}
	tok.tokens(body)
	have := make([]string, len(tok.spans)) // sorted bytewise, as must is
	for i, sp := range tok.spans {
		have[i] = string(tok.buf[sp.start:sp.end])
	}
	for _, m := range f.must {
		if _, ok := slices.BinarySearch(have, m); !ok {
			return false
		}
	}
	return true
}

// Runes whose lower case (unicode.ToLower, as the tokenizer lower-cases)
// is ASCII though they are not: TestLowerToASCII checks there are no
// others.
var (
	dottedCapitalI = []byte("\u0130") // İ, lower-cased to i
	kelvinSign     = []byte("\u212a") // K, lower-cased to k
)

// bodyHits finds, for each record of the data column in s.view (n
// records), how many of f's text tokens its body holds, by a search over
// all the bodies at once: hits[i] == len(f.must) for a record that may
// match, and for no record that a token of f is missing from. That holds
// when each token is ASCII (the tokenizer lower-cases ASCII letters, and
// no other rune but dottedCapitalI and kelvinSign to ASCII: a block whose
// bodies hold one of those is not searched so) or one CJK character (a
// token of its own, without case). bodyHits returns nil when it cannot
// tell: every body is then to be tested.
func (f *logFilter) bodyHits(s *blockScratch, n int) []uint8 {
	if len(f.must) == 0 || len(f.must) > 250 {
		return nil
	}
	ascii := false
	for _, m := range f.mustBytes {
		r, size := utf8.DecodeRune(m)
		switch {
		case isASCII(m):
			ascii = true
		case size != len(m) || r < 0x1100 || !storage.IsCJK(r):
			return nil
		}
	}
	v := &s.view
	base := v.bodyAt[0]
	text := v.raw[base:v.bodyAt[n]]
	if ascii {
		if bytes.Contains(text, dottedCapitalI) || bytes.Contains(text, kelvinSign) {
			return nil
		}
		s.lower = asciiLower(s.lower, text)
		text = s.lower
	}
	hits := grow(s.hits, n)
	clear(hits)
	s.hits = hits
	for k, m := range f.mustBytes {
		r := 0 // the record of the last occurrence: occurrences come in order
		for from := 0; ; {
			j := bytes.Index(text[from:], m)
			if j < 0 {
				break
			}
			at := base + from + j
			for v.bodyAt[r+1] <= at {
				r++
			}
			if at+len(m) > v.bodyAt[r+1] { // across two bodies: in neither
				from += j + 1
				continue
			}
			if hits[r] == uint8(k) {
				hits[r]++
			}
			from = v.bodyAt[r+1] - base // the next body
		}
	}
	return hits
}

// asciiLower returns src with A–Z lower-cased and every other byte as is,
// in dst's memory when large enough: eight bytes at a time, each byte's
// high bit computing whether its low seven bits are in 'A'..'Z' (no carry
// crosses a byte: the sums stay below 0x100).
func asciiLower(dst, src []byte) []byte {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	dst = grow(dst, len(src))
	i := 0
	for ; i+8 <= len(src); i += 8 {
		w := binary.LittleEndian.Uint64(src[i:])
		low := w &^ highs
		atLeastA := low + (0x80-'A')*ones
		pastZ := low + (0x80-'Z'-1)*ones
		upper := atLeastA &^ pastZ &^ w & highs
		binary.LittleEndian.PutUint64(dst[i:], w|upper>>2)
	}
	for ; i < len(src); i++ {
		c := src[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
	return dst
}

// isASCII reports whether b is all ASCII.
func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lowerBody returns body lower-cased as the tokenizer lower-cases it
// (unicode.ToLower, rune by rune), in tok's buffer: valid until tok is
// used again.
func lowerBody(tok *tokenizer, body string) []byte {
	b := tok.lower[:0]
	for i := 0; i < len(body); {
		c := body[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b = append(b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(body[i:])
		if r >= 0x3000 && r <= 0x9fff { // CJK symbols, kana, ideographs: no case
			b = append(b, body[i:i+size]...)
		} else {
			b = utf8.AppendRune(b, unicode.ToLower(r))
		}
		i += size
	}
	tok.lower = b
	return b
}

// spacedApart reports whether r is a CJK character (storage.IsCJK) that
// vigil_log_text (migrations/0002_logs) sets apart by spaces, so that
// PostgreSQL's text search makes it a word of its own.
func spacedApart(r rune) bool {
	return (0x3040 <= r && r <= 0x30ff || 0x3400 <= r && r <= 0x4dbf || 0x4e00 <= r && r <= 0x9fff ||
		0xac00 <= r && r <= 0xd7af || 0xf900 <= r && r <= 0xfaff) && storage.IsCJK(r)
}

// phrasesFound reports whether body holds every phrase of f as
// PostgreSQL's phrase search finds it, where that is certain without
// asking it: a phrase of spacedApart characters only is in every body
// holding it verbatim, its characters being consecutive words there as
// in the phrase. false means only that recheckPhrases must decide.
func (f *logFilter) phrasesFound(body string) bool {
	if !f.cjkPhrases {
		return false
	}
	for _, p := range f.phrases {
		if !strings.Contains(body, p) {
			return false
		}
	}
	return true
}

// recheckPhrases keeps the rows whose body matches every phrase of f, by
// the same PostgreSQL phrase search the SQL over logs applies.
func (s *Store) recheckPhrases(ctx context.Context, f *logFilter, rows []logRow) ([]logRow, error) {
	return recheckPhrasesOn(ctx, s.pool, f, rows)
}

// querier runs a query: the pool, or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// recheckPhrasesOn is recheckPhrases on q.
func recheckPhrasesOn(ctx context.Context, q querier, f *logFilter, rows []logRow) ([]logRow, error) {
	if len(f.phrases) == 0 || len(rows) == 0 {
		return rows, nil
	}
	bodies := make([]string, len(rows))
	for i := range rows {
		bodies[i] = rows[i].body
	}
	var args pgcore.Args
	sql := args.Bind(phraseRecheckSQL, bodies)
	var tsq []string
	for _, t := range f.phrases {
		tsq = append(tsq, args.Bind(phraseQuery, t))
	}
	sql += " WHERE " + fmt.Sprintf(condPhrases, strings.Join(tsq, " && "))
	res, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("recheck phrases: %w", pgcore.Classify(err))
	}
	keep, err := pgx.CollectRows(res, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("recheck phrases: %w", pgcore.Classify(err))
	}
	out := rows[:0]
	for _, i := range keep { // ascending: WITH ORDINALITY over unnest
		out = append(out, rows[i-1])
	}
	return out, nil
}

// queryBlocks runs a block scan on q.
func queryBlocks(ctx context.Context, q querier, sql string, args pgcore.Args) ([]blockRow, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, pgcore.Classify(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (blockRow, error) {
		var b blockRow
		err := r.Scan(&b.start, &b.end, &b.id, &b.service, &b.times, &b.data)
		return b, err
	})
	return out, pgcore.Classify(err)
}

// matchBlock returns the records of b that match f, keep (over the time
// in µs and id) and, when keep passes any record, the tests of timeMatches,
// fieldsMatch and textMatches; phrases
// are not checked. s is scratch space. Only the matches are built: the
// data column is checked whole and indexed (dataView), the bodies are
// searched for the text tokens at once (bodyHits), and only the records
// found there are tokenized.
func (s *Store) matchBlock(codec *blockCodec, f *logFilter, b *blockRow, keep func(t, id int64) bool, sc *blockScratch) ([]logRow, error) {
	ts, sev, err := codec.decodeTimesInto(b.start, b.times, sc)
	if err != nil {
		return nil, fmt.Errorf("block %x: %w", b.id, err)
	}
	hit := false
	for i, t := range ts {
		if f.timeMatches(t, sev[i]) {
			hit = true
			break
		}
	}
	if !hit {
		return nil, nil // no record in the range: the data need not be decoded
	}
	// The times and severities are in sc.times and sc.sev: sc.raw is free.
	raw, err := codec.decompress(b.data, "data", sc.raw)
	if err != nil {
		return nil, fmt.Errorf("block %x: %w", b.id, err)
	}
	sc.raw = raw
	v := &sc.view
	if err := v.parse(raw, len(ts)); err != nil {
		return nil, fmt.Errorf("block %x: %w", b.id, err)
	}
	hits := f.bodyHits(sc, len(ts))
	var (
		out    []logRow
		bodies string // every body, when each is to be tested
	)
	if hits == nil && len(f.must) > 0 {
		bodies = string(raw[v.bodyAt[0]:v.bodyAt[len(ts)]])
	}
	for i, t := range ts {
		if !f.timeMatches(t, sev[i]) || !keep(t, v.id(i)) || !f.fieldsMatch(v.traceID(i), v.spanID(i), v.bloom(i)) {
			continue
		}
		if len(f.must) > 0 {
			var body string
			if hits != nil {
				if hits[i] != uint8(len(f.must)) {
					continue
				}
				body = string(v.body(i))
			} else {
				body = bodies[v.bodyAt[i]-v.bodyAt[0] : v.bodyAt[i+1]-v.bodyAt[0]]
			}
			if !f.textMatches(body, &sc.tok, hits == nil) {
				continue
			}
		}
		r := logRow{time: time.UnixMicro(t), severity: sev[i], service: b.service}
		v.fill(i, &r)
		// A match must not keep the block's memory alive.
		r.body = string(v.body(i))
		r.payload = slices.Clone(raw[v.payloadAt[i]:v.payloadAt[i+1]])
		out = append(out, r)
	}
	return out, nil
}

// newerFirst orders records by (time, id) descending.
func newerFirst(a, b *logRow) int {
	if c := b.time.Compare(a.time); c != 0 {
		return c
	}
	switch {
	case a.id > b.id:
		return -1
	case a.id < b.id:
		return 1
	}
	return 0
}

// blockPage returns the newest n records of blocks that match f, have a
// time in [lo, hi) (hi zero: up to f's end) and come before after (nil:
// any), newest first.
func (s *Store) blockPage(ctx context.Context, f *logFilter, lo, hi time.Time, after *storage.LogCursor, n int) ([]logRow, error) {
	codec, err := s.codec()
	if err != nil {
		return nil, err
	}
	top := f.end
	if !hi.IsZero() && hi.Before(top) {
		top = hi
	}
	if after != nil && after.Time.Before(top) {
		top = after.Time
	}
	loUS, hiUS := lo.UnixMicro(), int64(1<<63-1)
	if !hi.IsZero() {
		hiUS = hi.UnixMicro()
	}
	keep := func(t, id int64) bool {
		if t < loUS || t >= hiUS {
			return false
		}
		if after != nil {
			at := after.Time.UnixMicro()
			return t < at || t == at && id < after.ID
		}
		return true
	}
	var (
		out      []logRow
		toks     = make([]blockScratch, runtime.GOMAXPROCS(0))
		batch    = blockBatchFirst
		order    = orderBlocks
		orderKey = condBlockBefore
	)
	if f.indexed() {
		order, orderKey = orderBlocksIndexed, condBlockBeforeIndexed
	}
	// fetch reads, in the background, the next batch of at most size
	// blocks, after the block 'after' when it is not nil. While one batch
	// is decoded the next is read, its keyset known from the batch's last
	// block: PostgreSQL's time and the decoding's overlap.
	type fetched struct {
		blocks []blockRow
		err    error
	}
	fetch := func(after *blockRow, size int) chan fetched {
		ch := make(chan fetched, 1)
		var args pgcore.Args
		where := f.blockWhere(lo, top, &args)
		if after != nil {
			where = append(where, args.Bind(orderKey, after.end, after.id))
		}
		sql := blockSelect + " WHERE " + strings.Join(where, " AND ") + args.Bind(order, size)
		go func() {
			blocks, err := queryBlocks(ctx, s.pool, sql, args)
			ch <- fetched{blocks, err}
		}()
		return ch
	}
	next := fetch(nil, batch)
	// A batch read ahead and not needed is waited for: a query cancelled
	// with the request would cost its pooled connection.
	defer func() {
		if next != nil {
			<-next
		}
	}()
	for {
		got := <-next
		next = nil
		if got.err != nil {
			return nil, fmt.Errorf("find logs: blocks: %w", got.err)
		}
		blocks := got.blocks
		if len(blocks) == batch {
			batch = min(2*batch, blockBatchMax)
			next = fetch(&blocks[len(blocks)-1], batch)
		}
		var (
			candidates []logRow // of this batch, their phrases not checked yet
			done       bool
		)
		// Blocks are decoded a wave of len(toks) at a time, one goroutine
		// each: decoding, not PostgreSQL, is most of a block's cost.
		for i := 0; i < len(blocks); i += len(toks) {
			if len(out) >= n {
				// Blocks come by end_time descending: once one ends
				// before the n-th newest record so far, none holds a
				// newer one.
				slices.SortFunc(out, func(x, y logRow) int { return newerFirst(&x, &y) })
				out = out[:n]
				if blocks[i].end.Before(out[n-1].time) {
					done = true
					break
				}
			}
			wave := blocks[i:min(i+len(toks), len(blocks))]
			recs := make([][]logRow, len(wave))
			errs := make([]error, len(wave))
			var wg sync.WaitGroup
			for k := range wave {
				wg.Add(1)
				go func() {
					defer wg.Done()
					recs[k], errs[k] = s.matchBlock(codec, f, &wave[k], keep, &toks[k])
				}()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return nil, fmt.Errorf("find logs: %w", err)
			}
			for k := range wave {
				if len(f.phrases) == 0 {
					out = append(out, recs[k]...)
					continue
				}
				for _, r := range recs[k] {
					if f.phrasesFound(r.body) {
						out = append(out, r)
					} else {
						candidates = append(candidates, r)
					}
				}
			}
		}
		recs, err := s.recheckPhrases(ctx, f, candidates)
		if err != nil {
			return nil, fmt.Errorf("find logs: %w", err)
		}
		out = append(out, recs...)
		if done || next == nil {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(x, y logRow) int { return newerFirst(&x, &y) })
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// blockTraceLogs returns the records of blocks holding trace id, oldest
// first, at most limit of them.
func (s *Store) blockTraceLogs(ctx context.Context, id [16]byte, limit int) ([]logRow, error) {
	codec, err := s.codec()
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, blockTraceSQL, id)
	if err != nil {
		return nil, fmt.Errorf("trace logs: blocks: %w", pgcore.Classify(err))
	}
	blocks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (blockRow, error) {
		var b blockRow
		err := r.Scan(&b.start, &b.end, &b.id, &b.service, &b.times, &b.data)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("trace logs: blocks: %w", pgcore.Classify(err))
	}
	var (
		out []logRow
		sc  blockScratch
	)
	all := func(int64, int64) bool { return true }
	for i := range blocks {
		// Every record of the block is within its time range: only the
		// trace id is tested, and only the trace's records are built.
		f := logFilter{start: blocks[i].start, end: blocks[i].end, traceID: id}
		recs, err := s.matchBlock(codec, &f, &blocks[i], all, &sc)
		if err != nil {
			return nil, fmt.Errorf("trace logs: %w", err)
		}
		out = append(out, recs...)
	}
	slices.SortFunc(out, func(x, y logRow) int { return newerFirst(&y, &x) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// blockHistogram adds the records of blocks matching f to buckets of
// width step from f's start, reading through q.
func (s *Store) blockHistogram(ctx context.Context, q querier, f *logFilter, step time.Duration, buckets []storage.LogBucket) error {
	codec, err := s.codec()
	if err != nil {
		return err
	}
	startUS, stepUS := f.start.UnixMicro(), step.Microseconds()
	add := func(t int64) {
		if b := (t - startUS) / stepUS; b >= 0 && b < int64(len(buckets)) {
			buckets[b].Count++
		}
	}
	var args pgcore.Args
	where := f.blockWhere(f.start, f.end, &args)
	if !f.recordLevel() {
		// A block within the range, within one bucket and with no record
		// below the severity is counted whole; only the others' times are
		// read.
		sql := fmt.Sprintf(blockCountSQL, args.Add(f.start), args.Add(f.end), args.Add(f.minSev), args.Add(stepUS),
			strings.Join(where, " AND "))
		rows, err := q.Query(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("log histogram: blocks: %w", pgcore.Classify(err))
		}
		var (
			start time.Time
			n     int32
			times []byte
		)
		_, err = pgx.ForEachRow(rows, []any{&start, &n, &times}, func() error {
			if times == nil {
				if b := (start.UnixMicro() - startUS) / stepUS; b >= 0 && b < int64(len(buckets)) {
					buckets[b].Count += int64(n)
				}
				return nil
			}
			ts, sev, err := codec.decodeTimes(start, times)
			if err != nil {
				return err
			}
			for i, t := range ts {
				if f.timeMatches(t, sev[i]) {
					add(t)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("log histogram: blocks: %w", pgcore.Classify(err))
		}
		return nil
	}
	blocks, err := queryBlocks(ctx, q, blockSelect+" WHERE "+strings.Join(where, " AND "), args)
	if err != nil {
		return fmt.Errorf("log histogram: blocks: %w", err)
	}
	var (
		sc         blockScratch
		candidates []logRow
	)
	all := func(int64, int64) bool { return true }
	flush := func() error {
		recs, err := recheckPhrasesOn(ctx, q, f, candidates)
		if err != nil {
			return fmt.Errorf("log histogram: %w", err)
		}
		for j := range recs {
			add(recs[j].time.UnixMicro())
		}
		candidates = candidates[:0]
		return nil
	}
	for i := range blocks {
		recs, err := s.matchBlock(codec, f, &blocks[i], all, &sc)
		if err != nil {
			return fmt.Errorf("log histogram: %w", err)
		}
		for _, r := range recs {
			if len(f.phrases) == 0 || f.phrasesFound(r.body) {
				add(r.time.UnixMicro())
			} else {
				candidates = append(candidates, r)
			}
		}
		if len(candidates) >= 10_000 {
			if err := flush(); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return flush()
}

// stored converts rows of blocks into the form rows of logs are read in.
func stored(rows []logRow) []storedLog {
	out := make([]storedLog, len(rows))
	for i := range rows {
		r := &rows[i]
		out[i] = storedLog{time: r.time, observed: r.observed, id: r.id, resource: r.resource, spanID: r.spanID,
			severity: r.severity, sevText: r.sevText, body: r.body, payload: r.payload}
		if r.traceID != ([16]byte{}) {
			out[i].traceID = pgtype.UUID{Bytes: r.traceID, Valid: true}
		}
	}
	return out
}
