package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/storage"
)

var logColumns = []string{
	"time", "observed_time", "id", "resource_id", "span_id", "attr_bloom", "trace_id",
	"service_id", "severity_number", "severity_text", "body", "payload", "tokens",
}

var logCopySQL = "COPY logs (" + strings.Join(logColumns, ", ") + ") FROM STDIN (FORMAT binary)"

// LogStore writes and reads log records. It shares the dictionaries
// (services, resources, attribute keys and values) with the span store's
// tables but keeps its own cache of them. Safe for concurrent use.
type LogStore struct {
	pool       *pgxpool.Pool
	dict       *dictionaries
	partitions *Partitions
	now        func() time.Time
}

// NewLogStore returns a log store on pool. partitions is consulted when a
// record falls into a day whose partition does not exist yet.
func NewLogStore(pool *pgxpool.Pool, partitions *Partitions) *LogStore {
	return &LogStore{pool: pool, dict: newDictionaries(pool), partitions: partitions, now: time.Now}
}

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
}

// encodeLogCopy renders rows in PostgreSQL's binary COPY format, in the
// column order of logColumns.
func encodeLogCopy(rows []logRow) []byte {
	size := len(copyHeader) + 2
	for i := range rows {
		size += 2 + 13*4 + 8*6 + 16 + 4 + 2 + len(rows[i].sevText) + 2*len(rows[i].body) + 20 + len(rows[i].payload)
	}
	b := make([]byte, 0, size)
	b = append(b, copyHeader...)
	i64 := func(v int64) {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	text := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	var tok tokenizer
	for i := range rows {
		r := &rows[i]
		b = binary.BigEndian.AppendUint16(b, uint16(len(logColumns)))
		i64(r.time.Sub(pgEpoch).Microseconds())
		i64(r.observed.Sub(pgEpoch).Microseconds())
		i64(r.id)
		i64(r.resource)
		i64(r.spanID)
		i64(r.bloom)
		if r.traceID == ([16]byte{}) {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff) // NULL
		} else {
			b = binary.BigEndian.AppendUint32(b, 16)
			b = append(b, r.traceID[:]...)
		}
		b = binary.BigEndian.AppendUint32(b, 4)
		b = binary.BigEndian.AppendUint32(b, uint32(r.service))
		b = binary.BigEndian.AppendUint32(b, 2)
		b = binary.BigEndian.AppendUint16(b, uint16(r.severity))
		text(r.sevText)
		text(r.body)
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.payload)))
		b = append(b, r.payload...)
		tok.tokens(r.body)
		b = tok.appendTSVector(b)
	}
	return binary.BigEndian.AppendUint16(b, 0xffff)
}

// WriteLogs stores every record of batch with one binary COPY and returns
// once it is committed: a nil error means every record is durable. Records
// must have been validated (ingest.ValidateLogs: valid UTF-8, no NUL in
// the body, severity text or attribute keys). On error nothing of the COPY
// was stored (dictionary rows may have been, which is harmless). Errors
// wrap storage.ErrUnavailable when the database cannot be reached.
func (s *LogStore) WriteLogs(ctx context.Context, batch []plog.Logs) error {
	rows, err := s.buildRows(ctx, batch)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	err = copyIn(ctx, s.pool, s.partitions, logCopySQL, encodeLogCopy(rows), func(yield func(time.Time) bool) {
		for i := range rows {
			if !yield(rows[i].time) {
				return
			}
		}
	})
	if err != nil {
		return fmt.Errorf("write logs: %w", classify(err))
	}
	return nil
}

// buildRows resolves the dictionaries for batch and encodes its rows, in
// the same two passes as the span writer: encode with the cached
// dictionaries, resolve what was missing, encode those records again.
func (s *LogStore) buildRows(ctx context.Context, batch []plog.Logs) ([]logRow, error) {
	services := map[string]struct{}{}
	n := 0
	for _, ld := range batch {
		rls := ld.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			services[serviceName(rls.At(i).Resource())] = struct{}{}
		}
		n += ld.LogRecordCount()
	}
	if n == 0 {
		return nil, nil
	}
	svcIDs, err := s.dict.serviceIDsFor(ctx, services, s.now())
	if err != nil {
		return nil, err
	}
	type scopeRef struct {
		service  int32
		resource int64
		bloom    uint64
	}
	var resources []newResource
	var refs []scopeRef
	for _, ld := range batch {
		rls := ld.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			rl := rls.At(i)
			svc := svcIDs[serviceName(rl.Resource())]
			resBloom := attributesBloom(rl.Resource().Attributes())
			sls := rl.ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				rb, sb := encodeResource(rl.Resource(), sls.At(j).Scope())
				h := xxhash.New()
				_, _ = h.Write(rb)
				_, _ = h.Write(sb)
				id := int64(h.Sum64())
				resources = append(resources, newResource{id: id, service: svc, resource: rb, scope: sb})
				refs = append(refs, scopeRef{service: svc, resource: id, bloom: resBloom})
			}
		}
	}
	if err := s.dict.ensureResources(ctx, resources); err != nil {
		return nil, err
	}

	rows := make([]logRow, 0, n)
	records := make([]plog.LogRecord, 0, n)
	var again []int
	miss := newMissing()
	enc := &payloadEncoder{dict: locked{s.dict}, miss: miss}
	arena := newPayloadArena(n * 64)
	encode := func(lr plog.LogRecord) []byte {
		enc.buf = arena.next()
		return arena.keep(enc.encodeLog(lr))
	}
	s.dict.mu.RLock()
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
					if enc.needKey || enc.needValue {
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
						spanID:   idToInt(lr.SpanID()),
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
	s.dict.mu.RUnlock()
	if len(again) == 0 {
		return rows, nil
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
	defer s.dict.mu.RUnlock()
	for _, i := range again {
		rows[i].payload = encode(records[i])
		if enc.needKey {
			return nil, fmt.Errorf("encode log record %x: attribute key still unknown after upsert", rows[i].id)
		}
	}
	return rows, nil
}
