package logstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/internal/dict"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
	"github.com/vigil-obs/vigil/storage/semconv"
)

const (
	// MaxHistogramBuckets bounds the buckets of one histogram.
	MaxHistogramBuckets = 2000
	// logScanMaxRows bounds the candidate rows one search examines in Go
	// (only attribute filters are checked there); past it the page ends
	// early with a cursor to go on from.
	logScanMaxRows = 100_000
	logPageRows    = 500
)

// storedLog is a logs row as read back.
type storedLog struct {
	time     time.Time
	observed time.Time
	id       int64
	resource int64
	spanID   int64
	traceID  pgtype.UUID
	severity int16
	sevText  string
	body     string
	payload  []byte
}

// scanLogs reads rows of logSelect.
func scanLogs(rows pgx.Rows) ([]storedLog, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedLog, error) {
		var x storedLog
		err := r.Scan(&x.time, &x.observed, &x.id, &x.resource, &x.spanID, &x.traceID,
			&x.severity, &x.sevText, &x.body, &x.payload)
		return x, err
	})
}

// FindLogs returns the records matching q, newest first (by time, then id
// descending), at most q.Limit of them, with a cursor when more may
// follow. q.Start, q.End and q.Limit must be set: the store applies no
// default window or limit (query/logs does). Service, severity, trace id,
// span id and time are filtered in SQL; text and attribute filters are
// narrowed in SQL (by the token hashes' index, by the attr_bloom filter)
// and checked exactly in Go. An unknown service yields an empty page. The
// returned records are owned by the caller.
func (s *Store) FindLogs(ctx context.Context, q storage.LogQuery) (storage.LogPage, error) {
	if q.Start.IsZero() || q.End.IsZero() || q.Limit <= 0 {
		return storage.LogPage{}, errors.New("find logs: the window (Start, End) and Limit must be set")
	}
	limit := q.Limit
	f, ok, err := s.parseFilter(ctx, q)
	if err != nil || !ok {
		return storage.LogPage{}, err
	}
	where, args := f.rawWhere()
	base := logSelect + " WHERE " + strings.Join(where, " AND ")
	baseArgs := len(args)

	pageRows := limit + 1
	if len(q.Attributes) > 0 {
		pageRows = max(2*limit, logPageRows)
	}
	// A text search reads the partitions' windows newest first, one at a
	// time: the text index yields its matches unordered, so a search over
	// the whole range would fetch and sort every match of every window
	// before returning the newest page.
	windowed := len(q.Text) > 0 && q.TraceID.IsEmpty()
	lo, hi := q.Start, time.Time{} // the window: [lo, hi), hi zero = up to End
	if windowed {
		top := q.End
		if q.After != nil && q.After.Time.Before(top) {
			top = q.After.Time
		}
		lo = maxTime(q.Start, postgres.PeriodStart(top, postgres.LogWindow))
	}
	var (
		page    storage.LogPage
		tok     tokenizer
		after   = q.After
		scanned = 0
	)
	for {
		args = args[:baseArgs]
		sql := base
		if windowed && lo.After(q.Start) {
			sql += " AND " + args.Bind(condStart, lo)
		}
		if windowed && !hi.IsZero() {
			sql += " AND " + args.Bind(condWindowEnd, hi)
		}
		if after != nil {
			sql += " AND " + args.Bind(condBefore, after.Time, after.ID)
		}
		if !q.TraceID.IsEmpty() {
			sql += args.Bind(orderNewestByTrace, pageRows)
		} else {
			sql += args.Bind(orderNewest, pageRows)
		}
		rows, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			return storage.LogPage{}, fmt.Errorf("find logs: %w", pgcore.Classify(err))
		}
		stored, err := scanLogs(rows)
		if err != nil {
			return storage.LogPage{}, fmt.Errorf("find logs: %w", pgcore.Classify(err))
		}
		// The same page of the compacted windows, merged in: the newest
		// pageRows of both are the newest pageRows of all.
		blocks, err := s.blockPage(ctx, &f, lo, hi, after, pageRows)
		if err != nil {
			return storage.LogPage{}, err
		}
		stored = mergeNewest(stored, blocks, pageRows)
		recs, err := s.decode(ctx, stored)
		if err != nil {
			return storage.LogPage{}, err
		}
		for i, r := range recs {
			if len(page.Records) == limit {
				// A candidate remains after a full page: more may follow.
				c := page.Records[limit-1].Cursor()
				page.Next = &c
				return page, nil
			}
			scanned++
			after = &storage.LogCursor{Time: stored[i].time, ID: stored[i].id}
			// The index matched the tokens' hashes; the body must hold
			// the tokens.
			if !f.textMatches(stored[i].body, &tok, true) || !attributesMatch(q.Attributes, r) {
				continue
			}
			page.Records = append(page.Records, r)
		}
		if len(stored) < pageRows {
			if windowed && lo.After(q.Start) {
				// This window has no more rows: the next older one.
				hi, lo = lo, maxTime(q.Start, lo.Add(-postgres.LogWindow))
				if err := ctx.Err(); err != nil {
					return storage.LogPage{}, err
				}
				continue
			}
			return page, nil // the filter has no more rows
		}
		if scanned >= logScanMaxRows {
			page.Next = after
			return page, nil
		}
		if err := ctx.Err(); err != nil {
			return storage.LogPage{}, err
		}
	}
}

