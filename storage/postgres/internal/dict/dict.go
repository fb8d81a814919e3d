package dict

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

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// Operation is a span name of a service with a span kind: the key of the
// operations dictionary.
type Operation struct {
	Service int32
	Name    string
	Kind    int16
}

// Resource is a decoded resources row: a resource and an instrumentation
// scope, with the service they belong to.
type Resource struct {
	Service  int32
	Resource pcommon.Resource
	Scope    pcommon.InstrumentationScope
}

// Dictionaries caches the small tables that turn repeated strings into
// ids. Writers resolve unknown entries with idempotent upserts before the
// rows that use them are copied, so a cached id always exists in the
// database. Each store keeps its own Dictionaries. Safe for concurrent use.
type Dictionaries struct {
	pool *pgxpool.Pool

	mu          sync.RWMutex
	serviceIDs  map[string]int32
	serviceName map[int32]string
	serviceSeen map[int32]time.Time // last time last_seen was bumped
	opIDs       map[Operation]int32
	opByID      map[int32]Operation
	keyIDs      map[string]uint32
	keyName     map[uint32]string
	valueIDs    map[uint32]map[string]uint32 // key id → value → id
	valueName   map[uint32]string
	// valueCount is the number of interned values of a key id, loaded from
	// the database the first time the key is met; noIntern holds the keys
	// that reached MaxInternPerKey.
	valueCount map[uint32]int
	noIntern   map[string]bool
	// serviceKeys holds, per service, a bitset of the key ids known to be
	// recorded in service_attribute_keys.
	serviceKeys map[int32][]uint64
	resources   map[int64]bool
	resInfo     map[int64]Resource
}

// New returns empty dictionaries over pool.
func New(pool *pgxpool.Pool) *Dictionaries {
	d := &Dictionaries{pool: pool}
	d.reset()
	return d
}

func (d *Dictionaries) reset() {
	d.serviceIDs = map[string]int32{}
	d.serviceName = map[int32]string{}
	d.serviceSeen = map[int32]time.Time{}
	d.opIDs = map[Operation]int32{}
	d.opByID = map[int32]Operation{}
	d.keyIDs = map[string]uint32{}
	d.keyName = map[uint32]string{}
	d.valueIDs = map[uint32]map[string]uint32{}
	d.valueName = map[uint32]string{}
	d.valueCount = map[uint32]int{}
	d.noIntern = map[string]bool{}
	d.serviceKeys = map[int32][]uint64{}
	d.resources = map[int64]bool{}
	d.resInfo = map[int64]Resource{}
}

// trim clears the caches when one grew too large. Callers hold d.mu.
func (d *Dictionaries) trim() {
	if len(d.opIDs) > pgcore.MaxCacheEntries || len(d.keyIDs) > pgcore.MaxCacheEntries ||
		len(d.valueName) > pgcore.MaxCacheEntries || len(d.resources) > pgcore.MaxCacheEntries || len(d.resInfo) > pgcore.MaxCacheEntries {
		d.reset()
	}
}

// RLock holds the caches still for an encoding pass that reads them
// through Cached; RUnlock releases them. Between the two, no method of d
// that resolves or loads entries may be called.
func (d *Dictionaries) RLock() { d.mu.RLock() }

// RUnlock ends what RLock began.
func (d *Dictionaries) RUnlock() { d.mu.RUnlock() }

// Cached returns a Source over the cached entries. It reads the caches
// without locking: use it between RLock and RUnlock.
func (d *Dictionaries) Cached() Source { return cached{d} }

// cached reads the caches for an Encoder; the caller holds d.mu (read).
type cached struct{ d *Dictionaries }

func (c cached) KeyID(key string) (uint32, bool) { id, ok := c.d.keyIDs[key]; return id, ok }

func (c cached) ValueID(key uint32, value string) (uint32, bool) {
	id, ok := c.d.valueIDs[key][value]
	return id, ok
}

func (c cached) Internable(key string) bool { return !c.d.noIntern[key] }

func (c cached) ServiceKeyBits(service int32) []uint64 { return c.d.serviceKeys[service] }

