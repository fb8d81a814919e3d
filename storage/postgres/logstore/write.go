package logstore

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/internal/dict"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// Store writes and reads log records. It shares the dictionaries
// (services, resources, attribute keys and values) with the span store's
// tables but keeps its own cache of them. Safe for concurrent use.
type Store struct {
	pool       *pgxpool.Pool
	dict       *dict.Dictionaries
	partitions *postgres.Partitions
	now        func() time.Time // when services were last seen; compaction's clock
	codec      func() (*blockCodec, error)
	// compactHook, set by tests only, runs before each step of a window's
	// compaction; an error it returns aborts the compaction there.
	compactHook func(step string) error
	copyBlocks  int // blocks per COPY of compaction: compactCopyBlocks, fewer in tests
}

// New returns a log store on pool. partitions, which must not be nil, is
// asked for the partition of a window that does not exist yet.
func New(pool *pgxpool.Pool, partitions *postgres.Partitions) *Store {
	return &Store{pool: pool, dict: dict.New(pool), partitions: partitions, now: time.Now,
		codec: sync.OnceValues(newBlockCodec), copyBlocks: compactCopyBlocks}
}

// randID draws a row id.
func (s *Store) randID() int64 { return int64(rand.Uint64()) }

// logRow is one row of the logs table.
type logRow struct {
	time     time.Time
	observed time.Time
	id       int64
	resource int64
	spanID   int64
	bloom    int64
	traceID  [16]byte // all zeros is written as NULL
	service  int32
	severity int16
	sevText  string
	body     string
	payload  []byte
	window   int64 // start of the row's partition window, Unix seconds: set by sortRows
}

// encodeCopy renders rows as a binary COPY stream for logCopySQL,
// tokenizing each body for the token_hashes column.
func encodeCopy(rows []logRow) []byte {
	size := 0
	for i := range rows {
		size += 2 + 13*4 + 8*6 + 16 + 4 + 2 + len(rows[i].sevText) + 2*len(rows[i].body) + 20 + len(rows[i].payload)
	}
	b := pgcore.NewCopyStream(size)
	var tok tokenizer
	for i := range rows {
		r := &rows[i]
		b = pgcore.AppendRow(b, logCopyColumns)
		b = pgcore.AppendTimestamptz(b, r.time)
		b = pgcore.AppendTimestamptz(b, r.observed)
		b = pgcore.AppendInt64(b, r.id)
		b = pgcore.AppendInt64(b, r.resource)
		b = pgcore.AppendInt64(b, r.spanID)
		b = pgcore.AppendInt64(b, r.bloom)
		if r.traceID == ([16]byte{}) {
			b = pgcore.AppendNull(b)
		} else {
			b = pgcore.AppendBytes(b, r.traceID[:])
		}
		b = pgcore.AppendInt32(b, r.service)
		b = pgcore.AppendInt16(b, r.severity)
		b = pgcore.AppendText(b, r.sevText)
		b = pgcore.AppendText(b, r.body)
		b = pgcore.AppendBytes(b, r.payload)
		tok.tokens(r.body)
		b = pgcore.AppendInt32Array(b, tok.hashes())
	}
	return pgcore.EndCopyStream(b)
}

// WriteLogs stores every record of batch with one binary COPY and returns
// once it is committed: a nil error means every record is durable. Records
// must have been validated (ingest.ValidateLogs: valid UTF-8, no NUL in
// the body, severity text or attribute keys). On error nothing of the COPY
// was stored (dictionary rows may have been, which is harmless). Errors
// wrap storage.ErrUnavailable when the database cannot be reached.
func (s *Store) WriteLogs(ctx context.Context, batch []plog.Logs) error {
	rows, err := s.buildRows(ctx, batch)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	sortRows(rows)
	err = pgcore.CopyIn(ctx, s.pool, s.partitions, logCopySQL, encodeCopy(rows), pgcore.Times(rows, func(r *logRow) time.Time { return r.time }))
	if err != nil {
		return fmt.Errorf("write logs: %w", pgcore.Classify(err))
	}
	return nil
}

