package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/storage"
)

const (
	defaultLogLimit = 100
	// MaxLogLimit is the largest page FindLogs returns.
	MaxLogLimit = 1000
	// MaxLogHistogramBuckets bounds the buckets of one histogram.
	MaxLogHistogramBuckets = 2000
	// maxTraceLogs bounds the records TraceLogs returns.
	maxTraceLogs = 10_000
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

const logSelect = `SELECT time, observed_time, id, resource_id, span_id, trace_id,
	severity_number, severity_text, body, payload FROM logs`

func scanLogs(rows pgx.Rows) ([]storedLog, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedLog, error) {
		var x storedLog
		err := r.Scan(&x.time, &x.observed, &x.id, &x.resource, &x.spanID, &x.traceID,
			&x.severity, &x.sevText, &x.body, &x.payload)
		return x, err
	})
}

// FindLogs returns the records matching q, newest first (by time, then id
// descending), at most q.Limit (default 100, at most MaxLogLimit) of them,
// with a cursor when more may follow. Start and End default to the hour
// before now. Service, severity, trace id, span id, time and text are
// filtered in SQL (text through the logs_body_text index); attribute
// filters are narrowed in SQL by the attr_bloom filter and checked exactly
// in Go. An unknown service yields an empty page. The returned records are
// owned by the caller.
func (s *LogStore) FindLogs(ctx context.Context, q storage.LogQuery) (storage.LogPage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLogLimit
	}
	limit = min(limit, MaxLogLimit)
	if q.End.IsZero() {
		q.End = s.now()
	}
	if q.Start.IsZero() {
		q.Start = q.End.Add(-time.Hour)
	}
	where, args, ok, err := s.logFilter(ctx, q)
	if err != nil || !ok {
		return storage.LogPage{}, err
	}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
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
		lo = maxTime(q.Start, periodStart(top, logPartitionPeriod))
	}
	var page storage.LogPage
	after := q.After
	scanned := 0
	for {
		args = args[:baseArgs]
		sql := base
		if windowed && lo.After(q.Start) {
			sql += " AND time >= " + arg(lo)
		}
		if windowed && !hi.IsZero() {
			sql += " AND time < " + arg(hi)
		}
		if after != nil {
			sql += " AND (time, id) < (" + arg(after.Time) + ", " + arg(after.ID) + ")"
		}
		if !q.TraceID.IsEmpty() {
			// As in logFilter: fetch a trace's records through the trace
			// id index and sort them; ordering by an expression keeps the
			// (time, id) index from providing the order.
			sql += " ORDER BY time + interval '0' DESC, id DESC LIMIT " + arg(pageRows)
		} else {
			sql += " ORDER BY time DESC, id DESC LIMIT " + arg(pageRows)
		}
		rows, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			return storage.LogPage{}, fmt.Errorf("find logs: %w", classify(err))
		}
		stored, err := scanLogs(rows)
		if err != nil {
			return storage.LogPage{}, fmt.Errorf("find logs: %w", classify(err))
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
				hi, lo = lo, maxTime(q.Start, lo.Add(-logPartitionPeriod))
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
func (s *LogStore) logFilter(ctx context.Context, q storage.LogQuery) (where []string, args []any, ok bool, err error) {
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !q.TraceID.IsEmpty() {
		// A trace's records are few and the trace id index finds them:
		// hide the time bounds from the (time, id) index, which the
		// planner would otherwise AND in and scan across the whole window
		// (it cannot know how selective a trace id is).
		where = []string{"time + interval '0' >= " + arg(q.Start), "time + interval '0' <= " + arg(q.End)}
	} else {
		where = []string{"time >= " + arg(q.Start), "time <= " + arg(q.End)}
	}
	if q.Service != "" {
		var id int32
		err := s.pool.QueryRow(ctx, "SELECT id FROM services WHERE name = $1", q.Service).Scan(&id)
		if err == pgx.ErrNoRows {
			return nil, nil, false, nil
		}
		if err != nil {
			return nil, nil, false, fmt.Errorf("logs: resolve service: %w", classify(err))
		}
		where = append(where, "service_id = "+arg(id))
	}
	if q.MinSeverity > 0 {
		where = append(where, "severity_number >= "+arg(int16(min(q.MinSeverity, 32767))))
	}
	if !q.TraceID.IsEmpty() {
		where = append(where, "trace_id = "+arg([16]byte(q.TraceID)))
	}
	if !q.SpanID.IsEmpty() {
		where = append(where, "span_id = "+arg(idToInt(q.SpanID)))
	}
	// Every indexable token of every term must be in tokens (a tsvector
	// without positions, and its GIN index). That is the whole test for a one-token term; a phrase, or a
	// term with a token too long to be indexed, is checked again on the
	// candidates with PostgreSQL's phrase search over the body.
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
			tsq = append(tsq, "phraseto_tsquery('simple', vigil_log_text("+arg(t)+"))")
		}
	}
	if len(must) > 0 {
		slices.Sort(must)
		where = append(where, "tokens @@ "+arg(tsqueryAll(slices.Compact(must)))+"::tsquery")
	}
	if len(tsq) > 0 {
		where = append(where, "to_tsvector('simple', vigil_log_text(body)) @@ ("+strings.Join(tsq, " && ")+")")
	}
	var mask uint64
	for k, v := range q.Attributes {
		mask |= bloomMask(k, v)
	}
	if mask != 0 {
		where = append(where, "attr_bloom & "+arg(int64(mask))+" = "+arg(int64(mask)))
	}
	return where, args, true, nil
}

