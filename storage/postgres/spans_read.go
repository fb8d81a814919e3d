package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/storage"
)

const (
	defaultSearchLimit = 20
	maxSearchLimit     = 1500
	// searchPageRows is how many candidate spans one search round trip
	// reads; searchMaxRows bounds the spans one search may examine, so a
	// rare tag over a long range cannot turn into an unbounded scan.
	searchPageRows = 2000
	searchMaxRows  = 200_000
)

// kindNames are the Jaeger API names of OTLP span kinds, by number.
var kindNames = []string{"", "internal", "server", "client", "producer", "consumer"}

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
func (s *SpanStore) Services(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT name FROM services ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list services: %w", classify(err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list services: %w", classify(err))
	}
	return names, nil
}

// Operations returns the operations of q.Service (all kinds unless
// q.SpanKind is set), sorted by name then kind. An unknown service yields an
// empty list.
func (s *SpanStore) Operations(ctx context.Context, q storage.OperationQuery) ([]storage.Operation, error) {
	sql := `SELECT o.name, o.kind FROM operations o JOIN services s ON s.id = o.service_id
		WHERE s.name = $1`
	args := []any{q.Service}
	if q.SpanKind != "" {
		k, ok := kindNumber(q.SpanKind)
		if !ok {
			return nil, nil
		}
		sql += " AND o.kind = $2"
		args = append(args, k)
	}
	rows, err := s.pool.Query(ctx, sql+" ORDER BY o.name, o.kind", args...)
	if err != nil {
		return nil, fmt.Errorf("list operations: %w", classify(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Operation, error) {
		var name string
		var kind int16
		err := r.Scan(&name, &kind)
		return storage.Operation{Name: name, SpanKind: kindName(kind)}, err
	})
	if err != nil {
		return nil, fmt.Errorf("list operations: %w", classify(err))
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

const spanSelect = `SELECT trace_id, start_time, span_id, parent_span_id, duration_ns,
	resource_id, operation_id, status_code, payload FROM spans`

func scanSpans(rows pgx.Rows) ([]storedSpan, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedSpan, error) {
		var x storedSpan
		err := r.Scan(&x.traceID, &x.start, &x.spanID, &x.parentID, &x.duration,
			&x.resource, &x.op, &x.status, &x.payload)
		return x, err
	})
}

// Trace returns every stored span of the trace id, or storage.ErrNotFound.
// The returned value is owned by the caller.
func (s *SpanStore) Trace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error) {
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
func (s *SpanStore) traces(ctx context.Context, ids [][16]byte) ([]ptrace.Traces, error) {
	rows, err := s.pool.Query(ctx, spanSelect+" WHERE trace_id = ANY($1)", ids)
	if err != nil {
		return nil, fmt.Errorf("read traces: %w", classify(err))
	}
	spans, err := scanSpans(rows)
	if err != nil {
		return nil, fmt.Errorf("read traces: %w", classify(err))
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
	ops       map[int32]opInfo
	resources map[int64]resourceInfo
	keys      lookup
}

func (s *SpanStore) newDecoder(ctx context.Context, spans []storedSpan) (*spanDecoder, error) {
	opIDs := map[int32]struct{}{}
	resIDs := map[int64]struct{}{}
	keyIDs := map[uint32]struct{}{}
	for _, sp := range spans {
		opIDs[sp.op] = struct{}{}
		resIDs[sp.resource] = struct{}{}
		payloadKeyIDs(sp.payload, keyIDs)
	}
	ops, err := s.dict.loadOperations(ctx, opIDs)
	if err != nil {
		return nil, err
	}
	res, err := s.dict.loadResources(ctx, resIDs)
	if err != nil {
		return nil, err
	}
	if err := s.dict.loadKeys(ctx, keyIDs); err != nil {
		return nil, err
	}
	return &spanDecoder{ops: ops, resources: res, keys: lookup{s.dict}}, nil
}

// payloadKeyIDs adds the attribute key ids used in a payload to ids. It
// decodes with a recording key table, so corrupt payloads simply add
// nothing more.
func payloadKeyIDs(p []byte, ids map[uint32]struct{}) {
	rec := recordingKeys(ids)
	_ = decodeSpan(p, rec, ptrace.NewSpan())
}

type recordingKeys map[uint32]struct{}

func (r recordingKeys) keyName(id uint32) (string, bool) {
	r[id] = struct{}{}
	return "", true
}

// fill sets every field of dst from sp.
func (d *spanDecoder) fill(sp storedSpan, dst ptrace.Span) error {
	dst.SetTraceID(sp.traceID)
	dst.SetSpanID(intToID(sp.spanID))
	if sp.parentID != 0 {
		dst.SetParentSpanID(intToID(sp.parentID))
	}
	start := pcommon.NewTimestampFromTime(sp.start)
	dst.SetStartTimestamp(start)
	dst.SetEndTimestamp(pcommon.Timestamp(int64(start) + sp.duration))
	op, ok := d.ops[sp.op]
	if !ok {
		return fmt.Errorf("span %x: unknown operation id %d", sp.spanID, sp.op)
	}
	dst.SetName(op.name)
	dst.SetKind(ptrace.SpanKind(op.kind))
	dst.Status().SetCode(ptrace.StatusCode(sp.status))
	if err := decodeSpan(sp.payload, d.keys, dst); err != nil {
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
			info.resource.CopyTo(rs.Resource())
			ss := rs.ScopeSpans().AppendEmpty()
			info.scope.CopyTo(ss.Scope())
			dst = ss.Spans()
			byRes[sp.resource] = dst
		}
		if err := d.fill(sp, dst.AppendEmpty()); err != nil {
			return ptrace.Traces{}, err
		}
	}
	return td, nil
}

// FindTraces returns the traces, newest first, that have a span matching
// every set field of q. Tags match span, resource or scope attributes by
// their string form, and the special keys error, span.kind and
// otel.status_code. At most searchMaxRows candidate spans are examined.
func (s *SpanStore) FindTraces(ctx context.Context, q storage.TraceQuery) ([]ptrace.Traces, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultSearchLimit
	}
	limit = min(limit, maxSearchLimit)

	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.Service != "" {
		var id int32
		err := s.pool.QueryRow(ctx, "SELECT id FROM services WHERE name = $1", q.Service).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("find traces: resolve service: %w", classify(err))
		}
		where = append(where, "service_id = "+arg(id))
		if q.Operation != "" {
			rows, err := s.pool.Query(ctx, "SELECT id FROM operations WHERE service_id = $1 AND name = $2", id, q.Operation)
			if err != nil {
				return nil, fmt.Errorf("find traces: resolve operation: %w", classify(err))
			}
			ops, err := pgx.CollectRows(rows, pgx.RowTo[int32])
			if err != nil {
				return nil, fmt.Errorf("find traces: resolve operation: %w", classify(err))
			}
			if len(ops) == 0 {
				return nil, nil
			}
			where = append(where, "operation_id = ANY("+arg(ops)+")")
		}
	} else if q.Operation != "" {
		where = append(where, "operation_id IN (SELECT id FROM operations WHERE name = "+arg(q.Operation)+")")
	}
	if !q.StartMin.IsZero() {
		where = append(where, "start_time >= "+arg(q.StartMin))
	}
	if !q.StartMax.IsZero() {
		where = append(where, "start_time <= "+arg(q.StartMax))
	}
	if q.DurationMin > 0 {
		where = append(where, "duration_ns >= "+arg(q.DurationMin.Nanoseconds()))
	}
	if q.DurationMax > 0 {
		where = append(where, "duration_ns <= "+arg(q.DurationMax.Nanoseconds()))
	}

	base := len(args)
	seen := map[[16]byte]bool{}
	var ids [][16]byte
	var cursorTime time.Time
	var cursorSpan int64
	scanned := 0
	for len(ids) < limit && scanned < searchMaxRows {
		args = args[:base]
		conds := append([]string(nil), where...)
		if scanned > 0 {
			conds = append(conds, "(start_time, span_id) < ("+arg(cursorTime)+", "+arg(cursorSpan)+")")
		}
		sql := spanSelect
		if len(conds) > 0 {
			sql += " WHERE " + strings.Join(conds, " AND ")
		}
		sql += fmt.Sprintf(" ORDER BY start_time DESC, span_id DESC LIMIT %d", searchPageRows)
		rows, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			return nil, fmt.Errorf("find traces: %w", classify(err))
		}
		page, err := scanSpans(rows)
		if err != nil {
			return nil, fmt.Errorf("find traces: %w", classify(err))
		}
		var dec *spanDecoder
		if len(q.Tags) > 0 && len(page) > 0 {
			if dec, err = s.newDecoder(ctx, page); err != nil {
				return nil, fmt.Errorf("find traces: %w", err)
			}
		}
		for _, sp := range page {
			if seen[sp.traceID] {
				continue
			}
			if dec != nil {
				ok, err := dec.matches(sp, q.Tags)
				if err != nil {
					return nil, fmt.Errorf("find traces: %w", err)
				}
				if !ok {
					continue
				}
			}
			seen[sp.traceID] = true
			ids = append(ids, sp.traceID)
			if len(ids) == limit {
				break
			}
		}
		scanned += len(page)
		if len(page) < searchPageRows {
			break
		}
		last := page[len(page)-1]
		cursorTime, cursorSpan = last.start, last.spanID
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return s.traces(ctx, ids)
}

