import { describe, expect, it } from 'vitest';
import {
  apiParams, assignLayers, backEdges, clockTime, completeNodes, curveY, edgeKey, edgeLabel, errorTint, formatLatency, formatPercent,
  formatRate, layoutMap, mapSearch, markText, nodeLinks, normalizeMap, promString, redQueries, stateFromSearch,
  topOperationsQuery, truncate, textUnits, type MapEdge, type MapNode, type Tr,
} from './servicemap';
import { decodeQuery } from './query';

// A translator with the English texts the functions use, independent of the test machine's language.
const texts: Record<string, string> = {
  'map.reqPerSec': 'req/s',
  'map.mark.breakerOpen': 'breaker open on {instance} since {since}',
  'map.mark.breakerHalfOpen': 'breaker half-open on {instance} since {since}',
  'map.mark.ejected': '{instance} ejected since {since}',
  'map.mark.retryBudget': 'retry budget exhausted on {instance} since {since}',
  'map.mark.other': '{kind} on {instance} since {since}',
  'map.mark.anyInstance': 'all instances',
};
const tr: Tr = (key, vars) => (texts[key] ?? key).replace(/\{(\w+)\}/g, (m, k) => (vars && k in vars ? String(vars[k]) : m));

function node(id: string, kind = 'service', error_rate = 0): MapNode {
  return { id, kind, calls: 10, errors: 0, rate: 1, error_rate, p50: 0.001, p95: 0.002, p99: 0.003 };
}
function edge(client: string, server: string, connection_type = ''): MapEdge {
  return { client, server, connection_type, calls: 10, failed: 0, rate: 1, error_rate: 0, p50: 0.001, p95: 0.002, p99: 0.003, marks: [] };
}
function layerOf(l: ReturnType<typeof layoutMap>): Record<string, number> {
  return Object.fromEntries(l.nodes.map((n) => [n.id, n.layer]));
}

