package postgres

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// maxCacheEntries bounds each dictionary cache; when one grows past it, it
// is cleared and refilled from the database on demand.
const maxCacheEntries = 1 << 20

// opKey identifies an operation: a span name of a service with a kind.
type opKey struct {
	service int32
	name    string
	kind    int16
}

// opInfo is what a reader needs to know about an operation id.
type opInfo struct {
	service int32
	name    string
	kind    int16
}

// resourceInfo is a decoded resources row.
type resourceInfo struct {
	service  int32
	resource pcommon.Resource
	scope    pcommon.InstrumentationScope
}

// dictionaries caches the small tables that turn repeated strings into ids.
// Writers resolve unknown entries with idempotent upserts before the spans
// that use them are copied, so a cached id always exists in the database.
// Safe for concurrent use.
type dictionaries struct {
	pool *pgxpool.Pool

	mu          sync.RWMutex
	serviceIDs  map[string]int32
	serviceName map[int32]string
	serviceSeen map[int32]time.Time // last time last_seen was bumped
	opIDs       map[opKey]int32
	opInfo      map[int32]opInfo
	keyIDs      map[string]uint32
	keyName     map[uint32]string
	valueIDs    map[uint32]map[string]uint32 // key id → value → id
	valueName   map[uint32]string
	// valueCount is the number of interned values of a key id, loaded from
	// the database the first time the key is met; noIntern holds the keys
	// that reached maxInternPerKey.
	valueCount map[uint32]int
	noIntern   map[string]bool
	// serviceKeys holds, per service, a bitset of the key ids known to be
	// recorded in service_attribute_keys.
	serviceKeys map[int32][]uint64
	resources   map[int64]bool
	resInfo     map[int64]resourceInfo
}

func newDictionaries(pool *pgxpool.Pool) *dictionaries {
	d := &dictionaries{pool: pool}
	d.reset()
	return d
}

func (d *dictionaries) reset() {
	d.serviceIDs = map[string]int32{}
	d.serviceName = map[int32]string{}
	d.serviceSeen = map[int32]time.Time{}
	d.opIDs = map[opKey]int32{}
	d.opInfo = map[int32]opInfo{}
	d.keyIDs = map[string]uint32{}
	d.keyName = map[uint32]string{}
	d.valueIDs = map[uint32]map[string]uint32{}
	d.valueName = map[uint32]string{}
	d.valueCount = map[uint32]int{}
	d.noIntern = map[string]bool{}
	d.serviceKeys = map[int32][]uint64{}
	d.resources = map[int64]bool{}
	d.resInfo = map[int64]resourceInfo{}
}

// trim clears the caches when one grew too large. Callers hold d.mu.
func (d *dictionaries) trim() {
	if len(d.opIDs) > maxCacheEntries || len(d.keyIDs) > maxCacheEntries ||
		len(d.valueName) > maxCacheEntries || len(d.resources) > maxCacheEntries || len(d.resInfo) > maxCacheEntries {
		d.reset()
	}
}

