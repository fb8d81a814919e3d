package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// unknownService is the service name of spans whose resource has no
// service.name, as the OpenTelemetry SDKs name it.
const unknownService = "unknown_service"

var spanColumns = []string{
	"start_time", "span_id", "parent_span_id", "duration_ns", "resource_id", "tag_bloom",
	"trace_id", "service_id", "start_minute", "operation_id", "status_code", "payload",
}

// SpanStore writes and reads spans. Safe for concurrent use.
type SpanStore struct {
	pool       *pgxpool.Pool
	dict       *dictionaries
	partitions *Partitions
	now        func() time.Time
}

// NewSpanStore returns a span store on pool. partitions is consulted when
// a span falls into a day whose partition does not exist yet.
func NewSpanStore(pool *pgxpool.Pool, partitions *Partitions) *SpanStore {
	return &SpanStore{pool: pool, dict: newDictionaries(pool), partitions: partitions, now: time.Now}
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

// pgEpoch is PostgreSQL's timestamp epoch: binary timestamptz values are
// microseconds since 2000-01-01 UTC.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// copyHeader starts a binary COPY stream: signature, flags, no extension.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// encodeCopy renders rows in PostgreSQL's binary COPY format, in the
// column order of spanColumns. Writing the format directly, rather than
// through pgx's per-value type dispatch, is a large share of the writer's
// CPU saved.
func encodeCopy(rows []spanRow) []byte {
	size := len(copyHeader) + 2
	for i := range rows {
		size += 2 + 12*4 + 8*6 + 16 + 4*3 + 2 + len(rows[i].payload)
	}
	b := make([]byte, 0, size)
	b = append(b, copyHeader...)
	i64 := func(v int64) {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	i32 := func(v int32) {
		b = binary.BigEndian.AppendUint32(b, 4)
		b = binary.BigEndian.AppendUint32(b, uint32(v))
	}
	for i := range rows {
		r := &rows[i]
		b = binary.BigEndian.AppendUint16(b, uint16(len(spanColumns)))
		i64(r.start.Sub(pgEpoch).Microseconds())
		i64(r.spanID)
		i64(r.parentID)
		i64(r.duration)
		i64(r.resource)
		i64(r.bloom)
		b = binary.BigEndian.AppendUint32(b, 16)
		b = append(b, r.traceID[:]...)
		i32(r.service)
		i32(r.minute)
		i32(r.op)
		b = binary.BigEndian.AppendUint32(b, 2)
		b = binary.BigEndian.AppendUint16(b, uint16(r.status))
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.payload)))
		b = append(b, r.payload...)
	}
	return binary.BigEndian.AppendUint16(b, 0xffff)
}

func idToInt(b [8]byte) int64 {
	return int64(uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7]))
}

func intToID(v int64) pcommon.SpanID {
	u := uint64(v)
	return pcommon.SpanID{byte(u >> 56), byte(u >> 48), byte(u >> 40), byte(u >> 32),
		byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}
}

// serviceName returns the service.name of a resource.
func serviceName(res pcommon.Resource) string {
	if v, ok := res.Attributes().Get("service.name"); ok && v.Str() != "" {
		return v.Str()
	}
	return unknownService
}

// WriteTraces stores every span of batch with one binary COPY and returns
// once it is committed: a nil error means every span is durable. Spans must
// have been validated (non-zero ids, valid UTF-8, no NUL in names). On
// error nothing of the COPY was stored (dictionary rows may have been, which
// is harmless). Errors wrap storage.ErrUnavailable when the database cannot
// be reached.
func (s *SpanStore) WriteTraces(ctx context.Context, batch []ptrace.Traces) error {
	rows, err := s.buildRows(ctx, batch)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	err = copyIn(ctx, s.pool, s.partitions, copySQL, encodeCopy(rows), func(yield func(time.Time) bool) {
		for i := range rows {
			if !yield(rows[i].start) {
				return
			}
		}
	})
	if err != nil {
		return fmt.Errorf("write spans: %w", classify(err))
	}
	return nil
}

var copySQL = "COPY spans (" + strings.Join(spanColumns, ", ") + ") FROM STDIN (FORMAT binary)"

