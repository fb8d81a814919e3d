package spanstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/internal/dict"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// Store writes and reads spans. Safe for concurrent use.
type Store struct {
	pool       *pgxpool.Pool
	dict       *dict.Dictionaries
	partitions *postgres.Partitions
	now        func() time.Time // when services were last seen
	// maxExamined bounds the spans one search examines (searchMaxRows;
	// tests lower it).
	maxExamined int
	// cover spares batches the span_tags range rows that committed ones
	// already cover.
	cover tagCoverage
}

// New returns a span store on pool. partitions, which must not be nil, is
// asked for the partition of a day that does not exist yet.
func New(pool *pgxpool.Pool, partitions *postgres.Partitions) *Store {
	return &Store{pool: pool, dict: dict.New(pool), partitions: partitions, now: time.Now, maxExamined: searchMaxRows}
}

// spanRow is one row of the spans table.
type spanRow struct {
	start    time.Time
	spanID   int64
	parentID int64
	duration int64
	resource int64
	bloom    int64
	traceID  [16]byte
	service  int32
	minute   int32
	op       int32
	status   int16
	payload  []byte
}

// encodeCopy renders rows as a binary COPY stream for spanCopySQL.
func encodeCopy(rows []spanRow) []byte {
	size := 0
	for i := range rows {
		size += 2 + 12*4 + 8*6 + 16 + 4*3 + 2 + len(rows[i].payload)
	}
	b := pgcore.NewCopyStream(size)
	for i := range rows {
		r := &rows[i]
		b = pgcore.AppendRow(b, spanCopyColumns)
		b = pgcore.AppendTimestamptz(b, r.start)
		b = pgcore.AppendInt64(b, r.spanID)
		b = pgcore.AppendInt64(b, r.parentID)
		b = pgcore.AppendInt64(b, r.duration)
		b = pgcore.AppendInt64(b, r.resource)
		b = pgcore.AppendInt64(b, r.bloom)
		b = pgcore.AppendBytes(b, r.traceID[:])
		b = pgcore.AppendInt32(b, r.service)
		b = pgcore.AppendInt32(b, r.minute)
		b = pgcore.AppendInt32(b, r.op)
		b = pgcore.AppendInt16(b, r.status)
		b = pgcore.AppendBytes(b, r.payload)
	}
	return pgcore.EndCopyStream(b)
}

// WriteTraces stores every span of batch with one binary COPY and returns
// once it is committed: a nil error means every span is durable. Spans must
// have been validated (non-zero ids, valid UTF-8, no NUL in names). On
// error nothing of the COPY was stored (dictionary rows may have been, which
// is harmless). Errors wrap storage.ErrUnavailable when the database cannot
// be reached.
//
// The batch's span_tags rows (tags.go) are copied in the same
// transaction, so that no span is ever committed without them, with one
// commit for both. Range rows that rows this store committed before
// already cover are left out (tagCoverage).
func (s *Store) WriteTraces(ctx context.Context, batch []ptrace.Traces) error {
	rows, tags, err := s.buildRows(ctx, batch)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	var copies []pgcore.Copy
	if tags = s.cover.filter(tags); len(tags) > 0 {
		copies = append(copies, pgcore.Copy{SQL: tagCopySQL, Data: encodeTagCopy(tags)})
	}
	copies = append(copies, pgcore.Copy{SQL: spanCopySQL, Data: encodeCopy(rows)})
	// Every span_tags row starts at a span's start time or at a midnight
	// of a span's day: the spans' times name every partition needed.
	err = pgcore.CopyAllIn(ctx, s.pool, s.partitions, copies, pgcore.Times(rows, func(r *spanRow) time.Time { return r.start }))
	if err != nil {
		return fmt.Errorf("write spans: %w", pgcore.Classify(err))
	}
	s.cover.add(tags)
	return nil
}