describe('service map layout', () => {
  it('puts callers left and databases and queues in the last layer', () => {
    const nodes = [node('user', 'user'), node('gateway'), node('users'), node('orders'), node('postgres', 'database'), node('kafka', 'messaging')];
    const edges = [
      edge('user', 'gateway'), edge('gateway', 'users'), edge('gateway', 'orders'), edge('orders', 'users'),
      edge('orders', 'kafka', 'messaging_system'), edge('gateway', 'postgres', 'database'),
    ];
    const l = layoutMap(nodes, edges);
    expect(layerOf(l)).toEqual({ user: 0, gateway: 1, orders: 2, users: 3, postgres: 3, kafka: 3 });
    // x grows with the layer, the boxes of a layer do not overlap.
    const byId = Object.fromEntries(l.nodes.map((n) => [n.id, n]));
    expect(byId.user.x).toBeLessThan(byId.gateway.x);
    for (const layer of l.layers) {
      for (let i = 1; i < layer.length; i++) expect(byId[layer[i]].y).toBeGreaterThanOrEqual(byId[layer[i - 1]].y + byId[layer[i - 1]].h);
    }
    expect(l.edges).toHaveLength(6);
    expect(l.edges.every((e) => e.path.startsWith('M') && !e.back)).toBe(true);
    // Every node and edge fits in the drawing.
    for (const n of l.nodes) {
      expect(n.x + n.w).toBeLessThanOrEqual(l.width);
      expect(n.y + n.h).toBeLessThanOrEqual(l.height);
    }
  });

  it('routes a long edge through the layers it crosses', () => {
    const l = layoutMap([], [edge('a', 'b'), edge('b', 'c'), edge('a', 'c')]);
    expect(layerOf(l)).toEqual({ a: 0, b: 1, c: 2 });
    const long = l.edges.find((e) => e.key === 'a->c')!;
    // Two curves joined by a straight run through the layer-1 slot.
    expect(long.path.match(/C/g)).toHaveLength(2);
    expect(long.path).toContain(' L');
    const a = l.nodes.find((n) => n.id === 'a')!;
    const c = l.nodes.find((n) => n.id === 'c')!;
    expect(long.labelX).toBeGreaterThan(a.x + a.w);
    expect(long.labelX).toBeLessThan(c.x);
  });

  it('breaks cycles and draws the closing edge as a back edge', () => {
    const edges = [edge('a', 'b'), edge('b', 'c'), edge('c', 'a'), edge('c', 'c')];
    const nodes = completeNodes([], edges);
    const back = backEdges(nodes, edges);
    expect([...back].sort()).toEqual(['c->a', 'c->c']);
    expect(Object.fromEntries(assignLayers(nodes, edges, back))).toEqual({ a: 0, b: 1, c: 2 });
    const l = layoutMap([], edges);
    const closing = l.edges.find((e) => e.key === 'c->a')!;
    expect(closing.back).toBe(true);
    const self = l.edges.find((e) => e.key === 'c->c')!;
    expect(self.self).toBe(true);
    // The closing edge runs right to left, from c's left side through b's layer to a's right side.
    const byId = Object.fromEntries(l.nodes.map((n) => [n.id, n]));
    expect(closing.path.startsWith(`M${byId.c.x},`)).toBe(true);
    expect(closing.path).toContain(` ${byId.a.x + byId.a.w},`);
    expect(closing.labelX).toBe(byId.b.x + byId.b.w / 2);
    expect(l.edges.filter((e) => e.back).map((e) => e.key).sort()).toEqual(['c->a', 'c->c']);
  });

  it('keeps the two directions of a pair apart', () => {
    const l = layoutMap([], [edge('a', 'b'), edge('b', 'a')]);
    const ab = l.edges.find((e) => e.key === 'a->b')!;
    const ba = l.edges.find((e) => e.key === 'b->a')!;
    expect(ba.back).toBe(true);
    expect(ab.path).not.toBe(ba.path);
    expect(ab.labelY).toBeLessThan(ba.labelY - 11);
  });

  it('starts cycle breaking from the user and the uncalled nodes', () => {
    // b <-> c, called from a: the edge back towards a's side is the one reversed.
    const edges = [edge('c', 'b'), edge('b', 'c'), edge('a', 'b')];
    expect([...backEdges(completeNodes([], edges), edges)]).toEqual(['c->b']);
    // A pure cycle starts at the user node whatever its name.
    const ring = [edge('zz-user', 'm'), edge('m', 'zz-user')];
    expect([...backEdges([node('m'), node('zz-user', 'user')], ring)]).toEqual(['m->zz-user']);
  });

  it('is deterministic: input order does not change the positions', () => {
    const nodes = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((id) => node(id)).concat([node('db', 'database')]);
    const edges = [edge('a', 'b'), edge('a', 'c'), edge('b', 'd'), edge('c', 'd'), edge('c', 'e'), edge('e', 'f'), edge('f', 'c'),
      edge('g', 'e'), edge('d', 'db', 'database'), edge('b', 'db', 'database'), edge('a', 'g')];
    const one = layoutMap(nodes, edges);
    const shuffled = layoutMap(nodes.slice().reverse(), [...edges.slice(5), ...edges.slice(0, 5)].reverse());
    expect(shuffled).toEqual(one);
    expect(layoutMap(nodes, edges)).toEqual(one);
  });

  it('moves labels towards the quieter end but keeps them off the boxes', () => {
    expect(curveY(0.5)).toBeCloseTo(0.5, 6);
    expect(curveY(0.658)).toBeCloseTo(0.784, 2);
    expect(curveY(0)).toBeCloseTo(0, 6);
    const opts = { nodeWidth: 100, layerGap: 200, labelWidth: 150 };
    const l = layoutMap([], [edge('gw', 'a'), edge('gw', 'b'), edge('gw', 'c')], opts);
    const gwRight = l.nodes.find((n) => n.id === 'gw')!.x + 100;
    for (const e of l.edges) {
      // Fan-out: past the middle, yet the 150 px label ends before the target box.
      expect(e.labelX).toBeGreaterThan(gwRight + 100);
      expect(e.labelX + 75).toBeLessThanOrEqual(gwRight + 200);
    }
    const wide = layoutMap([], [edge('gw', 'a'), edge('gw', 'b')], { ...opts, labelWidth: 250 });
    for (const e of wide.edges) expect(e.labelX).toBe(gwRight + 100);
  });

  it('reduces crossings with the barycentre ordering', () => {
    // a1 calls x2, a2 calls x1: the second layer follows the first.
    const l = layoutMap([], [edge('a1', 'x2'), edge('a2', 'x1')]);
    expect(l.layers).toEqual([['a1', 'a2'], ['x2', 'x1']]);
  });

  it('adds nodes the list lacks and lays out nodes without edges', () => {
    const nodes = completeNodes([node('lonely')], [edge('api', 'mysql', 'database'), edge('api', 'stripe.com', 'virtual_node'), edge('api', 'q', 'messaging_system')]);
    expect(nodes.map((n) => [n.id, n.kind])).toEqual([['api', 'service'], ['lonely', 'service'], ['mysql', 'database'], ['q', 'messaging'], ['stripe.com', 'peer']]);
    // A database nobody calls still goes right.
    expect(layerOf(layoutMap([node('pg', 'database')], [edge('a', 'b')]))).toEqual({ a: 0, b: 1, pg: 1 });
    const l = layoutMap([node('lonely')], []);
    expect(l.nodes).toHaveLength(1);
    expect(l.width).toBeGreaterThan(0);
    expect(layoutMap([], [])).toMatchObject({ nodes: [], edges: [], width: 0, height: 0 });
  });

  it('lays out a big map', () => {
    const edges: MapEdge[] = [];
    for (let i = 0; i < 200; i++) edges.push(edge('svc' + i, 'svc' + ((i * 7 + 3) % 200)), edge('svc' + i, 'db' + (i % 10), 'database'));
    const l = layoutMap([], edges);
    expect(l.nodes).toHaveLength(210);
    expect(l.edges).toHaveLength(400);
    expect(new Set(l.nodes.map((n) => `${n.x},${n.y}`)).size).toBe(210);
  });
});