// LogHistogram counts the records matching q (cursor and limit ignored)
// in consecutive buckets of width step from q.Start to q.End, oldest
// first, empty buckets included. Start and End default as in FindLogs.
// With attribute filters the counts come from the attr_bloom test alone
// and may include a few records a search would not return
// (approximate = true).
func (s *LogStore) LogHistogram(ctx context.Context, q storage.LogQuery, step time.Duration) (buckets []storage.LogBucket, approximate bool, err error) {
	if q.End.IsZero() {
		q.End = s.now()
	}
	if q.Start.IsZero() {
		q.Start = q.End.Add(-time.Hour)
	}
	if step <= 0 || q.End.Before(q.Start) {
		return nil, false, fmt.Errorf("log histogram: bad step %s or range", step)
	}
	n := int(q.End.Sub(q.Start)/step) + 1
	if n > MaxLogHistogramBuckets {
		return nil, false, fmt.Errorf("log histogram: %d buckets, over the limit of %d", n, MaxLogHistogramBuckets)
	}
	buckets = make([]storage.LogBucket, n)
	for i := range buckets {
		buckets[i].Start = q.Start.Add(time.Duration(i) * step)
	}
	where, args, ok, err := s.logFilter(ctx, q)
	if err != nil || !ok {
		return buckets, false, err
	}
	args = append(args, q.Start, step.Microseconds())
	sql := fmt.Sprintf(`SELECT floor(extract(epoch FROM time - $%d) * 1000000 / $%d)::int AS b, count(*)
		FROM logs WHERE %s GROUP BY b`, len(args)-1, len(args), strings.Join(where, " AND "))
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("log histogram: %w", classify(err))
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
		return nil, false, fmt.Errorf("log histogram: %w", classify(err))
	}
	return buckets, len(q.Attributes) > 0, nil
}

func attributesMatch(want map[string]string, r storage.LogRecord) bool {
	for k, v := range want {
		if !storage.FieldMatches(r.Record, r.Resource, k, v) {
			return false
		}
	}
	return true
}

// TraceLogs returns the records of one trace, oldest first, at most
// 10,000 of them; an unknown trace yields none. The returned records are
// owned by the caller.
func (s *LogStore) TraceLogs(ctx context.Context, id pcommon.TraceID) ([]storage.LogRecord, error) {
	rows, err := s.pool.Query(ctx, logSelect+" WHERE trace_id = $1 ORDER BY time + interval '0', id LIMIT $2", [16]byte(id), maxTraceLogs)
	if err != nil {
		return nil, fmt.Errorf("trace logs: %w", classify(err))
	}
	stored, err := scanLogs(rows)
	if err != nil {
		return nil, fmt.Errorf("trace logs: %w", classify(err))
	}
	return s.decode(ctx, stored)
}

// decode turns rows into records, loading the dictionary entries they
// use.
func (s *LogStore) decode(ctx context.Context, stored []storedLog) ([]storage.LogRecord, error) {
	if len(stored) == 0 {
		return nil, nil
	}
	resIDs := map[int64]struct{}{}
	ids := recordingIDs{keys: map[uint32]struct{}{}, values: map[uint32]struct{}{}}
	for _, x := range stored {
		resIDs[x.resource] = struct{}{}
		_ = decodeLog(x.payload, x.body, ids, plog.NewLogRecord())
	}
	res, err := s.dict.loadResources(ctx, resIDs)
	if err != nil {
		return nil, err
	}
	svcIDs := map[int32]struct{}{}
	for _, r := range res {
		svcIDs[r.service] = struct{}{}
	}
	names, err := s.dict.loadServiceNames(ctx, svcIDs)
	if err != nil {
		return nil, err
	}
	if err := s.dict.loadKeys(ctx, ids.keys); err != nil {
		return nil, err
	}
	if err := s.dict.loadValues(ctx, ids.values); err != nil {
		return nil, err
	}
	keys := lookup{s.dict}
	out := make([]storage.LogRecord, len(stored))
	for i, x := range stored {
		info, ok := res[x.resource]
		if !ok {
			return nil, fmt.Errorf("log record %x: unknown resource id %d", x.id, x.resource)
		}
		r := storage.LogRecord{ID: x.id, Service: names[info.service],
			Resource: pcommon.NewResource(), Scope: pcommon.NewInstrumentationScope(), Record: plog.NewLogRecord()}
		info.resource.CopyTo(r.Resource)
		info.scope.CopyTo(r.Scope)
		lr := r.Record
		lr.SetTimestamp(pcommon.NewTimestampFromTime(x.time))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(x.observed))
		if x.traceID.Valid {
			lr.SetTraceID(x.traceID.Bytes)
		}
		if x.spanID != 0 {
			lr.SetSpanID(intToID(x.spanID))
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