// mergeNewest merges raw rows and rows of blocks, each newest first, into
// the newest n of them. The raw rows are read first: a record compacted
// between the two reads is in both (never in neither), and is kept once.
func mergeNewest(raw []storedLog, blocks []logRow, n int) []storedLog {
	if len(blocks) == 0 {
		return raw
	}
	out := make([]storedLog, 0, min(n, len(raw)+len(blocks)))
	b := stored(blocks)
	i, j := 0, 0
	for len(out) < n && (i < len(raw) || j < len(b)) {
		switch {
		case j == len(b) || i < len(raw) && (raw[i].time.After(b[j].time) || raw[i].time.Equal(b[j].time) && raw[i].id > b[j].id):
			out = append(out, raw[i])
			i++
		case i < len(raw) && raw[i].time.Equal(b[j].time) && raw[i].id == b[j].id:
			// The same record, read raw and then in the block a compaction
			// committed between the two reads.
			out = append(out, raw[i])
			i++
			j++
		default:
			out = append(out, b[j])
			j++
		}
	}
	return out
}

// logFilter is a LogQuery's filter (all but the cursor and limit),
// resolved: rawWhere renders it as SQL over logs (its text terms narrowed
// by their tokens' hashes, which textMatches completes), blockWhere as the
// SQL that narrows log_blocks to the blocks that may hold a match, and its
// tests of a record (timeMatches, fieldsMatch, textMatches) test a record
// of a block exactly as rawWhere's SQL and textMatches test a row (phrases
// aside: see recheckPhrases).
type logFilter struct {
	start, end time.Time
	service    int32 // 0 = any
	minSev     int16 // 0 = any
	traceID    [16]byte
	spanID     int64    // 0 = any
	must       []string // tokens every match holds, sorted and distinct
	mustBytes  [][]byte // must, as bytes
	phrases    []string // terms to check again as phrases
	// cjkPhrases is set when every phrase is of CJK characters only
	// (phrasesFound).
	cjkPhrases bool
	mask       uint64 // bits every match's attr_bloom has
	alts       [][]uint64
}