// buildRows resolves the dictionaries for batch and encodes its rows and
// its span_tags rows. Attributes are walked once: each span is encoded
// with the cached dictionaries, and only spans that met an unknown key or
// an internable new value are encoded again once those are resolved.
func (s *Store) buildRows(ctx context.Context, batch []ptrace.Traces) ([]spanRow, []tagRow, error) {
	services := map[string]struct{}{}
	n := 0
	for _, td := range batch {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			services[dict.ServiceName(rss.At(i).Resource())] = struct{}{}
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				n += sss.At(j).Spans().Len()
			}
		}
	}
	if n == 0 {
		return nil, nil, nil
	}
	svcIDs, err := s.dict.ServiceIDs(ctx, services, s.now())
	if err != nil {
		return nil, nil, err
	}

	ops := map[dict.Operation]struct{}{}
	var resources []dict.ResourceRow
	type scopeRef struct {
		service  int32
		resource int64
	}
	var refs []scopeRef // one per scope spans, in walk order
	for _, td := range batch {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			rs := rss.At(i)
			svc := svcIDs[dict.ServiceName(rs.Resource())]
			sss := rs.ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				ss := sss.At(j)
				res := dict.NewResourceRow(svc, rs.Resource(), ss.Scope())
				resources = append(resources, res)
				refs = append(refs, scopeRef{service: svc, resource: res.ID})
				spans := ss.Spans()
				for k := 0; k < spans.Len(); k++ {
					sp := spans.At(k)
					ops[dict.Operation{Service: svc, Name: sp.Name(), Kind: int16(sp.Kind())}] = struct{}{}
				}
			}
		}
	}
	opIDs, err := s.dict.OperationIDs(ctx, ops)
	if err != nil {
		return nil, nil, err
	}
	if err := s.dict.EnsureResources(ctx, resources); err != nil {
		return nil, nil, err
	}

	rows := make([]spanRow, 0, n)
	spans := make([]ptrace.Span, 0, n)
	var again []int // rows to encode again once the dictionaries know more
	miss := dict.NewMissing()
	enc := dict.NewEncoder(s.dict.Cached(), miss)
	enc.RecordTags()
	tags := newTagIndex()
	arena := dict.NewArena(n * 128)
	encode := func(sp ptrace.Span) []byte {
		return arena.Keep(encodeSpan(enc, arena.Next(), sp))
	}
	s.dict.RLock()
	ref := 0
	for _, td := range batch {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				r := refs[ref]
				ref++
				enc.SetService(r.service)
				ss := sss.At(j).Spans()
				for k := 0; k < ss.Len(); k++ {
					sp := ss.At(k)
					p := encode(sp)
					if enc.NeedKey() || enc.NeedValue() {
						again = append(again, len(rows))
					}
					start := sp.StartTimestamp()
					tags.add(r.service, enc.Tags(), int64(start), sp.TraceID())
					rows = append(rows, spanRow{
						start:    start.AsTime(),
						spanID:   dict.SpanIDToInt(sp.SpanID()),
						parentID: dict.SpanIDToInt(sp.ParentSpanID()),
						duration: int64(sp.EndTimestamp()) - int64(start),
						resource: r.resource,
						bloom:    int64(enc.Bloom()),
						traceID:  sp.TraceID(),
						service:  r.service,
						minute:   int32(int64(start) / int64(time.Minute)),
						op:       opIDs[dict.Operation{Service: r.service, Name: sp.Name(), Kind: int16(sp.Kind())}],
						status:   int16(sp.Status().Code()),
						payload:  p,
					})
					spans = append(spans, sp)
				}
			}
		}
	}
	s.dict.RUnlock()
	if len(again) == 0 {
		return rows, tags.rows(), s.dict.RecordServiceKeys(ctx, miss)
	}

	if err := s.dict.Resolve(ctx, miss); err != nil {
		return nil, nil, err
	}
	s.dict.RLock()
	for _, i := range again {
		enc.SetService(rows[i].service)
		rows[i].payload = encode(spans[i])
		if enc.NeedKey() {
			s.dict.RUnlock()
			return nil, nil, fmt.Errorf("encode span %x: attribute key still unknown after upsert", rows[i].spanID)
		}
	}
	s.dict.RUnlock()
	return rows, tags.rows(), s.dict.RecordServiceKeys(ctx, miss)
}