// sortRows orders rows by partition window, service and time, so that a
// COPY fills one partition after another and its index entries arrive in
// key order (the (time, id) and (service, time) indexes then extend a few
// pages instead of touching one page per row; PostgreSQL's COPY into the
// partitioned parent also flushes fewer, larger per-partition buffers).
// Nothing reads the rows' order: a batch commits whole or not at all.
func sortRows(rows []logRow) {
	for i := range rows {
		rows[i].window = postgres.PeriodStart(rows[i].time, postgres.LogWindow).Unix()
	}
	slices.SortFunc(rows, func(a, b logRow) int {
		if c := cmp.Compare(a.window, b.window); c != 0 {
			return c
		}
		if c := cmp.Compare(a.service, b.service); c != 0 {
			return c
		}
		return a.time.Compare(b.time)
	})
}

// buildRows resolves the dictionaries for batch and encodes its rows, in
// the same two passes as the span writer: encode with the cached
// dictionaries, resolve what was missing, encode those records again.
func (s *Store) buildRows(ctx context.Context, batch []plog.Logs) ([]logRow, error) {
	services := map[string]struct{}{}
	n := 0
	for _, ld := range batch {
		rls := ld.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			services[dict.ServiceName(rls.At(i).Resource())] = struct{}{}
		}
		n += ld.LogRecordCount()
	}
	if n == 0 {
		return nil, nil
	}
	svcIDs, err := s.dict.ServiceIDs(ctx, services, s.now())
	if err != nil {
		return nil, err
	}
	type scopeRef struct {
		service  int32
		resource int64
		bloom    uint64
	}
	var resources []dict.ResourceRow
	var refs []scopeRef
	for _, ld := range batch {
		rls := ld.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			rl := rls.At(i)
			svc := svcIDs[dict.ServiceName(rl.Resource())]
			resBloom := dict.AttributesBloom(rl.Resource().Attributes())
			sls := rl.ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				res := dict.NewResourceRow(svc, rl.Resource(), sls.At(j).Scope())
				resources = append(resources, res)
				refs = append(refs, scopeRef{service: svc, resource: res.ID, bloom: resBloom})
			}
		}
	}
	if err := s.dict.EnsureResources(ctx, resources); err != nil {
		return nil, err
	}

	rows := make([]logRow, 0, n)
	records := make([]plog.LogRecord, 0, n)
	var again []int
	miss := dict.NewMissing()
	enc := dict.NewEncoder(s.dict.Cached(), miss)
	arena := dict.NewArena(n * 64)
	encode := func(lr plog.LogRecord) []byte {
		return arena.Keep(encodeLog(enc, arena.Next(), lr))
	}
	s.dict.RLock()
	ref := 0
	for _, ld := range batch {
		rls := ld.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			sls := rls.At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				r := refs[ref]
				ref++
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					lr := lrs.At(k)
					p := encode(lr)
					if enc.NeedKey() || enc.NeedValue() {
						again = append(again, len(rows))
					}
					observed := lr.ObservedTimestamp()
					if observed == 0 {
						observed = lr.Timestamp()
					}
					rows = append(rows, logRow{
						time:     storage.RecordTime(lr),
						observed: observed.AsTime(),
						id:       int64(rand.Uint64()),
						resource: r.resource,
						spanID:   dict.SpanIDToInt(lr.SpanID()),
						bloom:    int64(logBloom(lr, r.bloom)),
						traceID:  lr.TraceID(),
						service:  r.service,
						severity: int16(lr.SeverityNumber()),
						sevText:  lr.SeverityText(),
						body:     storage.BodyText(lr.Body()),
						payload:  p,
					})
					records = append(records, lr)
				}
			}
		}
	}
	s.dict.RUnlock()
	if len(again) == 0 {
		return rows, nil
	}
	if err := s.dict.Resolve(ctx, miss); err != nil {
		return nil, err
	}
	s.dict.RLock()
	defer s.dict.RUnlock()
	for _, i := range again {
		rows[i].payload = encode(records[i])
		if enc.NeedKey() {
			return nil, fmt.Errorf("encode log record %x: attribute key still unknown after upsert", rows[i].id)
		}
	}
	return rows, nil
}