// parseFilter resolves q's filter. ok is false when no record can match
// (an unknown service).
func (s *Store) parseFilter(ctx context.Context, q storage.LogQuery) (f logFilter, ok bool, err error) {
	f.start, f.end = q.Start, q.End
	if q.Service != "" {
		err := s.pool.QueryRow(ctx, serviceIDSQL, q.Service).Scan(&f.service)
		if err == pgx.ErrNoRows {
			return f, false, nil
		}
		if err != nil {
			return f, false, fmt.Errorf("logs: resolve service: %w", pgcore.Classify(err))
		}
	}
	if q.MinSeverity > 0 {
		f.minSev = int16(min(q.MinSeverity, 32767))
	}
	if !q.TraceID.IsEmpty() {
		f.traceID = q.TraceID
	}
	if !q.SpanID.IsEmpty() {
		f.spanID = dict.SpanIDToInt(q.SpanID)
	}
	// Every indexable token of every term must be among a body's tokens
	// (its hash in token_hashes, through the GIN index, then the tokens
	// in Go: textMatches). That is the whole test for a one-token term; a
	// phrase, or a term with a token too long to be indexed, is checked
	// again on the candidates with PostgreSQL's phrase search over the
	// body.
	for _, t := range q.Text {
		toks := storage.Tokens(t)
		if len(toks) == 0 {
			continue
		}
		indexed := 0
		for _, tk := range toks {
			if len(tk) <= maxIndexedToken {
				f.must = append(f.must, tk)
				indexed++
			}
		}
		if len(toks) > 1 || indexed < len(toks) {
			f.phrases = append(f.phrases, t)
		}
	}
	f.cjkPhrases = len(f.phrases) > 0 && !slices.ContainsFunc(f.phrases, func(p string) bool {
		return strings.ContainsFunc(p, func(r rune) bool { return !spacedApart(r) })
	})
	slices.Sort(f.must)
	f.must = slices.Compact(f.must)
	for _, m := range f.must {
		f.mustBytes = append(f.mustBytes, []byte(m))
	}
	// One Bloom test for the attributes of one name, one alternative per
	// name for those the semantic conventions renamed (storage.AttrMatches).
	for _, k := range slices.Sorted(maps.Keys(q.Attributes)) {
		v := q.Attributes[k]
		var alts []uint64
		for _, a := range semconv.Aliases(k) {
			if a.Side == semconv.AnySide {
				alts = append(alts, dict.BloomMask(a.Key, v))
			}
		}
		if len(alts) == 0 {
			f.mask |= dict.BloomMask(k, v)
			continue
		}
		f.alts = append(f.alts, append([]uint64{dict.BloomMask(k, v)}, alts...))
	}
	return f, true, nil
}

// rawWhere renders f as SQL conditions over logs (with their arguments).
// Attribute filters become the attr_bloom test only: callers needing
// exactness check the records.
func (f *logFilter) rawWhere() (where []string, args pgcore.Args) {
	if f.traceID != ([16]byte{}) {
		where = []string{args.Bind(condTraceStart, f.start), args.Bind(condTraceEnd, f.end)}
	} else {
		where = []string{args.Bind(condStart, f.start), args.Bind(condEnd, f.end)}
	}
	if f.service != 0 {
		where = append(where, args.Bind(condService, f.service))
	}
	if f.minSev > 0 {
		where = append(where, args.Bind(condMinSeverity, f.minSev))
	}
	if f.traceID != ([16]byte{}) {
		where = append(where, args.Bind(condTraceID, f.traceID))
	}
	if f.spanID != 0 {
		where = append(where, args.Bind(condSpanID, f.spanID))
	}
	if len(f.must) > 0 {
		where = append(where, args.Bind(condTokens, f.hashes()))
	}
	if len(f.phrases) > 0 {
		var tsq []string
		for _, t := range f.phrases {
			tsq = append(tsq, args.Bind(phraseQuery, t))
		}
		where = append(where, fmt.Sprintf(condPhrases, strings.Join(tsq, " && ")))
	}
	return f.bloomWhere(where, &args), args
}