// matches reports whether the span has every tag.
func (d *spanDecoder) matches(sp storedSpan, tags map[string]string) (bool, error) {
	span := ptrace.NewSpan()
	if err := d.fill(sp, span); err != nil {
		return false, err
	}
	res := d.resources[sp.resource]
	for k, want := range tags {
		if !tagMatches(span, res, k, want) {
			return false, nil
		}
	}
	return true, nil
}

func tagMatches(span ptrace.Span, res resourceInfo, key, want string) bool {
	switch key {
	case "error":
		if (span.Status().Code() == ptrace.StatusCodeError) == (want == "true") {
			return true
		}
	case "span.kind":
		if kindName(int16(span.Kind())) == want {
			return true
		}
	case "otel.status_code":
		if strings.EqualFold(want, statusName(span.Status().Code())) {
			return true
		}
	case "otel.status_description":
		if span.Status().Message() == want {
			return true
		}
	case "otel.scope.name", "otel.library.name":
		if res.scope.Name() == want {
			return true
		}
	case "otel.scope.version", "otel.library.version":
		if res.scope.Version() == want {
			return true
		}
	}
	for _, m := range []pcommon.Map{span.Attributes(), res.resource.Attributes(), res.scope.Attributes()} {
		if v, ok := m.Get(key); ok && v.AsString() == want {
			return true
		}
	}
	return false
}

func statusName(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeOk:
		return "OK"
	case ptrace.StatusCodeError:
		return "ERROR"
	}
	return ""
}