// serviceIDsFor returns ids for names, inserting unknown ones, and bumps
// last_seen at most once a minute per service.
func (d *dictionaries) serviceIDsFor(ctx context.Context, names map[string]struct{}, now time.Time) (map[string]int32, error) {
	out := make(map[string]int32, len(names))
	var missing []string
	var stale []int32
	d.mu.RLock()
	for n := range names {
		if id, ok := d.serviceIDs[n]; ok {
			out[n] = id
			if now.Sub(d.serviceSeen[id]) > time.Minute {
				stale = append(stale, id)
			}
		} else {
			missing = append(missing, n)
		}
	}
	d.mu.RUnlock()
	sort.Strings(missing)
	slices.Sort(stale)
	if len(missing) > 0 {
		rows, err := d.pool.Query(ctx, `
			INSERT INTO services (name) SELECT unnest($1::text[])
			ON CONFLICT (name) DO UPDATE SET last_seen = now()
			RETURNING id, name`, missing)
		if err != nil {
			return nil, fmt.Errorf("upsert services: %w", classify(err))
		}
		var id int32
		var name string
		_, err = pgx.ForEachRow(rows, []any{&id, &name}, func() error {
			out[name] = id
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("upsert services: %w", classify(err))
		}
		d.mu.Lock()
		for _, n := range missing {
			d.serviceIDs[n] = out[n]
			d.serviceName[out[n]] = n
			d.serviceSeen[out[n]] = now
		}
		d.mu.Unlock()
	}
	if len(stale) > 0 {
		if _, err := d.pool.Exec(ctx, "UPDATE services SET last_seen = now() WHERE id = ANY($1)", stale); err != nil {
			return nil, fmt.Errorf("update service last_seen: %w", classify(err))
		}
		d.mu.Lock()
		for _, id := range stale {
			d.serviceSeen[id] = now
		}
		d.mu.Unlock()
	}
	return out, nil
}

// operationIDsFor returns ids for ops, inserting unknown ones.
func (d *dictionaries) operationIDsFor(ctx context.Context, ops map[opKey]struct{}) (map[opKey]int32, error) {
	out := make(map[opKey]int32, len(ops))
	var svc []int32
	var names []string
	var kinds []int16
	d.mu.RLock()
	for k := range ops {
		if id, ok := d.opIDs[k]; ok {
			out[k] = id
		} else {
			svc, names, kinds = append(svc, k.service), append(names, k.name), append(kinds, k.kind)
		}
	}
	d.mu.RUnlock()
	if len(svc) == 0 {
		return out, nil
	}
	sortOps(svc, names, kinds)
	// DO UPDATE (a no-op) rather than DO NOTHING so existing rows are
	// returned too, in one round trip.
	rows, err := d.pool.Query(ctx, `
		INSERT INTO operations (service_id, name, kind)
		SELECT * FROM unnest($1::int[], $2::text[], $3::smallint[])
		ON CONFLICT (service_id, name, kind) DO UPDATE SET kind = EXCLUDED.kind
		RETURNING id, service_id, name, kind`, svc, names, kinds)
	if err != nil {
		return nil, fmt.Errorf("upsert operations: %w", classify(err))
	}
	var id int32
	var k opKey
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trim()
	_, err = pgx.ForEachRow(rows, []any{&id, &k.service, &k.name, &k.kind}, func() error {
		out[k] = id
		d.opIDs[k] = id
		d.opInfo[id] = opInfo(k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("upsert operations: %w", classify(err))
	}
	return out, nil
}

// keyIDsFor returns ids for attribute keys, inserting unknown ones.
func (d *dictionaries) keyIDsFor(ctx context.Context, keys map[string]struct{}) (map[string]uint32, error) {
	out := make(map[string]uint32, len(keys))
	var missing []string
	d.mu.RLock()
	for k := range keys {
		if id, ok := d.keyIDs[k]; ok {
			out[k] = id
		} else {
			missing = append(missing, k)
		}
	}
	d.mu.RUnlock()
	if len(missing) == 0 {
		return out, nil
	}
	sort.Strings(missing)
	rows, err := d.pool.Query(ctx, `
		INSERT INTO attribute_keys (key) SELECT unnest($1::text[])
		ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key
		RETURNING id, key`, missing)
	if err != nil {
		return nil, fmt.Errorf("upsert attribute keys: %w", classify(err))
	}
	var id int32
	var key string
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trim()
	_, err = pgx.ForEachRow(rows, []any{&id, &key}, func() error {
		out[key] = uint32(id)
		d.keyIDs[key] = uint32(id)
		d.keyName[uint32(id)] = key
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("upsert attribute keys: %w", classify(err))
	}
	return out, nil
}

// locked reads the caches for the encoder; the caller holds d.mu (read).
type locked struct{ d *dictionaries }

func (l locked) keyID(key string) (uint32, bool) { id, ok := l.d.keyIDs[key]; return id, ok }

func (l locked) valueID(key uint32, value string) (uint32, bool) {
	id, ok := l.d.valueIDs[key][value]
	return id, ok
}

func (l locked) internable(key string) bool { return !l.d.noIntern[key] }

func (l locked) serviceKeyBits(service int32) []uint64 { return l.d.serviceKeys[service] }

// putValue caches an interned value id. Callers hold d.mu.
func (d *dictionaries) putValue(vk valueKey, id uint32) {
	m := d.valueIDs[vk.key]
	if m == nil {
		m = map[string]uint32{}
		d.valueIDs[vk.key] = m
	}
	m[vk.value] = id
}

// ensureServiceKeys records which keys the services' spans carry.
func (d *dictionaries) ensureServiceKeys(ctx context.Context, pairs map[serviceKey]struct{}) error {
	if len(pairs) == 0 {
		return nil
	}
	list := make([]serviceKey, 0, len(pairs))
	for p := range pairs {
		list = append(list, p)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].service != list[j].service {
			return list[i].service < list[j].service
		}
		return list[i].key < list[j].key
	})
	svcs := make([]int32, len(list))
	keys := make([]int32, len(list))
	for i, p := range list {
		svcs[i], keys[i] = p.service, int32(p.key)
	}
	_, err := d.pool.Exec(ctx, `INSERT INTO service_attribute_keys (service_id, key_id)
		SELECT * FROM unnest($1::int[], $2::int[]) ON CONFLICT DO NOTHING`, svcs, keys)
	if err != nil {
		return fmt.Errorf("record service attribute keys: %w", classify(err))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trim()
	for _, p := range list {
		bits := d.serviceKeys[p.service]
		for int(p.key/64) >= len(bits) {
			bits = append(bits, 0)
		}
		bits[p.key/64] |= 1 << (p.key % 64)
		d.serviceKeys[p.service] = bits
	}
	return nil
}

// valueIDsFor interns the candidate values into the cache and the
// database while their key stays under maxInternPerKey distinct values;
// keys that reach it are no longer interned. Candidates left out are
// written inline.
func (d *dictionaries) valueIDsFor(ctx context.Context, cands map[stringPair]struct{}, keys map[string]uint32) error {
	var unknownKeys []int32
	var missing []valueKey
	d.mu.RLock()
	seenKey := map[uint32]bool{}
	for c := range cands {
		vk := valueKey{keys[c.key], c.value}
		if _, ok := d.valueIDs[vk.key][vk.value]; ok {
			continue
		}
		if _, ok := d.valueCount[vk.key]; !ok && !seenKey[vk.key] {
			seenKey[vk.key] = true
			unknownKeys = append(unknownKeys, int32(vk.key))
		}
		missing = append(missing, vk)
	}
	d.mu.RUnlock()
	if len(missing) == 0 {
		return nil
	}
	if len(unknownKeys) > 0 {
		rows, err := d.pool.Query(ctx, `SELECT k, (SELECT count(*) FROM attribute_values WHERE key_id = k)
			FROM unnest($1::int[]) AS k`, unknownKeys)
		if err != nil {
			return fmt.Errorf("count interned values: %w", classify(err))
		}
		var k int32
		var n int
		d.mu.Lock()
		_, err = pgx.ForEachRow(rows, []any{&k, &n}, func() error {
			d.valueCount[uint32(k)] = n
			return nil
		})
		d.mu.Unlock()
		if err != nil {
			return fmt.Errorf("count interned values: %w", classify(err))
		}
	}
	// Admit new values per key up to the limit; past it the key is no
	// longer interned (its existing ids stay valid).
	var ins []valueKey
	d.mu.Lock()
	admitted := map[uint32]int{}
	names := map[uint32]string{}
	for k, id := range keys {
		names[id] = k
	}
	for _, vk := range missing {
		if d.valueCount[vk.key]+admitted[vk.key] >= maxInternPerKey {
			d.noIntern[names[vk.key]] = true
			continue
		}
		admitted[vk.key]++
		ins = append(ins, vk)
	}
	d.mu.Unlock()
	if len(ins) == 0 {
		return nil
	}
	// Insert in one global order so concurrent writers cannot deadlock.
	sort.Slice(ins, func(i, j int) bool {
		if ins[i].key != ins[j].key {
			return ins[i].key < ins[j].key
		}
		return ins[i].value < ins[j].value
	})
	kids := make([]int32, len(ins))
	vals := make([]string, len(ins))
	for i, vk := range ins {
		kids[i], vals[i] = int32(vk.key), vk.value
	}
	rows, err := d.pool.Query(ctx, `
		INSERT INTO attribute_values (key_id, value) SELECT * FROM unnest($1::int[], $2::text[])
		ON CONFLICT (key_id, value) DO UPDATE SET value = EXCLUDED.value
		RETURNING id, key_id, value, xmax = 0`, kids, vals)
	if err != nil {
		return fmt.Errorf("intern attribute values: %w", classify(err))
	}
	var id, kid int32
	var val string
	var inserted bool
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trim()
	_, err = pgx.ForEachRow(rows, []any{&id, &kid, &val, &inserted}, func() error {
		vk := valueKey{uint32(kid), val}
		d.putValue(vk, uint32(id))
		d.valueName[uint32(id)] = val
		if inserted {
			d.valueCount[vk.key]++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("intern attribute values: %w", classify(err))
	}
	return nil
}

// loadValues makes sure every interned value id in ids is cached.
func (d *dictionaries) loadValues(ctx context.Context, ids map[uint32]struct{}) error {
	var missing []int32
	d.mu.RLock()
	for id := range ids {
		if _, ok := d.valueName[id]; !ok {
			missing = append(missing, int32(id))
		}
	}
	d.mu.RUnlock()
	if len(missing) == 0 {
		return nil
	}
	rows, err := d.pool.Query(ctx, "SELECT id, key_id, value FROM attribute_values WHERE id = ANY($1)", missing)
	if err != nil {
		return fmt.Errorf("load attribute values: %w", classify(err))
	}
	var id, kid int32
	var val string
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err = pgx.ForEachRow(rows, []any{&id, &kid, &val}, func() error {
		d.valueName[uint32(id)] = val
		d.putValue(valueKey{uint32(kid), val}, uint32(id))
		return nil
	})
	if err != nil {
		return fmt.Errorf("load attribute values: %w", classify(err))
	}
	return nil
}

// cachedKeyIDs returns the cached ids of the keys of the given values.
func (d *dictionaries) cachedKeyIDs(values map[stringPair]struct{}) map[string]uint32 {
	out := map[string]uint32{}
	d.mu.RLock()
	defer d.mu.RUnlock()
	for v := range values {
		if id, ok := d.keyIDs[v.key]; ok {
			out[v.key] = id
		}
	}
	return out
}

// newResource is a resources row about to be written.
type newResource struct {
	id       int64
	service  int32
	resource []byte
	scope    []byte
}

// ensureResources inserts the resources not yet known to exist.
func (d *dictionaries) ensureResources(ctx context.Context, res []newResource) error {
	var ids []int64
	var svcs []int32
	var rb, sb [][]byte
	d.mu.RLock()
	for _, r := range res {
		if !d.resources[r.id] {
			ids, svcs, rb, sb = append(ids, r.id), append(svcs, r.service), append(rb, r.resource), append(sb, r.scope)
		}
	}
	d.mu.RUnlock()
	if len(ids) == 0 {
		return nil
	}
	sortResources(ids, svcs, rb, sb)
	_, err := d.pool.Exec(ctx, `
		INSERT INTO resources (id, service_id, resource, scope)
		SELECT * FROM unnest($1::bigint[], $2::int[], $3::bytea[], $4::bytea[])
		ON CONFLICT (id) DO NOTHING`, ids, svcs, rb, sb)
	if err != nil {
		return fmt.Errorf("insert resources: %w", classify(err))
	}
	d.mu.Lock()
	d.trim()
	for _, id := range ids {
		d.resources[id] = true
	}
	d.mu.Unlock()
	return nil
}

// keyName implements keyNames for cached keys; loadKeys must have run for
// the ids of the payloads being decoded.
func (d *dictionaries) keyNameOf(id uint32) (string, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	k, ok := d.keyName[id]
	return k, ok
}

// lookup adapts dictionaries to keyNames.
type lookup struct{ d *dictionaries }

func (l lookup) keyName(id uint32) (string, bool) { return l.d.keyNameOf(id) }

func (l lookup) valueName(id uint32) (string, bool) {
	l.d.mu.RLock()
	defer l.d.mu.RUnlock()
	v, ok := l.d.valueName[id]
	return v, ok
}

// loadKeys makes sure every id in ids is cached.
func (d *dictionaries) loadKeys(ctx context.Context, ids map[uint32]struct{}) error {
	var missing []int32
	d.mu.RLock()
	for id := range ids {
		if _, ok := d.keyName[id]; !ok {
			missing = append(missing, int32(id))
		}
	}
	d.mu.RUnlock()
	if len(missing) == 0 {
		return nil
	}
	rows, err := d.pool.Query(ctx, "SELECT id, key FROM attribute_keys WHERE id = ANY($1)", missing)
	if err != nil {
		return fmt.Errorf("load attribute keys: %w", classify(err))
	}
	var id int32
	var key string
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err = pgx.ForEachRow(rows, []any{&id, &key}, func() error {
		d.keyIDs[key] = uint32(id)
		d.keyName[uint32(id)] = key
		return nil
	})
	if err != nil {
		return fmt.Errorf("load attribute keys: %w", classify(err))
	}
	return nil
}

// loadOperations returns the operations with the given ids.
func (d *dictionaries) loadOperations(ctx context.Context, ids map[int32]struct{}) (map[int32]opInfo, error) {
	out := make(map[int32]opInfo, len(ids))
	var missing []int32
	d.mu.RLock()
	for id := range ids {
		if o, ok := d.opInfo[id]; ok {
			out[id] = o
		} else {
			missing = append(missing, id)
		}
	}
	d.mu.RUnlock()
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := d.pool.Query(ctx, "SELECT id, service_id, name, kind FROM operations WHERE id = ANY($1)", missing)
	if err != nil {
		return nil, fmt.Errorf("load operations: %w", classify(err))
	}
	var id int32
	var o opInfo
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err = pgx.ForEachRow(rows, []any{&id, &o.service, &o.name, &o.kind}, func() error {
		out[id] = o
		d.opInfo[id] = o
		d.opIDs[opKey(o)] = id
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load operations: %w", classify(err))
	}
	return out, nil
}

// loadServiceNames returns the names of the given service ids.
func (d *dictionaries) loadServiceNames(ctx context.Context, ids map[int32]struct{}) (map[int32]string, error) {
	out := make(map[int32]string, len(ids))
	var missing []int32
	d.mu.RLock()
	for id := range ids {
		if n, ok := d.serviceName[id]; ok {
			out[id] = n
		} else {
			missing = append(missing, id)
		}
	}
	d.mu.RUnlock()
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := d.pool.Query(ctx, "SELECT id, name FROM services WHERE id = ANY($1)", missing)
	if err != nil {
		return nil, fmt.Errorf("load services: %w", classify(err))
	}
	var id int32
	var name string
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err = pgx.ForEachRow(rows, []any{&id, &name}, func() error {
		out[id] = name
		d.serviceName[id] = name
		d.serviceIDs[name] = id
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load services: %w", classify(err))
	}
	return out, nil
}

// loadResources returns the decoded resources with the given ids. The
// returned values are shared with the cache: callers copy them.
func (d *dictionaries) loadResources(ctx context.Context, ids map[int64]struct{}) (map[int64]resourceInfo, error) {
	out := make(map[int64]resourceInfo, len(ids))
	var missing []int64
	d.mu.RLock()
	for id := range ids {
		if r, ok := d.resInfo[id]; ok {
			out[id] = r
		} else {
			missing = append(missing, id)
		}
	}
	d.mu.RUnlock()
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := d.pool.Query(ctx, "SELECT id, service_id, resource, scope FROM resources WHERE id = ANY($1)", missing)
	if err != nil {
		return nil, fmt.Errorf("load resources: %w", classify(err))
	}
	var id int64
	var svc int32
	var rb, sb []byte
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trim()
	_, err = pgx.ForEachRow(rows, []any{&id, &svc, &rb, &sb}, func() error {
		info := resourceInfo{service: svc, resource: pcommon.NewResource(), scope: pcommon.NewInstrumentationScope()}
		if err := decodeResource(rb, sb, info.resource, info.scope); err != nil {
			return fmt.Errorf("resource %d: %w", id, err)
		}
		out[id] = info
		d.resInfo[id] = info
		d.resources[id] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load resources: %w", classify(err))
	}
	return out, nil
}

// sortOps orders operation rows to insert by (service, name, kind), the
// order every writer uses, so that concurrent upserts cannot deadlock.
func sortOps(svc []int32, names []string, kinds []int16) {
	idx := make([]int, len(svc))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool {
		i, j := idx[a], idx[b]
		if svc[i] != svc[j] {
			return svc[i] < svc[j]
		}
		if names[i] != names[j] {
			return names[i] < names[j]
		}
		return kinds[i] < kinds[j]
	})
	s2, n2, k2 := slices.Clone(svc), slices.Clone(names), slices.Clone(kinds)
	for to, from := range idx {
		svc[to], names[to], kinds[to] = s2[from], n2[from], k2[from]
	}
}

// sortResources orders resource rows to insert by id.
func sortResources(ids []int64, svcs []int32, rb, sb [][]byte) {
	idx := make([]int, len(ids))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return ids[idx[a]] < ids[idx[b]] })
	i2, s2, r2, b2 := slices.Clone(ids), slices.Clone(svcs), slices.Clone(rb), slices.Clone(sb)
	for to, from := range idx {
		ids[to], svcs[to], rb[to], sb[to] = i2[from], s2[from], r2[from], b2[from]
	}
}