describe('service map texts', () => {
  it('formats edge labels', () => {
    expect(edgeLabel({ rate: 0.13, error_rate: 0.025, p95: 0.02 }, tr)).toBe('0.13 req/s · 2.5% · 20ms');
    expect(edgeLabel({ rate: 1234.5, error_rate: 0, p95: null }, tr)).toBe('1235 req/s · 0% · –');
    expect(edgeLabel({ rate: 12.345, error_rate: 0.5, p95: 1.5 }, tr)).toBe('12.3 req/s · 50% · 1.5s');
    expect(formatRate(0.0004)).toBe('<0.001');
    expect(formatRate(2.5)).toBe('2.5');
    expect(formatPercent(0.0002)).toBe('<0.1%');
    expect(formatLatency(0.0005)).toBe('500µs');
  });
  it('describes marks with the local time, and the date when not today', () => {
    const now = new Date(2026, 11, 7, 10, 0);
    const since = new Date(2026, 11, 7, 3, 12).toISOString();
    expect(markText({ kind: 'breaker_open', instance: '127.0.0.1:3003', since, value: 2 }, now, tr)).toBe('breaker open on 127.0.0.1:3003 since 03:12');
    expect(markText({ kind: 'breaker_half_open', instance: 'a:1', since, value: 1 }, now, tr)).toBe('breaker half-open on a:1 since 03:12');
    expect(markText({ kind: 'ejected', instance: 'a:1', since, value: 1 }, now, tr)).toBe('a:1 ejected since 03:12');
    expect(markText({ kind: 'retry_budget_exhausted', instance: '', since, value: 1 }, now, tr)).toBe('retry budget exhausted on all instances since 03:12');
    expect(markText({ kind: 'rate_limited', instance: 'b', since, value: 1 }, now, tr)).toBe('rate limited on b since 03:12');
    // Without an instance the mark is about the whole service.
    expect(markText({ kind: 'breaker_open', instance: '', since, value: 2 }, now, tr, 'payments')).toBe('breaker open on payments since 03:12');
    const yesterday = new Date(2026, 11, 6, 23, 5).toISOString();
    expect(markText({ kind: 'ejected', instance: 'x', since: yesterday, value: 1 }, now, tr)).toBe('x ejected since 2026-12-06 23:05');
    expect(clockTime(new Date('nope'), now)).toBe('–');
  });
  it('tints nodes by error ratio', () => {
    expect(errorTint(0)).toBe(0);
    expect(errorTint(0.01)).toBeGreaterThan(0);
    expect(errorTint(0.1)).toBeGreaterThan(errorTint(0.01));
    expect(errorTint(1)).toBe(0.6);
  });
  it('truncates names by width, CJK counting double', () => {
    expect(textUnits('用户a')).toBe(5);
    expect(truncate('short', 10)).toBe('short');
    expect(truncate('a-very-long-service-name', 10)).toBe('a-very-lo…');
    expect(truncate('用户服务用户服务', 9)).toBe('用户服务…');
  });
});

