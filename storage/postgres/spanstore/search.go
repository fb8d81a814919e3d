package spanstore

import (
	"cmp"
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
// spans one search may examine, so that a tag no index narrows (a unique
// id, say) over a long range cannot turn into an unbounded scan: a search
// that reaches it says so (storage.FoundTraces.Truncated).
// searchPostingTraces is how many traces of postings one round trip
// reads.
const (
	searchPageRows      = 2000
	searchMaxPageRows   = 64_000
	searchMaxRows       = 200_000
	searchPostingTraces = 64
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
// The search walks the service's spans from StartMax back to StartMin,
// second by second through the (service_id, second) index, with every
// filter that SQL can apply (operation, duration, status, the attribute
// Bloom filter, matching resources) pushed down, and checks the candidates
// exactly in Go. When a tag can only be a span attribute, span_tags says
// where its spans are: the walk then skips every time no range row of the
// tag covers and reads the traces of its postings directly. The search
// examines at most searchMaxRows spans and reports when it stopped
// early.
func (s *Store) FindTraces(ctx context.Context, q storage.TraceQuery) (storage.FoundTraces, error) {
	var none storage.FoundTraces
	if q.StartMin.IsZero() || q.StartMax.IsZero() || q.Limit <= 0 {
		return none, errors.New("find traces: the window (StartMin, StartMax) and Limit must be set")
	}
	var args pgcore.Args
	svcIDs, err := s.serviceIDs(ctx, q.Service)
	if err != nil || len(svcIDs) == 0 {
		return none, err
	}
	svcArg := args.Add(svcIDs)
	where := []string{fmt.Sprintf(condServices, svcArg),
		args.Bind(condStartMin, q.StartMin), args.Bind(condStartMax, q.StartMax)}
	if q.Operation != "" {
		ops, err := s.operationIDs(ctx, svcIDs, q.Operation, -1)
		if err != nil || len(ops) == 0 {
			return none, err
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
		return none, err
	}
	var drivers [][]uint64
	if len(tags) > 0 {
		var conds []string
		conds, drivers, err = s.tagConditions(ctx, svcIDs, tags, &args)
		if errors.Is(err, errNoMatch) {
			return none, nil
		}
		if err != nil {
			return none, err
		}
		where = append(where, conds...)
	}
	w := window{lo: q.StartMin, hi: q.StartMax}
	plan, err := s.planWalk(ctx, svcIDs, drivers, w)
	if errors.Is(err, errNoMatch) {
		return none, nil
	}
	if err != nil {
		return none, err
	}
	found, err := s.walk(ctx, where, fmt.Sprintf(condServicesByTrace, svcArg), args, tags, plan, w, q.Limit)
	if err != nil {
		return none, err
	}
	if len(found.ids) == 0 {
		return storage.FoundTraces{Truncated: found.truncated, SearchedFrom: found.from}, nil
	}
	td, err := s.traces(ctx, found.ids)
	if err != nil {
		return none, err
	}
	return storage.FoundTraces{Traces: td, Truncated: found.truncated, SearchedFrom: found.from}, nil
}

// window is a closed time interval [lo, hi].
type window struct{ lo, hi time.Time }

// walkPlan says where in the window the walk must read spans: in ranges
// (newest first, disjoint) it scans the service's spans; elsewhere only
// the spans of postings (newest first) can match.
type walkPlan struct {
	ranges   []window
	postings []tagPosting
}

// planWalk reads the span_tags rows of each tag in drivers (each a list
// of the hashes under which its spans are indexed) within w, and returns
// the plan of the tag whose ranges cover the least time. Without drivers
// the plan scans the whole window. errNoMatch means a tag has no row: no
// span of the window carries it.
func (s *Store) planWalk(ctx context.Context, svcIDs []int32, drivers [][]uint64, w window) (walkPlan, error) {
	all := walkPlan{ranges: []window{w}}
	if len(drivers) == 0 {
		return all, nil
	}
	var hashes []int64
	for _, d := range drivers {
		for _, h := range d {
			hashes = append(hashes, int64(h))
		}
	}
	hashes = append(hashes, 0) // rows covering every tag
	rows, err := s.pool.Query(ctx, spanTagsSQL, svcIDs, hashes, w.lo, w.hi)
	if err != nil {
		return all, fmt.Errorf("find traces: span tags: %w", pgcore.Classify(err))
	}
	type tagRowOut struct {
		tag     int64
		lo, hi  time.Time
		traceID *[16]byte
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tagRowOut, error) {
		var x tagRowOut
		err := r.Scan(&x.tag, &x.lo, &x.hi, &x.traceID)
		return x, err
	})
	if err != nil {
		return all, fmt.Errorf("find traces: span tags: %w", pgcore.Classify(err))
	}
	var best walkPlan
	bestCover := time.Duration(-1)
	for _, d := range drivers {
		var p walkPlan
		for _, r := range got {
			if r.tag != 0 && !slices.Contains(d, uint64(r.tag)) {
				continue
			}
			if r.traceID != nil {
				p.postings = append(p.postings, tagPosting{start: r.lo.UnixNano(), traceID: *r.traceID})
				continue
			}
			p.ranges = append(p.ranges, window{lo: maxTime(r.lo, w.lo), hi: minTime(r.hi, w.hi)})
		}
		if len(p.ranges) == 0 && len(p.postings) == 0 {
			return all, errNoMatch
		}
		p.ranges = mergeRanges(p.ranges)
		var cover time.Duration
		for _, r := range p.ranges {
			cover += r.hi.Sub(r.lo) + time.Microsecond
		}
		if bestCover < 0 || cover < bestCover || cover == bestCover && len(p.postings) < len(best.postings) {
			best, bestCover = p, cover
		}
	}
	slices.SortFunc(best.postings, func(a, b tagPosting) int { return cmp.Compare(b.start, a.start) })
	return best, nil
}

// mergeRanges returns rs merged into disjoint windows, newest first.
func mergeRanges(rs []window) []window {
	slices.SortFunc(rs, func(a, b window) int { return a.lo.Compare(b.lo) })
	var out []window
	for _, r := range rs {
		if n := len(out); n > 0 && !r.lo.After(out[n-1].hi.Add(time.Microsecond)) {
			out[n-1].hi = maxTime(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	slices.Reverse(out)
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// walkResult is what a walk found.
type walkResult struct {
	ids       [][16]byte
	truncated bool
	from      time.Time // start of the oldest span examined, when truncated
}

// walker is the state of one search's walk.
type walker struct {
	s      *Store
	tx     pgx.Tx
	cond   string // the search's conditions
	filter string // spanSelect with them
	// traceFilter is filter for the reads of postings' traces.
	traceFilter string
	args        pgcore.Args
	tags        []tagFilter
	limit       int
	seen        map[[16]byte]bool
	res         walkResult
	last        storedSpan // the last span examined
	scanned     int
	max         int // spans the walk may examine
}

func (k *walker) done() bool { return len(k.res.ids) >= k.limit || k.scanned >= k.max }

// pageLimit is the LIMIT of a page of at most rows rows that keeps the
// walk within its bound.
func (k *walker) pageLimit(rows int) int { return max(1, min(rows, k.max-k.scanned)) }

// walk goes through w newest first following plan and returns up to
// limit distinct trace ids of spans that satisfy where (with args) and
// match every tag, in the order of their newest matching span. where[0]
// is the service condition; byTrace is the same condition in the form
// the reads of postings' traces use.
func (s *Store) walk(ctx context.Context, where []string, byTrace string, args pgcore.Args, tags []tagFilter, plan walkPlan, w window, limit int) (walkResult, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return walkResult{}, fmt.Errorf("find traces: %w", pgcore.Classify(err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, searchWorkMemSQL); err != nil {
		return walkResult{}, fmt.Errorf("find traces: %w", pgcore.Classify(err))
	}
	cond := strings.Join(where, " AND ")
	k := &walker{s: s, tx: tx, cond: cond, filter: spanSelect + " WHERE " + cond,
		traceFilter: spanSelect + " WHERE " + strings.Join(append([]string{byTrace}, where[1:]...), " AND "),
		args:        args, tags: tags, limit: limit, seen: map[[16]byte]bool{}, max: s.maxExamined}
	top := w.hi
	ranges, posts := plan.ranges, plan.postings
	for !top.Before(w.lo) && !k.done() {
		for len(ranges) > 0 && ranges[0].lo.After(top) {
			ranges = ranges[1:]
		}
		if len(ranges) > 0 && !ranges[0].hi.Before(top) {
			// top lies in a range: scan the range's spans up to top.
			next, err := k.scan(ctx, window{lo: ranges[0].lo, hi: top})
			if err != nil {
				return walkResult{}, err
			}
			top = next
			continue
		}
		// Between top and the next range only postings can match.
		bottom := w.lo
		if len(ranges) > 0 {
			bottom = ranges[0].hi.Add(time.Microsecond)
		}
		var err error
		posts, top, err = k.postings(ctx, posts, window{lo: bottom, hi: top})
		if err != nil {
			return walkResult{}, err
		}
	}
	if k.scanned >= k.max && len(k.res.ids) < limit && !top.Before(w.lo) {
		// The bound was reached: the answer is incomplete if any
		// candidate is left older than the last span examined.
		args := k.args[:len(k.args):len(k.args)]
		sql := fmt.Sprintf(moreCandidatesSQL, k.cond+" AND "+args.Bind(condStartMin, w.lo)+" AND "+args.Bind(condBefore, k.last.start, k.last.spanID))
		var one int
		switch err := tx.QueryRow(ctx, sql, args...).Scan(&one); {
		case err == nil:
			k.res.truncated = true
		case !errors.Is(err, pgx.ErrNoRows):
			return walkResult{}, fmt.Errorf("find traces: %w", pgcore.Classify(err))
		}
	}
	return k.res, nil
}

// match checks a page of candidates, newest first, and records the
// traces of those that match.
func (k *walker) match(ctx context.Context, page []storedSpan) error {
	k.scanned += len(page)
	m, err := k.s.newMatcher(ctx, page, k.tags)
	if err != nil {
		return fmt.Errorf("find traces: %w", err)
	}
	for _, sp := range page {
		k.res.from, k.last = sp.start, sp
		if k.seen[sp.traceID] {
			continue
		}
		ok, err := m.matches(sp)
		if err != nil {
			return fmt.Errorf("find traces: %w", err)
		}
		if ok {
			k.seen[sp.traceID] = true
			k.res.ids = append(k.res.ids, sp.traceID)
			if len(k.res.ids) == k.limit {
				break
			}
		}
	}
	return nil
}

// scan reads the spans of w newest first, second range by second range,
// in pages, and returns the time just before the oldest span it finished
// with (before w.lo once w is done). Each range is read in pages with a
// LIMIT (a bounded top-N sort in PostgreSQL), growing the page eightfold
// each time a page was not enough, so that common tags cost one small page
// and rare ones few round trips; the range widens while ranges come back
// with few candidates or no new trace.
func (k *walker) scan(ctx context.Context, w window) (time.Time, error) {
	base := len(k.args)
	step := int64(1)
	hi := w.hi
	for !hi.Before(w.lo) && !k.done() {
		hiSec := hi.Unix()
		fromSec := hiSec - step + 1
		from := maxTime(w.lo, time.Unix(fromSec, 0))
		pageRows := searchPageRows
		var cursor *storedSpan
		got, found := 0, len(k.res.ids)
		for !k.done() {
			args := k.args[:base]
			sql := k.filter + " AND " + args.Bind(condSeconds, time.Unix(from.Unix(), 0), time.Unix(hiSec, 0)) +
				" AND " + args.Bind(condBetween, from, hi)
			if cursor != nil {
				sql += " AND " + args.Bind(condBefore, cursor.start, cursor.spanID)
			}
			limit := k.pageLimit(pageRows)
			sql += fmt.Sprintf(orderNewest, limit)
			page, err := k.query(ctx, sql, args)
			if err != nil {
				return hi, err
			}
			got += len(page)
			if err := k.match(ctx, page); err != nil {
				return hi, err
			}
			if len(page) < limit {
				break
			}
			cursor = &page[len(page)-1]
			pageRows = min(pageRows*8, searchMaxPageRows)
		}
		if k.done() && cursor != nil {
			return hi, nil // stopped inside the range
		}
		hi = from.Add(-time.Microsecond)
		if got < searchPageRows/4 || len(k.res.ids) == found {
			step = min(step*2, 1<<20)
		}
	}
	return hi, nil
}

// postings reads the traces of the postings (newest first) within w,
// a chunk of searchPostingTraces traces at a time, and returns the
// postings left and the time just before the oldest one it finished
// with (before w.lo once w is done).
func (k *walker) postings(ctx context.Context, posts []tagPosting, w window) ([]tagPosting, time.Time, error) {
	for len(posts) > 0 && posts[0].start > w.hi.UnixNano() {
		posts = posts[1:] // above the walk: examined already
	}
	for !k.done() {
		n := 0
		ids := map[[16]byte]bool{}
		for n < len(posts) && posts[n].start >= w.lo.UnixNano() && (len(ids) < searchPostingTraces || posts[n].start == posts[n-1].start) {
			ids[posts[n].traceID] = true
			n++
		}
		if n == 0 {
			return posts, w.lo.Add(-time.Microsecond), nil
		}
		lo := time.Unix(0, posts[n-1].start)
		list := make([][16]byte, 0, len(ids))
		for id := range ids {
			list = append(list, id)
		}
		args := k.args[:len(k.args):len(k.args)]
		limit := k.pageLimit(searchMaxPageRows)
		sql := k.traceFilter + " AND " + args.Bind(condTraces, list) + " AND " + args.Bind(condBetween, lo, w.hi) +
			fmt.Sprintf(orderNewest, limit)
		page, err := k.query(ctx, sql, args)
		if err != nil {
			return posts, w.hi, err
		}
		if err := k.match(ctx, page); err != nil {
			return posts, w.hi, err
		}
		if len(page) == limit && k.scanned >= k.max {
			return posts, w.hi, nil // stopped inside the chunk
		}
		posts = posts[n:]
		w.hi = lo.Add(-time.Microsecond)
	}
	return posts, w.hi, nil
}

// query runs one page query of the walk.
func (k *walker) query(ctx context.Context, sql string, args pgcore.Args) ([]storedSpan, error) {
	rows, err := k.tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("find traces: %w", pgcore.Classify(err))
	}
	page, err := scanSpans(rows)
	if err != nil {
		return nil, fmt.Errorf("find traces: %w", pgcore.Classify(err))
	}
	return page, nil
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
// attributes match, or the column behind a special key. It also returns,
// for each tag that can only match as a span attribute, the span_tags
// hashes its spans are indexed under (planWalk).
func (s *Store) tagConditions(ctx context.Context, svcIDs []int32, tags []tagFilter, args *pgcore.Args) ([]string, [][]uint64, error) {
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
			return nil, nil, fmt.Errorf("find traces: service keys: %w", pgcore.Classify(err))
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return nil, nil, fmt.Errorf("find traces: service keys: %w", pgcore.Classify(err))
		}
		for _, id := range ids {
			present[uint32(id)] = true
		}
	}
	rows, err := s.pool.Query(ctx, serviceResourcesSQL, svcIDs)
	if err != nil {
		return nil, nil, fmt.Errorf("find traces: load resources: %w", pgcore.Classify(err))
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
		return nil, nil, fmt.Errorf("find traces: load resources: %w", pgcore.Classify(err))
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].key < tags[j].key }) // deterministic SQL
	var conds []string
	var drivers [][]uint64
	for _, f := range tags {
		k, v := f.key, f.want
		if k == "otel.status_description" {
			continue // only in the payload: checked in Go
		}
		// The alternatives admit a span carrying the tag under any of its
		// names, whatever its kind; the kind of an alias is checked in Go.
		var parts []string
		var resIDs []int64
		var hashes []uint64
		for _, t := range append([]searchTag{f.searchTag}, aliasTags(f.aliases)...) {
			if present[t.keyID] {
				m := int64(dict.BloomMask(t.key, v))
				parts = append(parts, args.Bind(condBloom, m, m))
				hashes = append(hashes, dict.TagHash(t.key, v), dict.KeyHash(t.key))
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
					return nil, nil, err
				}
				parts = append(parts, args.Bind(condOperations, ops))
			}
		}
		if len(parts) == 0 {
			return nil, nil, errNoMatch
		}
		conds = append(conds, "("+strings.Join(parts, " OR ")+")")
		if len(resIDs) == 0 && len(hashes) == len(parts)*2 && !specialKey(k) {
			drivers = append(drivers, hashes)
		}
	}
	return conds, drivers, nil
}

// specialKey reports whether a search tag with key k may match a column
// or the payload rather than an attribute.
func specialKey(k string) bool {
	switch k {
	case "error", "span.kind", "otel.status_code", "otel.status_description":
		return true
	}
	return false
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
