package spanstore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/internal/dict"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// kindNames are the Jaeger API names of OTLP span kinds, by number.
var kindNames = [...]string{"", "internal", "server", "client", "producer", "consumer"}

func kindName(k int16) string {
	if k < 0 || int(k) >= len(kindNames) {
		return ""
	}
	return kindNames[k]
}

func kindNumber(name string) (int16, bool) {
	for i, n := range kindNames {
		if n == name && name != "" {
			return int16(i), true
		}
	}
	return 0, false
}

// Services returns the names of every service that reported spans, sorted.
func (s *Store) Services(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, servicesSQL)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", pgcore.Classify(err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list services: %w", pgcore.Classify(err))
	}
	return names, nil
}

// Operations returns the operations of q.Service (all kinds unless
// q.SpanKind is set), sorted by name then kind. An unknown service yields an
// empty list.
func (s *Store) Operations(ctx context.Context, q storage.OperationQuery) ([]storage.Operation, error) {
	sql, args := operationsSQL, []any{q.Service}
	if q.SpanKind != "" {
		k, ok := kindNumber(q.SpanKind)
		if !ok {
			return nil, nil
		}
		sql, args = operationsOfKindSQL, append(args, k)
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list operations: %w", pgcore.Classify(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Operation, error) {
		var name string
		var kind int16
		err := r.Scan(&name, &kind)
		return storage.Operation{Name: name, SpanKind: kindName(kind)}, err
	})
	if err != nil {
		return nil, fmt.Errorf("list operations: %w", pgcore.Classify(err))
	}
	return out, nil
}

// storedSpan is a spans row as read back.
type storedSpan struct {
	traceID  [16]byte
	start    time.Time
	spanID   int64
	parentID int64
	duration int64
	resource int64
	op       int32
	status   int16
	payload  []byte
}

// scanSpans reads rows of spanSelect.
func scanSpans(rows pgx.Rows) ([]storedSpan, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedSpan, error) {
		var x storedSpan
		err := r.Scan(&x.traceID, &x.start, &x.spanID, &x.parentID, &x.duration,
			&x.resource, &x.op, &x.status, &x.payload)
		return x, err
	})
}

// Trace returns every stored span of the trace id, or an error wrapping
// storage.ErrNotFound. The returned value is owned by the caller.
func (s *Store) Trace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error) {
	traces, err := s.traces(ctx, [][16]byte{id})
	if err != nil {
		return ptrace.Traces{}, err
	}
	if len(traces) == 0 {
		return ptrace.Traces{}, fmt.Errorf("trace %s: %w", id, storage.ErrNotFound)
	}
	return traces[0], nil
}

// traces loads whole traces, in the order of ids; ids without spans are
// left out.
func (s *Store) traces(ctx context.Context, ids [][16]byte) ([]ptrace.Traces, error) {
	rows, err := s.pool.Query(ctx, tracesSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("read traces: %w", pgcore.Classify(err))
	}
	spans, err := scanSpans(rows)
	if err != nil {
		return nil, fmt.Errorf("read traces: %w", pgcore.Classify(err))
	}
	byTrace := map[[16]byte][]storedSpan{}
	for _, sp := range spans {
		byTrace[sp.traceID] = append(byTrace[sp.traceID], sp)
	}
	dec, err := s.newDecoder(ctx, spans)
	if err != nil {
		return nil, err
	}
	var out []ptrace.Traces
	for _, id := range ids {
		group := byTrace[id]
		if len(group) == 0 {
			continue
		}
		td, err := dec.build(group)
		if err != nil {
			return nil, fmt.Errorf("trace %x: %w", id, err)
		}
		out = append(out, td)
	}
	return out, nil
}

// spanDecoder turns stored rows into pdata, with every dictionary entry
// the rows need already loaded.
type spanDecoder struct {
	ops       map[int32]dict.Operation
	resources map[int64]dict.Resource
	names     dict.Names
}

func (s *Store) newDecoder(ctx context.Context, spans []storedSpan) (*spanDecoder, error) {
	opIDs := map[int32]struct{}{}
	resIDs := map[int64]struct{}{}
	ids := dict.NewRecorder()
	for _, sp := range spans {
		opIDs[sp.op] = struct{}{}
		resIDs[sp.resource] = struct{}{}
		_ = decodeSpan(sp.payload, ids, ptrace.NewSpan())
	}
	ops, err := s.dict.Operations(ctx, opIDs)
	if err != nil {
		return nil, err
	}
	res, err := s.dict.Resources(ctx, resIDs)
	if err != nil {
		return nil, err
	}
	if err := s.dict.LoadNames(ctx, ids); err != nil {
		return nil, err
	}
	return &spanDecoder{ops: ops, resources: res, names: s.dict.Names()}, nil
}

// fill sets every field of dst from sp.
func (d *spanDecoder) fill(sp storedSpan, dst ptrace.Span) error {
	dst.SetTraceID(sp.traceID)
	dst.SetSpanID(dict.IntToSpanID(sp.spanID))
	if sp.parentID != 0 {
		dst.SetParentSpanID(dict.IntToSpanID(sp.parentID))
	}
	start := pcommon.NewTimestampFromTime(sp.start)
	dst.SetStartTimestamp(start)
	dst.SetEndTimestamp(pcommon.Timestamp(int64(start) + sp.duration))
	op, ok := d.ops[sp.op]
	if !ok {
		return fmt.Errorf("span %x: unknown operation id %d", sp.spanID, sp.op)
	}
	dst.SetName(op.Name)
	dst.SetKind(ptrace.SpanKind(op.Kind))
	dst.Status().SetCode(ptrace.StatusCode(sp.status))
	if err := decodeSpan(sp.payload, d.names, dst); err != nil {
		return fmt.Errorf("span %x: %w", sp.spanID, err)
	}
	return nil
}

// build assembles spans of one trace into pdata, one ResourceSpans per
// (resource, scope), spans ordered by start time.
func (d *spanDecoder) build(spans []storedSpan) (ptrace.Traces, error) {
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
	td := ptrace.NewTraces()
	byRes := map[int64]ptrace.SpanSlice{}
	for _, sp := range spans {
		dst, ok := byRes[sp.resource]
		if !ok {
			info, found := d.resources[sp.resource]
			if !found {
				return ptrace.Traces{}, fmt.Errorf("span %x: unknown resource id %d", sp.spanID, sp.resource)
			}
			rs := td.ResourceSpans().AppendEmpty()
			info.Resource.CopyTo(rs.Resource())
			ss := rs.ScopeSpans().AppendEmpty()
			info.Scope.CopyTo(ss.Scope())
			dst = ss.Spans()
			byRes[sp.resource] = dst
		}
		if err := d.fill(sp, dst.AppendEmpty()); err != nil {
			return ptrace.Traces{}, err
		}
	}
	return td, nil
}
