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
// span id, time and text are filtered in SQL (text through the tokens
// index); attribute filters are narrowed in SQL by the attr_bloom filter
// and checked exactly in Go. An unknown service yields an empty page. The
// returned records are owned by the caller.
func (s *Store) FindLogs(ctx context.Context, q storage.LogQuery) (storage.LogPage, error) {
	if q.Start.IsZero() || q.End.IsZero() || q.Limit <= 0 {
		return storage.LogPage{}, errors.New("find logs: the window (Start, End) and Limit must be set")
	}
	limit := q.Limit
	where, args, ok, err := s.logFilter(ctx, q)
	if err != nil || !ok {
		return storage.LogPage{}, err
	}
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
	var page storage.LogPage
	after := q.After
	scanned := 0
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
			if !attributesMatch(q.Attributes, r) {
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

// logFilter turns every field of q but the cursor and limit into SQL
// conditions over logs (with their arguments). Attribute filters become
// the attr_bloom test only: callers needing exactness check the records.
// ok is false when no record can match (an unknown service).
func (s *Store) logFilter(ctx context.Context, q storage.LogQuery) (where []string, args pgcore.Args, ok bool, err error) {
	if !q.TraceID.IsEmpty() {
		where = []string{args.Bind(condTraceStart, q.Start), args.Bind(condTraceEnd, q.End)}
	} else {
		where = []string{args.Bind(condStart, q.Start), args.Bind(condEnd, q.End)}
	}
	if q.Service != "" {
		var id int32
		err := s.pool.QueryRow(ctx, serviceIDSQL, q.Service).Scan(&id)
		if err == pgx.ErrNoRows {
			return nil, nil, false, nil
		}
		if err != nil {
			return nil, nil, false, fmt.Errorf("logs: resolve service: %w", pgcore.Classify(err))
		}
		where = append(where, args.Bind(condService, id))
	}
	if q.MinSeverity > 0 {
		where = append(where, args.Bind(condMinSeverity, int16(min(q.MinSeverity, 32767))))
	}
	if !q.TraceID.IsEmpty() {
		where = append(where, args.Bind(condTraceID, [16]byte(q.TraceID)))
	}
	if !q.SpanID.IsEmpty() {
		where = append(where, args.Bind(condSpanID, dict.SpanIDToInt(q.SpanID)))
	}
	// Every indexable token of every term must be in tokens (a tsvector
	// without positions, and its GIN index). That is the whole test for a
	// one-token term; a phrase, or a term with a token too long to be
	// indexed, is checked again on the candidates with PostgreSQL's phrase
	// search over the body.
	var (
		must []string
		tsq  []string
	)
	for _, t := range q.Text {
		toks := storage.Tokens(t)
		if len(toks) == 0 {
			continue
		}
		indexed := 0
		for _, tk := range toks {
			if len(tk) <= maxIndexedToken {
				must = append(must, tk)
				indexed++
			}
		}
		if len(toks) > 1 || indexed < len(toks) {
			tsq = append(tsq, args.Bind(phraseQuery, t))
		}
	}
	if len(must) > 0 {
		slices.Sort(must)
		where = append(where, args.Bind(condTokens, tsqueryAll(slices.Compact(must))))
	}
	if len(tsq) > 0 {
		where = append(where, fmt.Sprintf(condPhrases, strings.Join(tsq, " && ")))
	}
	// One Bloom test for the attributes of one name, one alternative per
	// name for those the semantic conventions renamed (storage.AttrMatches).
	var mask uint64
	var renamed []string
	for _, k := range slices.Sorted(maps.Keys(q.Attributes)) {
		v := q.Attributes[k]
		var alts []uint64
		for _, a := range semconv.Aliases(k) {
			if a.Side == semconv.AnySide {
				alts = append(alts, dict.BloomMask(a.Key, v))
			}
		}
		if len(alts) == 0 {
			mask |= dict.BloomMask(k, v)
			continue
		}
		var or []string
		for _, m := range append([]uint64{dict.BloomMask(k, v)}, alts...) {
			or = append(or, args.Bind(condBloom, int64(m), int64(m)))
		}
		renamed = append(renamed, "("+strings.Join(or, " OR ")+")")
	}
	if mask != 0 {
		where = append(where, args.Bind(condBloom, int64(mask), int64(mask)))
	}
	where = append(where, renamed...)
	return where, args, true, nil
}

// LogHistogram counts the records matching q (cursor and limit ignored)
// in consecutive buckets of width step from q.Start to q.End, oldest
// first, empty buckets included; at most MaxHistogramBuckets. q.Start and
// q.End must be set. With attribute filters the counts come from the
// attr_bloom test alone and may include a few records a search would not
// return (approximate = true).
func (s *Store) LogHistogram(ctx context.Context, q storage.LogQuery, step time.Duration) (buckets []storage.LogBucket, approximate bool, err error) {
	if q.Start.IsZero() || q.End.IsZero() {
		return nil, false, errors.New("log histogram: the window (Start, End) must be set")
	}
	if step <= 0 || q.End.Before(q.Start) {
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
	where, args, ok, err := s.logFilter(ctx, q)
	if err != nil || !ok {
		return buckets, false, err
	}
	sql := fmt.Sprintf(histogramSQL, args.Add(q.Start), args.Add(step.Microseconds()), strings.Join(where, " AND "))
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("log histogram: %w", pgcore.Classify(err))
	}
	var b int32
	var c int64
	_, err = pgx.ForEachRow(rows, []any{&b, &c}, func() error {
		if b >= 0 && int(b) < len(buckets) {
			buckets[b].Count += c
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("log histogram: %w", pgcore.Classify(err))
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
	stored, err := scanLogs(rows)
	if err != nil {
		return nil, fmt.Errorf("trace logs: %w", pgcore.Classify(err))
	}
	return s.decode(ctx, stored)
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