// bloomWhere appends the attr_bloom conditions of f to where, binding
// their arguments in args. logs and log_blocks name the column alike.
func (f *logFilter) bloomWhere(where []string, args *pgcore.Args) []string {
	if f.mask != 0 {
		where = append(where, args.Bind(condBloom, int64(f.mask), int64(f.mask)))
	}
	for _, alts := range f.alts {
		var or []string
		for _, m := range alts {
			or = append(or, args.Bind(condBloom, int64(m), int64(m)))
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	return where
}

// bloomMatches tests a record's attr_bloom as bloomWhere's SQL does.
func (f *logFilter) bloomMatches(bloom int64) bool {
	b := uint64(bloom)
	if b&f.mask != f.mask {
		return false
	}
	for _, alts := range f.alts {
		if !slices.ContainsFunc(alts, func(m uint64) bool { return b&m == m }) {
			return false
		}
	}
	return true
}

// LogHistogram counts the records matching q (cursor and limit ignored)
// in consecutive buckets of width step from q.Start to q.End, oldest
// first, empty buckets included; at most MaxHistogramBuckets. q.Start and
// q.End must be set, and step be at least a microsecond (it is counted in
// whole microseconds). With attribute filters the counts come from the
// attr_bloom test alone and may include a few records a search would not
// return (approximate = true).
func (s *Store) LogHistogram(ctx context.Context, q storage.LogQuery, step time.Duration) (buckets []storage.LogBucket, approximate bool, err error) {
	if q.Start.IsZero() || q.End.IsZero() {
		return nil, false, errors.New("log histogram: the window (Start, End) must be set")
	}
	if step < time.Microsecond || q.End.Before(q.Start) {
		return nil, false, fmt.Errorf("log histogram: bad step %s or range", step)
	}
	n := int(q.End.Sub(q.Start)/step) + 1
	if n > MaxHistogramBuckets {
		return nil, false, fmt.Errorf("log histogram: %d buckets, over the limit of %d", n, MaxHistogramBuckets)
	}
	buckets = make([]storage.LogBucket, n)
	for i := range buckets {
		buckets[i].Start = q.Start.Add(time.Duration(i) * step)
	}
	f, ok, err := s.parseFilter(ctx, q)
	if err != nil || !ok {
		return buckets, false, err
	}
	where, args := f.rawWhere()
	filter := strings.Join(where, " AND ")
	startUS, stepUS := q.Start.UnixMicro(), step.Microseconds()
	var (
		at   time.Time
		c    int64 = 1 // records at time at
		body string
		tok  tokenizer
	)
	add := func() error {
		if b := (at.UnixMicro() - startUS) / stepUS; b >= 0 && b < int64(len(buckets)) {
			buckets[b].Count += c
		}
		return nil
	}
	// Counted in SQL; with text terms, whose tokens' hashes the index
	// matched, each candidate's body is tested here instead.
	var sql string
	scan, each := []any{&at, &c}, add
	if len(f.must) > 0 {
		sql, scan = fmt.Sprintf(histogramTextSQL, filter), []any{&at, &body}
		each = func() error {
			if !f.textMatches(body, &tok, true) {
				return nil
			}
			return add()
		}
	} else {
		sql = fmt.Sprintf(histogramSQL, args.Add(time.Duration(stepUS)*time.Microsecond), args.Add(q.Start), filter)
	}
	// Raw rows and blocks are counted in one snapshot, so that a window
	// compacted meanwhile is counted once. A truncation is not MVCC-safe:
	// the raw partitions are locked first (compaction cannot truncate them
	// until this transaction ends), and only then is the snapshot taken.
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockLogsSQL); err != nil {
			return fmt.Errorf("log histogram: %w", pgcore.Classify(err))
		}
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("log histogram: %w", pgcore.Classify(err))
		}
		_, err = pgx.ForEachRow(rows, scan, each)
		if err != nil {
			return fmt.Errorf("log histogram: %w", pgcore.Classify(err))
		}
		return s.blockHistogram(ctx, tx, &f, step, buckets)
	})
	if err != nil {
		return nil, false, err
	}
	return buckets, len(q.Attributes) > 0, nil
}

