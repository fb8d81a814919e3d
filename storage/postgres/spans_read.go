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
	searchPageRows    = 2000
	searchMaxPageRows = 64_000
	searchMaxRows     = 200_000
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
	ids := recordingIDs{keys: map[uint32]struct{}{}, values: map[uint32]struct{}{}}
	for _, sp := range spans {
		opIDs[sp.op] = struct{}{}
		resIDs[sp.resource] = struct{}{}
		// Decoding with a recording table collects the ids a payload uses;
		// a corrupt payload only adds fewer of them.
		_ = decodeSpan(sp.payload, ids, ptrace.NewSpan())
	}
	ops, err := s.dict.loadOperations(ctx, opIDs)
	if err != nil {
		return nil, err
	}
	res, err := s.dict.loadResources(ctx, resIDs)
	if err != nil {
		return nil, err
	}
	if err := s.dict.loadKeys(ctx, ids.keys); err != nil {
		return nil, err
	}
	if err := s.dict.loadValues(ctx, ids.values); err != nil {
		return nil, err
	}
	return &spanDecoder{ops: ops, resources: res, keys: lookup{s.dict}}, nil
}

// recordingIDs is a keyNames that records the ids asked for.
type recordingIDs struct{ keys, values map[uint32]struct{} }

func (r recordingIDs) keyName(id uint32) (string, bool) {
	r.keys[id] = struct{}{}
	return "", true
}

func (r recordingIDs) valueName(id uint32) (string, bool) {
	r.values[id] = struct{}{}
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
// their string form, and the special keys error, span.kind,
// otel.status_code, otel.status_description and otel.scope.name/version.
//
// The search walks the service's spans minute by minute from StartMax
// back to StartMin through the (service_id, start_minute) index, with every
// filter that SQL can apply (operation, duration, status, the attribute
// Bloom filter, matching resources) pushed down, and checks the candidates
// exactly in Go. It stops after searchMaxRows candidates.
func (s *SpanStore) FindTraces(ctx context.Context, q storage.TraceQuery) ([]ptrace.Traces, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultSearchLimit
	}
	limit = min(limit, maxSearchLimit)
	if q.StartMax.IsZero() {
		q.StartMax = s.now()
	}
	if q.StartMin.IsZero() {
		q.StartMin = q.StartMax.Add(-time.Hour)
	}

	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	svcIDs, err := s.serviceIDs(ctx, q.Service)
	if err != nil || len(svcIDs) == 0 {
		return nil, err
	}
	where := []string{"service_id = ANY(" + arg(svcIDs) + ")",
		"start_time >= " + arg(q.StartMin), "start_time <= " + arg(q.StartMax)}
	if q.Operation != "" {
		ops, err := s.operationIDs(ctx, svcIDs, q.Operation, -1)
		if err != nil || len(ops) == 0 {
			return nil, err
		}
		where = append(where, "operation_id = ANY("+arg(ops)+")")
	}
	if q.DurationMin > 0 {
		where = append(where, "duration_ns >= "+arg(q.DurationMin.Nanoseconds()))
	}
	if q.DurationMax > 0 {
		where = append(where, "duration_ns <= "+arg(q.DurationMax.Nanoseconds()))
	}
	tags, err := s.resolveTags(ctx, q.Tags)
	if err != nil {
		return nil, err
	}
	if len(tags) > 0 {
		conds, err := s.tagConditions(ctx, svcIDs, tags, arg)
		if errors.Is(err, errNoMatch) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		where = append(where, conds...)
	}
	ids, err := s.scanCandidates(ctx, where, args, tags, minuteOf(q.StartMin), minuteOf(q.StartMax), limit)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	return s.traces(ctx, ids)
}