// ServiceIDs returns ids for names, inserting unknown ones, and bumps
// last_seen at most once a minute per service (now is the writer's clock).
func (d *Dictionaries) ServiceIDs(ctx context.Context, names map[string]struct{}, now time.Time) (map[string]int32, error) {
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
		rows, err := d.pool.Query(ctx, upsertServicesSQL, missing)
		if err != nil {
			return nil, fmt.Errorf("upsert services: %w", pgcore.Classify(err))
		}
		var id int32
		var name string
		_, err = pgx.ForEachRow(rows, []any{&id, &name}, func() error {
			out[name] = id
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("upsert services: %w", pgcore.Classify(err))
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
		if _, err := d.pool.Exec(ctx, touchServicesSQL, stale); err != nil {
			return nil, fmt.Errorf("update service last_seen: %w", pgcore.Classify(err))
		}
		d.mu.Lock()
		for _, id := range stale {
			d.serviceSeen[id] = now
		}
		d.mu.Unlock()
	}
	return out, nil
}

// OperationIDs returns ids for ops, inserting unknown ones.
func (d *Dictionaries) OperationIDs(ctx context.Context, ops map[Operation]struct{}) (map[Operation]int32, error) {
	out := make(map[Operation]int32, len(ops))
	var svc []int32
	var names []string
	var kinds []int16
	d.mu.RLock()
	for k := range ops {
		if id, ok := d.opIDs[k]; ok {
			out[k] = id
		} else {
			svc, names, kinds = append(svc, k.Service), append(names, k.Name), append(kinds, k.Kind)
		}
	}
	d.mu.RUnlock()
	if len(svc) == 0 {
		return out, nil
	}
	sortOps(svc, names, kinds)
	rows, err := d.pool.Query(ctx, upsertOperationsSQL, svc, names, kinds)
	if err != nil {
		return nil, fmt.Errorf("upsert operations: %w", pgcore.Classify(err))
	}
	var id int32
	var k Operation
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trim()
	_, err = pgx.ForEachRow(rows, []any{&id, &k.Service, &k.Name, &k.Kind}, func() error {
		out[k] = id
		d.opIDs[k] = id
		d.opByID[id] = k
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("upsert operations: %w", pgcore.Classify(err))
	}
	return out, nil
}

// Resolve gives ids to what an encoding pass found missing: it inserts
// the unknown attribute keys, and interns the candidate values while
// their key stays under MaxInternPerKey distinct values (keys that reach
// it are no longer interned; candidates left out are written inline).
// The pass is then run again for the rows that needed them.
func (d *Dictionaries) Resolve(ctx context.Context, miss *Missing) error {
	kids, err := d.keyIDsFor(ctx, miss.keys)
	if err != nil {
		return err
	}
	for k, id := range d.cachedKeyIDs(miss.values) {
		kids[k] = id
	}
	return d.valueIDsFor(ctx, miss.values, kids)
}

// keyIDsFor returns ids for attribute keys, inserting unknown ones.
func (d *Dictionaries) keyIDsFor(ctx context.Context, keys map[string]struct{}) (map[string]uint32, error) {
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
	rows, err := d.pool.Query(ctx, upsertKeysSQL, missing)
	if err != nil {
		return nil, fmt.Errorf("upsert attribute keys: %w", pgcore.Classify(err))
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
		return nil, fmt.Errorf("upsert attribute keys: %w", pgcore.Classify(err))
	}
	return out, nil
}

// putValue caches an interned value id. Callers hold d.mu.
func (d *Dictionaries) putValue(vk valueKey, id uint32) {
	m := d.valueIDs[vk.key]
	if m == nil {
		m = map[string]uint32{}
		d.valueIDs[vk.key] = m
	}
	m[vk.value] = id
}

// RecordServiceKeys records which attribute keys the services' spans
// carry, as the encoding pass found them missing from the cache.
func (d *Dictionaries) RecordServiceKeys(ctx context.Context, miss *Missing) error {
	pairs := miss.serviceKeys
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
	if _, err := d.pool.Exec(ctx, insertServiceKeysSQL, svcs, keys); err != nil {
		return fmt.Errorf("record service attribute keys: %w", pgcore.Classify(err))
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
// database while their key stays under MaxInternPerKey distinct values;
// keys that reach it are no longer interned. Candidates left out are
// written inline.
func (d *Dictionaries) valueIDsFor(ctx context.Context, cands map[stringPair]struct{}, keys map[string]uint32) error {
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
		rows, err := d.pool.Query(ctx, countValuesSQL, unknownKeys)
		if err != nil {
			return fmt.Errorf("count interned values: %w", pgcore.Classify(err))
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
			return fmt.Errorf("count interned values: %w", pgcore.Classify(err))
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
		if d.valueCount[vk.key]+admitted[vk.key] >= MaxInternPerKey {
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
	rows, err := d.pool.Query(ctx, internValuesSQL, kids, vals)
	if err != nil {
		return fmt.Errorf("intern attribute values: %w", pgcore.Classify(err))
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
		return fmt.Errorf("intern attribute values: %w", pgcore.Classify(err))
	}
	return nil
}

// loadValues makes sure every interned value id in ids is cached.
func (d *Dictionaries) loadValues(ctx context.Context, ids map[uint32]struct{}) error {
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
	rows, err := d.pool.Query(ctx, valuesByIDSQL, missing)
	if err != nil {
		return fmt.Errorf("load attribute values: %w", pgcore.Classify(err))
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
		return fmt.Errorf("load attribute values: %w", pgcore.Classify(err))
	}
	return nil
}

// cachedKeyIDs returns the cached ids of the keys of the given values.
func (d *Dictionaries) cachedKeyIDs(values map[stringPair]struct{}) map[string]uint32 {
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

// EnsureResources inserts the resources not yet known to exist.
func (d *Dictionaries) EnsureResources(ctx context.Context, res []ResourceRow) error {
	var ids []int64
	var svcs []int32
	var rb, sb [][]byte
	d.mu.RLock()
	for _, r := range res {
		if !d.resources[r.ID] {
			ids, svcs, rb, sb = append(ids, r.ID), append(svcs, r.Service), append(rb, r.Resource), append(sb, r.Scope)
		}
	}
	d.mu.RUnlock()
	if len(ids) == 0 {
		return nil
	}
	sortResources(ids, svcs, rb, sb)
	if _, err := d.pool.Exec(ctx, insertResourcesSQL, ids, svcs, rb, sb); err != nil {
		return fmt.Errorf("insert resources: %w", pgcore.Classify(err))
	}
	d.mu.Lock()
	d.trim()
	for _, id := range ids {
		d.resources[id] = true
	}
	d.mu.Unlock()
	return nil
}

// Names returns the Names of the cached keys and values; LoadNames must
// have run for the ids of the payloads being decoded.
func (d *Dictionaries) Names() Names { return lookup{d} }

// lookup adapts Dictionaries to Names.
type lookup struct{ d *Dictionaries }

func (l lookup) KeyName(id uint32) (string, bool) {
	l.d.mu.RLock()
	defer l.d.mu.RUnlock()
	k, ok := l.d.keyName[id]
	return k, ok
}

func (l lookup) ValueName(id uint32) (string, bool) {
	l.d.mu.RLock()
	defer l.d.mu.RUnlock()
	v, ok := l.d.valueName[id]
	return v, ok
}

// LoadNames makes sure every key and value id r recorded is cached.
func (d *Dictionaries) LoadNames(ctx context.Context, r *Recorder) error {
	if err := d.loadKeys(ctx, r.keys); err != nil {
		return err
	}
	return d.loadValues(ctx, r.values)
}

// loadKeys makes sure every id in ids is cached.
func (d *Dictionaries) loadKeys(ctx context.Context, ids map[uint32]struct{}) error {
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
	rows, err := d.pool.Query(ctx, keysByIDSQL, missing)
	if err != nil {
		return fmt.Errorf("load attribute keys: %w", pgcore.Classify(err))
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
		return fmt.Errorf("load attribute keys: %w", pgcore.Classify(err))
	}
	return nil
}

// Operations returns the operations with the given ids.
func (d *Dictionaries) Operations(ctx context.Context, ids map[int32]struct{}) (map[int32]Operation, error) {
	out := make(map[int32]Operation, len(ids))
	var missing []int32
	d.mu.RLock()
	for id := range ids {
		if o, ok := d.opByID[id]; ok {
			out[id] = o
		} else {
			missing = append(missing, id)
		}
	}
	d.mu.RUnlock()
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := d.pool.Query(ctx, operationsByIDSQL, missing)
	if err != nil {
		return nil, fmt.Errorf("load operations: %w", pgcore.Classify(err))
	}
	var id int32
	var o Operation
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err = pgx.ForEachRow(rows, []any{&id, &o.Service, &o.Name, &o.Kind}, func() error {
		out[id] = o
		d.opByID[id] = o
		d.opIDs[o] = id
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load operations: %w", pgcore.Classify(err))
	}
	return out, nil
}

// ServiceNames returns the names of the given service ids.
func (d *Dictionaries) ServiceNames(ctx context.Context, ids map[int32]struct{}) (map[int32]string, error) {
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
	rows, err := d.pool.Query(ctx, servicesByIDSQL, missing)
	if err != nil {
		return nil, fmt.Errorf("load services: %w", pgcore.Classify(err))
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
		return nil, fmt.Errorf("load services: %w", pgcore.Classify(err))
	}
	return out, nil
}

// Resources returns the decoded resources with the given ids. The
// returned values are shared with the cache: callers copy them.
func (d *Dictionaries) Resources(ctx context.Context, ids map[int64]struct{}) (map[int64]Resource, error) {
	out := make(map[int64]Resource, len(ids))
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
	rows, err := d.pool.Query(ctx, resourcesByIDSQL, missing)
	if err != nil {
		return nil, fmt.Errorf("load resources: %w", pgcore.Classify(err))
	}
	var id int64
	var svc int32
	var rb, sb []byte
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trim()
	_, err = pgx.ForEachRow(rows, []any{&id, &svc, &rb, &sb}, func() error {
		info := Resource{Service: svc, Resource: pcommon.NewResource(), Scope: pcommon.NewInstrumentationScope()}
		if err := DecodeResource(rb, sb, info.Resource, info.Scope); err != nil {
			return fmt.Errorf("resource %d: %w", id, err)
		}
		out[id] = info
		d.resInfo[id] = info
		d.resources[id] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load resources: %w", pgcore.Classify(err))
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