func attributesMatch(want map[string]string, r storage.LogRecord) bool {
	for k, v := range want {
		if !storage.AttrMatches(r.Record, r.Resource, k, v) {
			return false
		}
	}
	return true
}

// TraceLogs returns the records of one trace, oldest first, at most limit
// of them (the oldest; the rest are left out); an unknown trace yields
// none. A limit below one is an error: the caller (query/logs) sets it.
// The returned records are owned by the caller.
func (s *Store) TraceLogs(ctx context.Context, id pcommon.TraceID, limit int) ([]storage.LogRecord, error) {
	if limit < 1 {
		return nil, fmt.Errorf("trace logs: limit %d is below 1", limit)
	}
	rows, err := s.pool.Query(ctx, traceLogsSQL, [16]byte(id), limit)
	if err != nil {
		return nil, fmt.Errorf("trace logs: %w", pgcore.Classify(err))
	}
	raw, err := scanLogs(rows)
	if err != nil {
		return nil, fmt.Errorf("trace logs: %w", pgcore.Classify(err))
	}
	blocks, err := s.blockTraceLogs(ctx, id, limit)
	if err != nil {
		return nil, err
	}
	// Both oldest first: merge them as the newest first in reverse.
	slices.Reverse(raw)
	slices.Reverse(blocks)
	all := mergeNewest(raw, blocks, len(raw)+len(blocks))
	slices.Reverse(all)
	if len(all) > limit {
		all = all[:limit]
	}
	return s.decode(ctx, all)
}

// decode turns rows into records, loading the dictionary entries they
// use.
func (s *Store) decode(ctx context.Context, stored []storedLog) ([]storage.LogRecord, error) {
	if len(stored) == 0 {
		return nil, nil
	}
	resIDs := map[int64]struct{}{}
	ids := dict.NewRecorder()
	for _, x := range stored {
		resIDs[x.resource] = struct{}{}
		_ = decodeLog(x.payload, x.body, ids, plog.NewLogRecord())
	}
	res, err := s.dict.Resources(ctx, resIDs)
	if err != nil {
		return nil, err
	}
	svcIDs := map[int32]struct{}{}
	for _, r := range res {
		svcIDs[r.Service] = struct{}{}
	}
	names, err := s.dict.ServiceNames(ctx, svcIDs)
	if err != nil {
		return nil, err
	}
	if err := s.dict.LoadNames(ctx, ids); err != nil {
		return nil, err
	}
	keys := s.dict.Names()
	out := make([]storage.LogRecord, len(stored))
	for i, x := range stored {
		info, ok := res[x.resource]
		if !ok {
			return nil, fmt.Errorf("log record %x: unknown resource id %d", x.id, x.resource)
		}
		r := storage.LogRecord{ID: x.id, Service: names[info.Service],
			Resource: pcommon.NewResource(), Scope: pcommon.NewInstrumentationScope(), Record: plog.NewLogRecord()}
		info.Resource.CopyTo(r.Resource)
		info.Scope.CopyTo(r.Scope)
		lr := r.Record
		lr.SetTimestamp(pcommon.NewTimestampFromTime(x.time))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(x.observed))
		if x.traceID.Valid {
			lr.SetTraceID(x.traceID.Bytes)
		}
		if x.spanID != 0 {
			lr.SetSpanID(dict.IntToSpanID(x.spanID))
		}
		lr.SetSeverityNumber(plog.SeverityNumber(x.severity))
		lr.SetSeverityText(x.sevText)
		if err := decodeLog(x.payload, x.body, keys, lr); err != nil {
			return nil, fmt.Errorf("log record %x: %w", x.id, err)
		}
		out[i] = r
	}
	return out, nil
}

// maxTime returns the later of a and b.
func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