// scanCandidates walks minute ranges from hi down to lo and returns up to
// limit distinct trace ids of spans that satisfy where (with args) and
// match every tag. Within a range it reads pages newest first with a
// LIMIT (a bounded top-N sort in PostgreSQL), growing the page eightfold
// each time a page was not enough, so that common tags cost one small page
// and rare ones few round trips.
func (s *SpanStore) scanCandidates(ctx context.Context, where []string, args []any, tags []searchTag, lo, hi int32, limit int) ([][16]byte, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("find traces: %w", classify(err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// Sorting a busy minute's candidates must not spill to disk.
	if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '64MB'"); err != nil {
		return nil, fmt.Errorf("find traces: %w", classify(err))
	}

	base := len(args)
	seen := map[[16]byte]bool{}
	var ids [][16]byte
	step := int32(1)
	scanned := 0
	for hi >= lo && len(ids) < limit && scanned < searchMaxRows {
		from := max(lo, hi-step+1)
		pageRows := searchPageRows
		var cursor *storedSpan
		got, found := 0, len(ids)
		for len(ids) < limit && scanned < searchMaxRows {
			args = append(args[:base], from, hi)
			sql := spanSelect + " WHERE " + strings.Join(where, " AND ") +
				fmt.Sprintf(" AND start_minute BETWEEN $%d AND $%d", base+1, base+2)
			if cursor != nil {
				args = append(args, cursor.start, cursor.spanID)
				sql += fmt.Sprintf(" AND (start_time, span_id) < ($%d, $%d)", base+3, base+4)
			}
			sql += fmt.Sprintf(" ORDER BY start_time DESC, span_id DESC LIMIT %d", pageRows)
			rows, err := tx.Query(ctx, sql, args...)
			if err != nil {
				return nil, fmt.Errorf("find traces: %w", classify(err))
			}
			page, err := scanSpans(rows)
			if err != nil {
				return nil, fmt.Errorf("find traces: %w", classify(err))
			}
			got += len(page)
			scanned += len(page)
			m, err := s.newMatcher(ctx, page, tags)
			if err != nil {
				return nil, fmt.Errorf("find traces: %w", err)
			}
			for _, sp := range page {
				if seen[sp.traceID] {
					continue
				}
				ok, err := m.matches(sp)
				if err != nil {
					return nil, fmt.Errorf("find traces: %w", err)
				}
				if ok {
					seen[sp.traceID] = true
					ids = append(ids, sp.traceID)
					if len(ids) == limit {
						break
					}
				}
			}
			if len(page) < pageRows {
				break
			}
			cursor = &page[len(page)-1]
			pageRows = min(pageRows*8, searchMaxPageRows)
		}
		// Widen the next range while ranges yield few candidates or no new
		// trace, so sparse services and rare tags need few round trips.
		hi = from - 1
		if got < searchPageRows/4 || len(ids) == found {
			step = min(step*2, 1<<16)
		}
	}
	return ids, nil
}

// resolveTags looks up the dictionary ids of the search tags' keys and
// (interned) values.
func (s *SpanStore) resolveTags(ctx context.Context, tags map[string]string) ([]searchTag, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	var keys, wants []string
	for k, v := range tags {
		keys, wants = append(keys, k), append(wants, v)
	}
	rows, err := s.pool.Query(ctx, `SELECT t.key, t.want, coalesce(k.id, 0), coalesce(v.id, 0)
		FROM unnest($1::text[], $2::text[]) AS t(key, want)
		LEFT JOIN attribute_keys k ON k.key = t.key
		LEFT JOIN attribute_values v ON v.key_id = k.id AND v.value = t.want`, keys, wants)
	if err != nil {
		return nil, fmt.Errorf("find traces: resolve tags: %w", classify(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (searchTag, error) {
		var t searchTag
		var kid, vid int32
		err := r.Scan(&t.key, &t.want, &kid, &vid)
		t.keyID, t.valueID = uint32(kid), uint32(vid)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("find traces: resolve tags: %w", classify(err))
	}
	return out, nil
}

// matcher checks candidate spans against the search tags exactly.
type matcher struct {
	tags      []searchTag
	ops       map[int32]opInfo
	resources map[int64]resourceInfo
	names     lookup
}

func (s *SpanStore) newMatcher(ctx context.Context, page []storedSpan, tags []searchTag) (*matcher, error) {
	m := &matcher{tags: tags, names: lookup{s.dict}}
	if len(tags) == 0 || len(page) == 0 {
		return m, nil
	}
	opIDs := map[int32]struct{}{}
	resIDs := map[int64]struct{}{}
	for _, sp := range page {
		opIDs[sp.op] = struct{}{}
		resIDs[sp.resource] = struct{}{}
	}
	var err error
	if m.ops, err = s.dict.loadOperations(ctx, opIDs); err != nil {
		return nil, err
	}
	if m.resources, err = s.dict.loadResources(ctx, resIDs); err != nil {
		return nil, err
	}
	return m, nil
}

// matches reports whether sp carries every tag: as a special key (error,
// span.kind, otel.status_code, otel.status_description), a span
// attribute, or an attribute of its resource or scope.
func (m *matcher) matches(sp storedSpan) (bool, error) {
	for _, t := range m.tags {
		ok, err := m.tagMatches(sp, t)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (m *matcher) tagMatches(sp storedSpan, t searchTag) (bool, error) {
	switch t.key {
	case "error":
		if (sp.status == int16(ptrace.StatusCodeError)) == (t.want == "true") {
			return true, nil
		}
	case "span.kind":
		if kindName(m.ops[sp.op].kind) == t.want {
			return true, nil
		}
	case "otel.status_code":
		if strings.EqualFold(t.want, statusName(ptrace.StatusCode(sp.status))) {
			return true, nil
		}
	case "otel.status_description":
		msg, err := statusMessage(sp.payload)
		if err != nil {
			return false, fmt.Errorf("span %x: %w", sp.spanID, err)
		}
		if msg == t.want {
			return true, nil
		}
	}
	if t.keyID != 0 {
		ok, err := spanAttrMatches(sp.payload, t, m.names)
		if err != nil {
			return false, fmt.Errorf("span %x: %w", sp.spanID, err)
		}
		if ok {
			return true, nil
		}
	}
	res, ok := m.resources[sp.resource]
	return ok && resourceMatches(res, t.key, t.want), nil
}

// errNoMatch tells FindTraces that a tag can match no span of the
// services, so the search need not run.
var errNoMatch = errors.New("no span can match")

// minuteOf is the start_minute of t: minutes since the Unix epoch.
func minuteOf(t time.Time) int32 {
	return int32(t.UnixNano() / int64(time.Minute))
}

// serviceIDs returns the id of the named service, or every service id when
// name is empty. An unknown name yields none.
func (s *SpanStore) serviceIDs(ctx context.Context, name string) ([]int32, error) {
	sql, args := "SELECT id FROM services", []any{}
	if name != "" {
		sql, args = sql+" WHERE name = $1", []any{name}
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("find traces: resolve service: %w", classify(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("find traces: resolve service: %w", classify(err))
	}
	return ids, nil
}

// operationIDs returns the ids of the services' operations with the given
// name (any name when empty) and kind (any kind when negative).
func (s *SpanStore) operationIDs(ctx context.Context, svcIDs []int32, name string, kind int16) ([]int32, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM operations WHERE service_id = ANY($1)
		AND ($2 = '' OR name = $2) AND ($3 < 0 OR kind = $3)`, svcIDs, name, kind)
	if err != nil {
		return nil, fmt.Errorf("find traces: resolve operations: %w", classify(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("find traces: resolve operations: %w", classify(err))
	}
	return ids, nil
}

// tagConditions turns each tag into an SQL condition that every matching
// span satisfies (it may also admit some that do not match; the exact check
// happens in Go): the attribute Bloom filter, or a resource whose
// attributes match, or the column behind a special key.
func (s *SpanStore) tagConditions(ctx context.Context, svcIDs []int32, tags []searchTag, arg func(any) string) ([]string, error) {
	// Keys the services' spans never carried cannot match as span
	// attributes: their Bloom branch is left out.
	var kids []int32
	for _, t := range tags {
		if t.keyID != 0 {
			kids = append(kids, int32(t.keyID))
		}
	}
	present := map[uint32]bool{}
	if len(kids) > 0 {
		rows, err := s.pool.Query(ctx, `SELECT DISTINCT key_id FROM service_attribute_keys
			WHERE service_id = ANY($1) AND key_id = ANY($2)`, svcIDs, kids)
		if err != nil {
			return nil, fmt.Errorf("find traces: service keys: %w", classify(err))
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return nil, fmt.Errorf("find traces: service keys: %w", classify(err))
		}
		for _, id := range ids {
			present[uint32(id)] = true
		}
	}
	rows, err := s.pool.Query(ctx, "SELECT id, resource, scope FROM resources WHERE service_id = ANY($1)", svcIDs)
	if err != nil {
		return nil, fmt.Errorf("find traces: load resources: %w", classify(err))
	}
	type res struct {
		id    int64
		info  resourceInfo
		valid bool
	}
	resources, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (res, error) {
		var x res
		var rb, sb []byte
		if err := r.Scan(&x.id, &rb, &sb); err != nil {
			return x, err
		}
		x.info = resourceInfo{resource: pcommon.NewResource(), scope: pcommon.NewInstrumentationScope()}
		x.valid = decodeResource(rb, sb, x.info.resource, x.info.scope) == nil
		return x, nil
	})
	if err != nil {
		return nil, fmt.Errorf("find traces: load resources: %w", classify(err))
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].key < tags[j].key }) // deterministic SQL
	var conds []string
	for _, t := range tags {
		k, v := t.key, t.want
		if k == "otel.status_description" {
			continue // only in the payload: checked in Go
		}
		var parts []string
		if present[t.keyID] {
			m := int64(bloomMask(k, v))
			parts = append(parts, "tag_bloom & "+arg(m)+" = "+arg(m))
		}
		var resIDs []int64
		for _, r := range resources {
			if r.valid && resourceMatches(r.info, k, v) {
				resIDs = append(resIDs, r.id)
			}
		}
		if len(resIDs) > 0 {
			parts = append(parts, "resource_id = ANY("+arg(resIDs)+")")
		}
		switch k {
		case "error":
			if v == "true" {
				parts = append(parts, "status_code = 2")
			} else {
				parts = append(parts, "status_code <> 2")
			}
		case "otel.status_code":
			switch strings.ToUpper(v) {
			case "ERROR":
				parts = append(parts, "status_code = 2")
			case "OK":
				parts = append(parts, "status_code = 1")
			}
		case "span.kind":
			if kind, ok := kindNumber(v); ok {
				ops, err := s.operationIDs(ctx, svcIDs, "", kind)
				if err != nil {
					return nil, err
				}
				parts = append(parts, "operation_id = ANY("+arg(ops)+")")
			}
		}
		if len(parts) == 0 {
			return nil, errNoMatch
		}
		conds = append(conds, "("+strings.Join(parts, " OR ")+")")
	}
	return conds, nil
}

// resourceMatches reports whether a resource or its scope carries key=want.
func resourceMatches(res resourceInfo, key, want string) bool {
	switch key {
	case "otel.scope.name", "otel.library.name":
		if res.scope.Name() == want {
			return true
		}
	case "otel.scope.version", "otel.library.version":
		if res.scope.Version() == want {
			return true
		}
	}
	for _, m := range []pcommon.Map{res.resource.Attributes(), res.scope.Attributes()} {
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