// buildRows resolves the dictionaries for batch and encodes its rows.
// Attributes are walked once: each span is encoded with the cached
// dictionaries, and only spans that met an unknown key or an internable
// new value are encoded again once those are resolved.
func (s *SpanStore) buildRows(ctx context.Context, batch []ptrace.Traces) ([]spanRow, error) {
	services := map[string]struct{}{}
	n := 0
	for _, td := range batch {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			services[serviceName(rss.At(i).Resource())] = struct{}{}
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				n += sss.At(j).Spans().Len()
			}
		}
	}
	if n == 0 {
		return nil, nil
	}
	svcIDs, err := s.dict.serviceIDsFor(ctx, services, s.now())
	if err != nil {
		return nil, err
	}

	ops := map[opKey]struct{}{}
	var resources []newResource
	type scopeRef struct {
		service  int32
		resource int64
	}
	var refs []scopeRef // one per scope spans, in walk order
	for _, td := range batch {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			rs := rss.At(i)
			svc := svcIDs[serviceName(rs.Resource())]
			sss := rs.ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				ss := sss.At(j)
				rb, sb := encodeResource(rs.Resource(), ss.Scope())
				h := xxhash.New()
				_, _ = h.Write(rb)
				_, _ = h.Write(sb)
				id := int64(h.Sum64())
				resources = append(resources, newResource{id: id, service: svc, resource: rb, scope: sb})
				refs = append(refs, scopeRef{service: svc, resource: id})
				spans := ss.Spans()
				for k := 0; k < spans.Len(); k++ {
					sp := spans.At(k)
					ops[opKey{service: svc, name: sp.Name(), kind: int16(sp.Kind())}] = struct{}{}
				}
			}
		}
	}
	opIDs, err := s.dict.operationIDsFor(ctx, ops)
	if err != nil {
		return nil, err
	}
	if err := s.dict.ensureResources(ctx, resources); err != nil {
		return nil, err
	}

	rows := make([]spanRow, 0, n)
	spans := make([]ptrace.Span, 0, n)
	var again []int // rows to encode again once the dictionaries know more
	miss := newMissing()
	enc := &payloadEncoder{dict: locked{s.dict}, miss: miss}
	arena := newPayloadArena(n * 128)
	encode := func(sp ptrace.Span) []byte {
		enc.buf = arena.next()
		return arena.keep(enc.encodeSpan(sp))
	}
	s.dict.mu.RLock()
	ref := 0
	for _, td := range batch {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				r := refs[ref]
				ref++
				enc.setService(r.service)
				ss := sss.At(j).Spans()
				for k := 0; k < ss.Len(); k++ {
					sp := ss.At(k)
					p := encode(sp)
					if enc.needKey || enc.needValue {
						again = append(again, len(rows))
					}
					start := sp.StartTimestamp()
					rows = append(rows, spanRow{
						start:    start.AsTime(),
						spanID:   idToInt(sp.SpanID()),
						parentID: idToInt(sp.ParentSpanID()),
						duration: int64(sp.EndTimestamp()) - int64(start),
						resource: r.resource,
						bloom:    int64(enc.bloom),
						traceID:  sp.TraceID(),
						service:  r.service,
						minute:   int32(int64(start) / int64(time.Minute)),
						op:       opIDs[opKey{service: r.service, name: sp.Name(), kind: int16(sp.Kind())}],
						status:   int16(sp.Status().Code()),
						payload:  p,
					})
					spans = append(spans, sp)
				}
			}
		}
	}
	s.dict.mu.RUnlock()
	if len(again) == 0 {
		return rows, s.dict.ensureServiceKeys(ctx, miss.serviceKeys)
	}

	kids, err := s.dict.keyIDsFor(ctx, miss.keys)
	if err != nil {
		return nil, err
	}
	for k, id := range s.dict.cachedKeyIDs(miss.values) {
		kids[k] = id
	}
	if err := s.dict.valueIDsFor(ctx, miss.values, kids); err != nil {
		return nil, err
	}
	s.dict.mu.RLock()
	for _, i := range again {
		enc.setService(rows[i].service)
		rows[i].payload = encode(spans[i])
		if enc.needKey {
			s.dict.mu.RUnlock()
			return nil, fmt.Errorf("encode span %x: attribute key still unknown after upsert", rows[i].spanID)
		}
	}
	s.dict.mu.RUnlock()
	return rows, s.dict.ensureServiceKeys(ctx, miss.serviceKeys)
}