describe('service map state', () => {
  it('round-trips the URL state', () => {
    const s = { range: '1h', from: undefined, to: undefined, env: 'prod', ns: 'shop', node: '', edge: 'gateway->user-service' };
    const q = mapSearch(s);
    expect(q).toBe('?range=1h&env=prod&ns=shop&edge=gateway-%3Euser-service');
    expect(stateFromSearch(q)).toEqual(s);
    const abs = { range: undefined, from: '1765077120000', to: '1765080720000', env: '', ns: '', node: '用户', edge: '' };
    expect(stateFromSearch(mapSearch(abs))).toEqual(abs);
    // A custom window wins over a quick pick.
    expect(decodeQuery(mapSearch({ ...abs, range: '5m' }))).toEqual({ from: abs.from, to: abs.to, node: '用户' });
    expect(mapSearch({})).toBe('');
    expect(stateFromSearch('')).toEqual({ range: undefined, from: undefined, to: undefined, env: '', ns: '', node: '', edge: '' });
  });
  it('builds the API parameters', () => {
    const win = { start: Date.parse('2026-12-07T03:00:00Z'), end: Date.parse('2026-12-07T03:15:00Z') };
    expect(apiParams(stateFromSearch('?env=+prod+&ns='), win)).toEqual({
      start: '2026-12-07T03:00:00.000Z', end: '2026-12-07T03:15:00.000Z', 'attr.deployment.environment': 'prod',
    });
    expect(apiParams(stateFromSearch('?ns=shop'), win)['attr.k8s.namespace.name']).toBe('shop');
  });
  it('merges the connection types of a pair into one edge', () => {
    const mark = { kind: 'breaker_open', instance: 'a:1', since: '2026-12-07T03:12:00Z', value: 2 };
    const m = normalizeMap({
      nodes: [], edges: [
        { ...edge('a', 'b'), calls: 30, failed: 3, rate: 0.5, p95: 0.1, marks: [mark] },
        { ...edge('a', 'b', 'messaging_system'), calls: 10, failed: 1, rate: 0.25, p95: 0.3, marks: [mark] },
        edge('a', 'c'),
      ],
    });
    expect(m.edges.map(edgeKey)).toEqual(['a->b', 'a->c']);
    expect(m.edges[0]).toMatchObject({ calls: 40, failed: 4, rate: 0.75, error_rate: 0.1, p95: 0.1, connection_type: '', connection_types: ['', 'messaging_system'] });
    expect(m.edges[0].marks).toEqual([mark]);
  });

  it('normalizes nulls', () => {
    const m = normalizeMap({ start: 's', end: 'e', nodes: null as any, edges: [{ ...edge('a', 'b'), marks: null }], warnings: null as any });
    expect(m.nodes).toEqual([]);
    expect(m.edges[0].marks).toEqual([]);
    expect(m.warnings).toEqual([]);
    expect(edgeKey(m.edges[0])).toBe('a->b');
  });
});

describe('service map queries and links', () => {
  it('escapes label values in PromQL', () => {
    expect(promString('a"b\\c')).toBe('"a\\"b\\\\c"');
    const q = redQueries('we"ird');
    expect(q.rate).toBe('sum(rate(traces_span_metrics_calls{service_name="we\\"ird",span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"}[1m]))');
    expect(q.errors).toContain('status_code="STATUS_CODE_ERROR"');
    expect(q.errors.startsWith('100 * ')).toBe(true);
    expect(q.p95).toBe('histogram_quantile(0.95, sum by (le) (rate(traces_span_metrics_duration_bucket{service_name="we\\"ird",span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"}[1m])))');
    expect(topOperationsQuery('api', 900.4)).toBe('topk(10, sum by (span_name) (increase(traces_span_metrics_calls{service_name="api",span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"}[900s])))');
  });
  it('links to the pages with the window they read', () => {
    const rel = nodeLinks('api', { range: '1h' });
    expect(rel.traces).toBe('/traces?service=api&range=1h');
    expect(rel.logs).toBe('/logs?service=api&range=1h');
    expect(rel.alerts).toBe('/alerts?tab=alerts');
    expect(decodeQuery(rel.metrics.slice('/explore'.length))).toEqual({ q: redQueries('api').rate, range: '1h' });
    expect(nodeLinks('api', {}).traces).toBe('/traces?service=api&range=15m');
    expect(nodeLinks('api', { from: '1', to: '2' }).logs).toBe('/logs?service=api&from=1&to=2');
  });
});
