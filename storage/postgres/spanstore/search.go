package spanstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/internal/dict"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
	"github.com/vigil-obs/vigil/storage/semconv"
)

// Bounds of the work of one search. searchPageRows is how many candidate
// spans one search round trip reads at first; searchMaxRows bounds the
// spans one search may examine, so a rare tag over a long range cannot
// turn into an unbounded scan.
const (
	searchPageRows    = 2000
	searchMaxPageRows = 64_000
	searchMaxRows     = 200_000
)

// FindTraces returns the traces, newest first, that have a span matching
// every set field of q. Tags match span, resource or scope attributes by
// their string form, as Jaeger compares tags: pdata's AsString (an integer
// 500 matches "500", a boolean "true", a double 0.25 "0.25") or, for
// doubles and bytes, Jaeger's (dict.JaegerForm: "3.141592654", hex); spans
// written before the Jaeger form was added to the Bloom filter match by
// pdata's form only. Also the special keys error,
// span.kind, otel.status_code, otel.status_description and
// otel.scope.name/version. A tag whose key the semantic conventions renamed
// (storage/semconv) also matches the attribute under its other name, on
// the spans where the two names mean the same: http.status_code=500 finds
// spans carrying http.response.status_code=500 and the reverse.
// q.StartMin, q.StartMax and q.Limit must be set: the store applies no
// default window or limit (query/traces does). The returned traces are
// owned by the caller.
//
// The search walks the service's spans minute by minute from StartMax
// back to StartMin through the (service_id, start_minute) index, with every
// filter that SQL can apply (operation, duration, status, the attribute
// Bloom filter, matching resources) pushed down, and checks the candidates
// exactly in Go. It stops after searchMaxRows candidates.
func (s *Store) FindTraces(ctx context.Context, q storage.TraceQuery) ([]ptrace.Traces, error) {
	if q.StartMin.IsZero() || q.StartMax.IsZero() || q.Limit <= 0 {
		return nil, errors.New("find traces: the window (StartMin, StartMax) and Limit must be set")
	}
	var args pgcore.Args
	svcIDs, err := s.serviceIDs(ctx, q.Service)
	if err != nil || len(svcIDs) == 0 {
		return nil, err
	}
	where := []string{args.Bind(condServices, svcIDs),
		args.Bind(condStartMin, q.StartMin), args.Bind(condStartMax, q.StartMax)}
	if q.Operation != "" {
		ops, err := s.operationIDs(ctx, svcIDs, q.Operation, -1)
		if err != nil || len(ops) == 0 {
			return nil, err
		}
		where = append(where, args.Bind(condOperations, ops))
	}
	if q.DurationMin > 0 {
		where = append(where, args.Bind(condDurationMin, q.DurationMin.Nanoseconds()))
	}
	if q.DurationMax > 0 {
		where = append(where, args.Bind(condDurationMax, q.DurationMax.Nanoseconds()))
	}
	tags, err := s.resolveTags(ctx, q.Tags)
	if err != nil {
		return nil, err
	}
	if len(tags) > 0 {
		conds, err := s.tagConditions(ctx, svcIDs, tags, &args)
		if errors.Is(err, errNoMatch) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		where = append(where, conds...)
	}
	ids, err := s.scanCandidates(ctx, where, args, tags, minuteOf(q.StartMin), minuteOf(q.StartMax), q.Limit)
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
func (s *Store) scanCandidates(ctx context.Context, where []string, args pgcore.Args, tags []tagFilter, lo, hi int32, limit int) ([][16]byte, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("find traces: %w", pgcore.Classify(err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, searchWorkMemSQL); err != nil {
		return nil, fmt.Errorf("find traces: %w", pgcore.Classify(err))
	}

	base := len(args)
	filter := spanSelect + " WHERE " + strings.Join(where, " AND ")
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
			args = args[:base]
			sql := filter + " AND " + args.Bind(condMinutes, from, hi)
			if cursor != nil {
				sql += " AND " + args.Bind(condBefore, cursor.start, cursor.spanID)
			}
			sql += fmt.Sprintf(orderNewest, pageRows)
			rows, err := tx.Query(ctx, sql, args...)
			if err != nil {
				return nil, fmt.Errorf("find traces: %w", pgcore.Classify(err))
			}
			page, err := scanSpans(rows)
			if err != nil {
				return nil, fmt.Errorf("find traces: %w", pgcore.Classify(err))
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

// tagFilter is one key=value of a search: the key as asked and the other
// names the semantic conventions gave it, each with the spans it holds on.
type tagFilter struct {
	searchTag
	aliases []aliasTag
}

// aliasTag is the tag under another name of its key.
type aliasTag struct {
	searchTag
	side semconv.Side
}

// resolveTags looks up the dictionary ids of the search tags' keys, of
// their aliases, and of the values interned for them, in one query.
func (s *Store) resolveTags(ctx context.Context, tags map[string]string) ([]tagFilter, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	var keys, wants []string
	for k, v := range tags {
		keys, wants = append(keys, k), append(wants, v)
		for _, a := range semconv.Aliases(k) {
			keys, wants = append(keys, a.Key), append(wants, v)
		}
	}
	rows, err := s.pool.Query(ctx, resolveTagsSQL, keys, wants)
	if err != nil {
		return nil, fmt.Errorf("find traces: resolve tags: %w", pgcore.Classify(err))
	}
	resolved, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (searchTag, error) {
		var t searchTag
		var kid, vid int32
		err := r.Scan(&t.key, &t.want, &kid, &vid)
		t.keyID, t.valueID = uint32(kid), uint32(vid)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("find traces: resolve tags: %w", pgcore.Classify(err))
	}
	byPair := make(map[[2]string]searchTag, len(resolved))
	for _, t := range resolved {
		byPair[[2]string{t.key, t.want}] = t
	}
	out := make([]tagFilter, 0, len(tags))
	for k, v := range tags {
		f := tagFilter{searchTag: byPair[[2]string{k, v}]}
		for _, a := range semconv.Aliases(k) {
			f.aliases = append(f.aliases, aliasTag{searchTag: byPair[[2]string{a.Key, v}], side: a.Side})
		}
		out = append(out, f)
	}
	return out, nil
}

// matcher checks candidate spans against the search tags exactly.
type matcher struct {
	tags      []tagFilter
	ops       map[int32]dict.Operation
	resources map[int64]dict.Resource
	names     dict.Names
}

func (s *Store) newMatcher(ctx context.Context, page []storedSpan, tags []tagFilter) (*matcher, error) {
	m := &matcher{tags: tags, names: s.dict.Names()}
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
	if m.ops, err = s.dict.Operations(ctx, opIDs); err != nil {
		return nil, err
	}
	if m.resources, err = s.dict.Resources(ctx, resIDs); err != nil {
		return nil, err
	}
	return m, nil
}

// matches reports whether sp carries every tag: as a special key (error,
// span.kind, otel.status_code, otel.status_description), a span
// attribute, or an attribute of its resource or scope, under the tag's
// key or, where it holds for sp's kind, one of its aliases.
func (m *matcher) matches(sp storedSpan) (bool, error) {
	for _, t := range m.tags {
		ok, err := m.tagMatches(sp, t)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (m *matcher) tagMatches(sp storedSpan, f tagFilter) (bool, error) {
	t := f.searchTag
	switch t.key {
	case "error":
		if (sp.status == int16(ptrace.StatusCodeError)) == (t.want == "true") {
			return true, nil
		}
	case "span.kind":
		if kindName(m.ops[sp.op].Kind) == t.want {
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
	ok, err := m.attrMatches(sp, t)
	if err != nil || ok {
		return ok, err
	}
	if len(f.aliases) == 0 {
		return false, nil
	}
	server := m.ops[sp.op].Kind == int16(ptrace.SpanKindServer)
	for _, a := range f.aliases {
		if !a.side.Applies(server) {
			continue
		}
		ok, err := m.attrMatches(sp, a.searchTag)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// attrMatches reports whether sp, its resource or its scope carries the
// attribute t.
func (m *matcher) attrMatches(sp storedSpan, t searchTag) (bool, error) {
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
func (s *Store) serviceIDs(ctx context.Context, name string) ([]int32, error) {
	sql, args := allServiceIDsSQL, []any{}
	if name != "" {
		sql, args = serviceIDByNameSQL, []any{name}
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("find traces: resolve service: %w", pgcore.Classify(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("find traces: resolve service: %w", pgcore.Classify(err))
	}
	return ids, nil
}

// operationIDs returns the ids of the services' operations with the given
// name (any name when empty) and kind (any kind when negative).
func (s *Store) operationIDs(ctx context.Context, svcIDs []int32, name string, kind int16) ([]int32, error) {
	rows, err := s.pool.Query(ctx, operationIDsSQL, svcIDs, name, kind)
	if err != nil {
		return nil, fmt.Errorf("find traces: resolve operations: %w", pgcore.Classify(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("find traces: resolve operations: %w", pgcore.Classify(err))
	}
	return ids, nil
}

// tagConditions turns each tag into an SQL condition that every matching
// span satisfies (it may also admit some that do not match; the exact check
// happens in Go): the attribute Bloom filter, or a resource whose
// attributes match, or the column behind a special key.
func (s *Store) tagConditions(ctx context.Context, svcIDs []int32, tags []tagFilter, args *pgcore.Args) ([]string, error) {
	// Keys the services' spans never carried cannot match as span
	// attributes: their Bloom branch is left out.
	var kids []int32
	for _, f := range tags {
		if f.keyID != 0 {
			kids = append(kids, int32(f.keyID))
		}
		for _, a := range f.aliases {
			if a.keyID != 0 {
				kids = append(kids, int32(a.keyID))
			}
		}
	}
	present := map[uint32]bool{}
	if len(kids) > 0 {
		rows, err := s.pool.Query(ctx, serviceKeysSQL, svcIDs, kids)
		if err != nil {
			return nil, fmt.Errorf("find traces: service keys: %w", pgcore.Classify(err))
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return nil, fmt.Errorf("find traces: service keys: %w", pgcore.Classify(err))
		}
		for _, id := range ids {
			present[uint32(id)] = true
		}
	}
	rows, err := s.pool.Query(ctx, serviceResourcesSQL, svcIDs)
	if err != nil {
		return nil, fmt.Errorf("find traces: load resources: %w", pgcore.Classify(err))
	}
	type res struct {
		id    int64
		info  dict.Resource
		valid bool
	}
	resources, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (res, error) {
		var x res
		var rb, sb []byte
		if err := r.Scan(&x.id, &rb, &sb); err != nil {
			return x, err
		}
		x.info = dict.Resource{Resource: pcommon.NewResource(), Scope: pcommon.NewInstrumentationScope()}
		x.valid = dict.DecodeResource(rb, sb, x.info.Resource, x.info.Scope) == nil
		return x, nil
	})
	if err != nil {
		return nil, fmt.Errorf("find traces: load resources: %w", pgcore.Classify(err))
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].key < tags[j].key }) // deterministic SQL
	var conds []string
	for _, f := range tags {
		k, v := f.key, f.want
		if k == "otel.status_description" {
			continue // only in the payload: checked in Go
		}
		// The alternatives admit a span carrying the tag under any of its
		// names, whatever its kind; the kind of an alias is checked in Go.
		var parts []string
		var resIDs []int64
		for _, t := range append([]searchTag{f.searchTag}, aliasTags(f.aliases)...) {
			if present[t.keyID] {
				m := int64(dict.BloomMask(t.key, v))
				parts = append(parts, args.Bind(condBloom, m, m))
			}
			for _, r := range resources {
				if r.valid && resourceMatches(r.info, t.key, v) && !slices.Contains(resIDs, r.id) {
					resIDs = append(resIDs, r.id)
				}
			}
		}
		if len(resIDs) > 0 {
			parts = append(parts, args.Bind(condResource, resIDs))
		}
		switch k {
		case "error":
			if v == "true" {
				parts = append(parts, condError)
			} else {
				parts = append(parts, condNotError)
			}
		case "otel.status_code":
			switch strings.ToUpper(v) {
			case "ERROR":
				parts = append(parts, condError)
			case "OK":
				parts = append(parts, condStatusOK)
			}
		case "span.kind":
			if kind, ok := kindNumber(v); ok {
				ops, err := s.operationIDs(ctx, svcIDs, "", kind)
				if err != nil {
					return nil, err
				}
				parts = append(parts, args.Bind(condOperations, ops))
			}
		}
		if len(parts) == 0 {
			return nil, errNoMatch
		}
		conds = append(conds, "("+strings.Join(parts, " OR ")+")")
	}
	return conds, nil
}

func aliasTags(as []aliasTag) []searchTag {
	out := make([]searchTag, len(as))
	for i, a := range as {
		out[i] = a.searchTag
	}
	return out
}

// resourceMatches reports whether a resource or its scope carries key=want.
func resourceMatches(res dict.Resource, key, want string) bool {
	switch key {
	case "otel.scope.name", "otel.library.name":
		if res.Scope.Name() == want {
			return true
		}
	case "otel.scope.version", "otel.library.version":
		if res.Scope.Version() == want {
			return true
		}
	}
	for _, m := range []pcommon.Map{res.Resource.Attributes(), res.Scope.Attributes()} {
		if v, ok := m.Get(key); ok {
			if v.AsString() == want {
				return true
			}
			if alt, ok := dict.JaegerForm(v); ok && alt == want {
				return true
			}
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
