// The service map's data shaping, as pure functions: the URL state, the
// API parameters, the layered left-to-right layout (callers left,
// databases and queues right), edge labels, mark texts, the PromQL of a
// node's RED charts and the links to the other pages.
import type { MessageKey } from './i18n';
import { encodeQuery, decodeQuery } from './query';
import { formatDuration } from './format';
import type { RangeState } from './timerange';

export type NodeKind = 'service' | 'database' | 'messaging' | 'peer' | 'user';

export interface MapNode {
  id: string;
  kind: NodeKind | string;
  calls: number;
  errors: number;
  rate: number;
  error_rate: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface Mark {
  kind: string;
  instance: string;
  since: string;
  value: number;
}

export interface MapEdge {
  client: string;
  server: string;
  connection_type: string;
  calls: number;
  failed: number;
  rate: number;
  error_rate: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  marks?: Mark[] | null;
  /** every connection type of the pair, once normalizeMap merged them */
  connection_types?: string[];
}

export interface ServiceMap {
  start: string;
  end: string;
  nodes: MapNode[];
  edges: MapEdge[];
  warnings: string[];
}

export interface EdgeTrace {
  traceID: string;
  time: string;
  duration_ms: number;
  failed: boolean;
  connection_type: string;
}

/** Tr is the translator the text functions use (i18n's t, or a stub in tests). */
export type Tr = (key: MessageKey, vars?: Record<string, string | number>) => string;

/* ---------- URL state ---------- */

export const DEFAULT_RANGE = '15m';

export interface MapState extends RangeState {
  /** deployment.environment filter */
  env: string;
  /** k8s.namespace.name filter */
  ns: string;
  /** the selected node's id */
  node: string;
  /** the selected edge's key, client->server */
  edge: string;
}

/** stateFromSearch reads the map's state from a query string. */
export function stateFromSearch(search: string): MapState {
  const q = decodeQuery(search);
  return { range: q.range, from: q.from, to: q.to, env: q.env ?? '', ns: q.ns ?? '', node: q.node ?? '', edge: q.edge ?? '' };
}

/** mapSearch is the inverse of stateFromSearch ("" when everything is default). */
export function mapSearch(s: Partial<MapState>): string {
  return encodeQuery({ range: s.from ? undefined : s.range, from: s.from, to: s.from ? s.to : undefined, env: s.env, ns: s.ns, node: s.node, edge: s.edge });
}

/** apiParams gives the parameters of GET /api/vigil/servicemap for a state and its resolved window (ms). */
export function apiParams(s: MapState, win: { start: number; end: number }): Record<string, string> {
  const p: Record<string, string> = { start: new Date(win.start).toISOString(), end: new Date(win.end).toISOString() };
  if (s.env.trim()) p['attr.deployment.environment'] = s.env.trim();
  if (s.ns.trim()) p['attr.k8s.namespace.name'] = s.ns.trim();
  return p;
}

/** edgeKey names an edge as in data-edge and the URL: client->server. */
export function edgeKey(e: { client: string; server: string }): string {
  return e.client + '->' + e.server;
}

/**
 * normalizeMap turns the API's nulls into empty lists and merges the edges
 * of one client and server over several connection types into one (the
 * map draws, and the traces API answers, per pair): counts and rates add
 * up, the latencies are the busiest edge's, the marks (which the API
 * repeats on every edge of the pair) are kept once.
 */
export function normalizeMap(m: Partial<ServiceMap> | null | undefined): ServiceMap {
  const edges: MapEdge[] = [];
  const byKey = new Map<string, MapEdge>();
  for (const e of m?.edges ?? []) {
    const k = edgeKey(e);
    const prev = byKey.get(k);
    if (!prev) {
      const copy = { ...e, marks: (e.marks ?? []).slice(), connection_types: [e.connection_type] };
      byKey.set(k, copy);
      edges.push(copy);
      continue;
    }
    const busier = e.calls > prev.calls ? e : prev;
    const calls = prev.calls + e.calls;
    const failed = prev.failed + e.failed;
    const marks = prev.marks ?? [];
    for (const x of e.marks ?? []) {
      if (!marks.some((y) => y.kind === x.kind && y.instance === x.instance)) marks.push(x);
    }
    Object.assign(prev, {
      connection_type: busier.connection_type,
      connection_types: [...(prev.connection_types ?? []), e.connection_type],
      calls, failed, rate: prev.rate + e.rate, error_rate: calls > 0 ? failed / calls : 0,
      p50: busier.p50, p95: busier.p95, p99: busier.p99, marks,
    });
  }
  return {
    start: m?.start ?? '',
    end: m?.end ?? '',
    nodes: (m?.nodes ?? []).map((n) => ({ ...n })),
    edges,
    warnings: m?.warnings ?? [],
  };
}

/* ---------- formatting ---------- */

/** formatRate renders requests per second with a precision that fits its size. */
export function formatRate(r: number | null | undefined): string {
  if (r === null || r === undefined || !Number.isFinite(r)) return '–';
  if (r === 0) return '0';
  const a = Math.abs(r);
  if (a >= 100) return String(Math.round(r));
  if (a >= 10) return String(Number(r.toFixed(1)));
  if (a >= 1) return String(Number(r.toFixed(2)));
  if (a < 0.001) return '<0.001';
  return String(Number(r.toPrecision(2)));
}

/** formatPercent renders a ratio (0.025) as a percentage (2.5%). */
export function formatPercent(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  if (x === 0) return '0%';
  const p = x * 100;
  if (p < 0.1) return '<0.1%';
  if (p >= 10) return Math.round(p) + '%';
  return Number(p.toFixed(1)) + '%';
}

/** formatLatency renders a latency given in seconds; null (no quantile) is "–". */
export function formatLatency(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '–';
  return formatDuration(s * 1e6);
}

/** edgeLabel is the text on an edge: "rate req/s · err % · p95". */
export function edgeLabel(e: { rate: number; error_rate: number; p95: number | null }, tr: Tr): string {
  return `${formatRate(e.rate)} ${tr('map.reqPerSec')} · ${formatPercent(e.error_rate)} · ${formatLatency(e.p95)}`;
}

/** nodeSubtitle is the second line of a node: the kind for databases, queues and external peers, then rate and error ratio. */
export function nodeSubtitle(n: MapNode, tr: Tr): string {
  const figures = `${formatRate(n.rate)} ${tr('map.reqPerSec')} · ${formatPercent(n.error_rate)}`;
  return n.kind === 'service' || n.kind === 'user' ? figures : `${kindName(n.kind, tr)} · ${figures}`;
}

const kinds: Record<string, MessageKey> = {
  service: 'map.kind.service',
  database: 'map.kind.database',
  messaging: 'map.kind.messaging',
  peer: 'map.kind.peer',
  user: 'map.kind.user',
};

export function kindName(kind: string, tr: Tr): string {
  return kinds[kind] ? tr(kinds[kind]) : kind;
}

const connections: Record<string, MessageKey> = {
  '': 'map.conn.direct',
  database: 'map.conn.database',
  messaging_system: 'map.conn.messaging',
  virtual_node: 'map.conn.virtual',
};

export function connectionName(c: string, tr: Tr): string {
  return connections[c] ? tr(connections[c]) : c;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** clockTime renders a time as HH:MM (local) when it is on now's day, else as YYYY-MM-DD HH:MM. */
export function clockTime(d: Date, now: Date): string {
  if (isNaN(d.getTime())) return '–';
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate();
  return sameDay ? hm : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
}

const markKeys: Record<string, MessageKey> = {
  breaker_open: 'map.mark.breakerOpen',
  breaker_half_open: 'map.mark.breakerHalfOpen',
  ejected: 'map.mark.ejected',
  retry_budget_exhausted: 'map.mark.retryBudget',
};

/**
 * markText describes a mark, e.g. "breaker open on 127.0.0.1:3003 since
 * 03:12"; a mark without an instance is about the whole service (server).
 */
export function markText(m: Mark, now: Date, tr: Tr, server = ''): string {
  const vars = {
    instance: m.instance || server || tr('map.mark.anyInstance'),
    since: clockTime(new Date(m.since), now),
    kind: m.kind.replace(/_/g, ' '),
  };
  return tr(markKeys[m.kind] ?? 'map.mark.other', vars);
}

/** errorTint is the opacity of a node's red overlay for its error ratio: 0 without errors, then 0.15 to 0.6. */
export function errorTint(errorRate: number): number {
  if (!(errorRate > 0)) return 0;
  return Math.min(0.6, 0.15 + errorRate * 2.5);
}

/** edgeWidth is an edge's stroke width, growing with the logarithm of its rate. */
export function edgeWidth(rate: number): number {
  if (!(rate > 0)) return 1.25;
  return Math.min(5, 1.25 + Math.log10(1 + rate * 10));
}

/** textUnits measures text in "narrow character" units: a CJK or other wide character counts 2. */
export function textUnits(s: string): number {
  let n = 0;
  for (const ch of s) n += /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]|[\u{1f300}-\u{1faff}\u{20000}-\u{3fffd}]/u.test(ch) ? 2 : 1;
  return n;
}

/** estimateTextWidth approximates the rendered width in px of s at a font size. */
export function estimateTextWidth(s: string, fontSize: number): number {
  return textUnits(s) * fontSize * 0.6;
}

/** truncate shortens s to at most max units (see textUnits), ending it with "…". */
export function truncate(s: string, max: number): string {
  if (textUnits(s) <= max) return s;
  let out = '';
  let n = 0;
  for (const ch of s) {
    const w = textUnits(ch);
    if (n + w > max - 1) break;
    out += ch;
    n += w;
  }
  return out + '…';
}

/* ---------- layout ---------- */

export interface LayoutOptions {
  nodeWidth: number;
  nodeHeight: number;
  /** horizontal space between two layers' boxes (edge labels live there) */
  layerGap: number;
  /** vertical space between two boxes of a layer */
  rowGap: number;
  /** height of the slot a long edge takes in a layer it crosses */
  dummyHeight: number;
  /** width of the widest edge label, kept clear of the boxes */
  labelWidth: number;
  margin: number;
}

export const defaultLayoutOptions: LayoutOptions = {
  nodeWidth: 172,
  nodeHeight: 50,
  layerGap: 210,
  rowGap: 36,
  dummyHeight: 22,
  labelWidth: 150,
  margin: 40,
};

export interface LaidNode {
  id: string;
  kind: string;
  layer: number;
  order: number;
  x: number;
  y: number;
  w: number;
  h: number;
  node: MapNode;
}

export interface LaidEdge {
  key: string;
  edge: MapEdge;
  /** back: the edge closes a cycle (it runs right to left). */
  back: boolean;
  self: boolean;
  /** the SVG path */
  path: string;
  /** the baseline of the label (centred on labelX) and of the first mark line */
  labelX: number;
  labelY: number;
  marksY: number;
}

export interface Layout {
  nodes: LaidNode[];
  edges: LaidEdge[];
  /** layers: the node ids of each layer, top to bottom (dummies left out) */
  layers: string[][];
  width: number;
  height: number;
}

const kindRank: Record<string, number> = { user: 0, service: 1, peer: 2, messaging: 3, database: 4 };
const rank = (k: string) => kindRank[k] ?? 2;
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function kindFromConnection(c: string): NodeKind {
  return c === 'database' ? 'database' : c === 'messaging_system' ? 'messaging' : c === 'virtual_node' ? 'peer' : 'service';
}

/** completeNodes returns the nodes plus a node for every edge end the list lacks, sorted by id. */
export function completeNodes(nodes: MapNode[], edges: MapEdge[]): MapNode[] {
  const byId = new Map<string, MapNode>();
  for (const n of nodes) byId.set(n.id, n);
  const blank = (id: string, kind: string): MapNode => ({ id, kind, calls: 0, errors: 0, rate: 0, error_rate: 0, p50: null, p95: null, p99: null });
  for (const e of edges) {
    if (!byId.has(e.client)) byId.set(e.client, blank(e.client, e.client === 'user' ? 'user' : 'service'));
    if (!byId.has(e.server)) byId.set(e.server, blank(e.server, kindFromConnection(e.connection_type)));
  }
  return [...byId.values()].sort((a, b) => cmp(a.id, b.id));
}

/**
 * backEdges picks the edges to leave out so that the rest is acyclic: a
 * depth-first search from the user nodes, then the nodes nobody calls,
 * then the rest (each group by id, successors by id) marks the edges that
 * reach a node still on the stack. Self-calls are always back edges.
 * The answer is a set of edge keys and does not depend on input order.
 */
export function backEdges(nodes: { id: string; kind: string }[], edges: { client: string; server: string }[]): Set<string> {
  const back = new Set<string>();
  const succ = new Map<string, string[]>();
  const indeg = new Map<string, number>();
  const ids = nodes.map((n) => n.id);
  for (const id of ids) {
    succ.set(id, []);
    indeg.set(id, 0);
  }
  for (const e of edges) {
    if (e.client === e.server) {
      back.add(edgeKey(e));
      continue;
    }
    if (!succ.has(e.client) || !succ.has(e.server)) continue;
    succ.get(e.client)!.push(e.server);
    indeg.set(e.server, indeg.get(e.server)! + 1);
  }
  for (const l of succ.values()) l.sort(cmp);
  const kindOf = new Map(nodes.map((n) => [n.id, n.kind]));
  const roots = ids.slice().sort((a, b) => {
    const ga = kindOf.get(a) === 'user' ? 0 : indeg.get(a) === 0 ? 1 : 2;
    const gb = kindOf.get(b) === 'user' ? 0 : indeg.get(b) === 0 ? 1 : 2;
    return ga - gb || cmp(a, b);
  });
  const state = new Map<string, 1 | 2>(); // 1 on the stack, 2 done
  for (const r of roots) {
    if (state.has(r)) continue;
    // Iterative DFS: a stack of [node, next successor index].
    const stack: [string, number][] = [[r, 0]];
    state.set(r, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const out = succ.get(top[0])!;
      if (top[1] >= out.length) {
        state.set(top[0], 2);
        stack.pop();
        continue;
      }
      const v = out[top[1]++];
      const st = state.get(v);
      if (st === 1) back.add(top[0] + '->' + v);
      else if (st === undefined) {
        state.set(v, 1);
        stack.push([v, 0]);
      }
    }
  }
  return back;
}

/**
 * assignLayers gives each node its layer: the longest path from a node
 * nobody calls over the acyclic edges; then databases and queues that call
 * nothing (even when nothing calls them) move to the last layer.
 */
export function assignLayers(nodes: { id: string; kind: string }[], edges: { client: string; server: string }[], back: Set<string>): Map<string, number> {
  const layer = new Map<string, number>();
  const succ = new Map<string, string[]>();
  const indeg = new Map<string, number>();
  const outAll = new Map<string, number>();
  for (const n of nodes) {
    succ.set(n.id, []);
    indeg.set(n.id, 0);
    outAll.set(n.id, 0);
    layer.set(n.id, 0);
  }
  for (const e of edges) {
    if (!succ.has(e.client) || !succ.has(e.server)) continue;
    outAll.set(e.client, outAll.get(e.client)! + 1);
    if (back.has(edgeKey(e))) continue;
    succ.get(e.client)!.push(e.server);
    indeg.set(e.server, indeg.get(e.server)! + 1);
  }
  // Kahn's order; ties by id keep it deterministic.
  const queue = nodes.map((n) => n.id).filter((id) => indeg.get(id) === 0).sort(cmp);
  while (queue.length) {
    const u = queue.shift()!;
    for (const v of succ.get(u)!) {
      layer.set(v, Math.max(layer.get(v)!, layer.get(u)! + 1));
      indeg.set(v, indeg.get(v)! - 1);
      if (indeg.get(v) === 0) queue.push(v);
    }
  }
  let max = 0;
  for (const l of layer.values()) max = Math.max(max, l);
  for (const n of nodes) {
    if ((n.kind === 'database' || n.kind === 'messaging') && outAll.get(n.id) === 0) layer.set(n.id, max);
  }
  return layer;
}

/**
 * curveY gives, for the curves the layout draws (horizontal tangents,
 * both control points half-way in x), the fraction of the way in y at the
 * point that is fx of the way in x: x(t) = 1.5t(1-t) + t³, y(t) = 3t² - 2t³.
 */
export function curveY(fx: number): number {
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 40; i++) {
    const t = (lo + hi) / 2;
    if (1.5 * t * (1 - t) + t * t * t < fx) lo = t;
    else hi = t;
  }
  const t = (lo + hi) / 2;
  return 3 * t * t - 2 * t * t * t;
}

interface Item {
  id: string;
  dummy: boolean;
  h: number;
}

function crossings(upper: Map<string, number>, lower: Map<string, number>, segs: [string, string][]): number {
  let c = 0;
  for (let i = 0; i < segs.length; i++) {
    const a1 = upper.get(segs[i][0])!;
    const b1 = lower.get(segs[i][1])!;
    for (let j = i + 1; j < segs.length; j++) {
      const d = (a1 - upper.get(segs[j][0])!) * (b1 - lower.get(segs[j][1])!);
      if (d < 0) c++;
    }
  }
  return c;
}

/**
 * layoutMap places the map left to right: layers from the acyclic part of
 * the edges, long edges routed through slots in the layers they cross,
 * each layer ordered by the barycentre heuristic (the ordering with the
 * fewest crossings wins), layers centred vertically. The result depends
 * only on the nodes and edges, not on their order.
 */
export function layoutMap(inNodes: MapNode[], inEdges: MapEdge[], opts: Partial<LayoutOptions> = {}): Layout {
  const o = { ...defaultLayoutOptions, ...opts };
  const nodes = completeNodes(inNodes, inEdges);
  const edges = inEdges.slice().sort((a, b) => cmp(a.client, b.client) || cmp(a.server, b.server));
  const backSet = backEdges(nodes, edges);
  const layer = assignLayers(nodes, edges, backSet);
  const nLayers = nodes.length ? Math.max(...nodes.map((n) => layer.get(n.id)!)) + 1 : 0;

  // Items per layer: nodes, and a dummy for each layer an edge crosses
  // (a back edge too: it runs right to left through its own slots).
  const items: Item[][] = Array.from({ length: nLayers }, () => []);
  for (const n of nodes) items[layer.get(n.id)!].push({ id: n.id, dummy: false, h: o.nodeHeight });
  const segsBetween: [string, string][][] = Array.from({ length: Math.max(0, nLayers - 1) }, () => []);
  const chains = new Map<string, string[]>(); // edge key -> dummy ids in layer order
  for (const e of edges) {
    const k = edgeKey(e);
    if (e.client === e.server) continue;
    const lc = layer.get(e.client)!;
    const ls = layer.get(e.server)!;
    if (lc === ls) continue;
    const [first, last] = lc < ls ? [e.client, e.server] : [e.server, e.client];
    const chain: string[] = [];
    let prev = first;
    for (let l = Math.min(lc, ls) + 1; l < Math.max(lc, ls); l++) {
      const d = `\u0000${k}\u0000${l}`;
      items[l].push({ id: d, dummy: true, h: o.dummyHeight });
      chain.push(d);
      segsBetween[l - 1].push([prev, d]);
      prev = d;
    }
    segsBetween[Math.max(lc, ls) - 1].push([prev, last]);
    chains.set(k, chain);
  }

  // Ordering.
  const kindOf = new Map(nodes.map((n) => [n.id, n.kind]));
  const initialKey = (it: Item) => (it.dummy ? 5 : rank(kindOf.get(it.id)!));
  let order: string[][] = items.map((l) => l.slice().sort((a, b) => initialKey(a) - initialKey(b) || cmp(a.id, b.id)).map((i) => i.id));
  const ups = new Map<string, string[]>();
  const downs = new Map<string, string[]>();
  for (const segs of segsBetween) {
    for (const [a, b] of segs) {
      if (!downs.has(a)) downs.set(a, []);
      if (!ups.has(b)) ups.set(b, []);
      downs.get(a)!.push(b);
      ups.get(b)!.push(a);
    }
  }
  const positions = (ord: string[][]) => ord.map((l) => new Map(l.map((id, i) => [id, i])));
  const totalSegs = segsBetween.reduce((s, x) => s + x.length, 0);
  const countAll = (ord: string[][]) => {
    if (totalSegs > 4000) return 0;
    const pos = positions(ord);
    let c = 0;
    for (let l = 0; l + 1 < ord.length; l++) c += crossings(pos[l], pos[l + 1], segsBetween[l]);
    return c;
  };
  const sortBy = (ids: string[], neigh: Map<string, string[]>, pos: Map<string, number>) => {
    const cur = new Map(ids.map((id, i) => [id, i]));
    const bary = new Map<string, number>();
    for (const id of ids) {
      const ns = neigh.get(id);
      bary.set(id, ns && ns.length ? ns.reduce((s, n) => s + pos.get(n)!, 0) / ns.length : NaN);
    }
    // Nodes without neighbours keep their index; the others move between them.
    const free = ids.filter((id) => !Number.isNaN(bary.get(id)!));
    const sorted = free.slice().sort((a, b) => bary.get(a)! - bary.get(b)! || cur.get(a)! - cur.get(b)!);
    let k = 0;
    return ids.map((id) => (Number.isNaN(bary.get(id)!) ? id : sorted[k++]));
  };
  let best = order.map((l) => l.slice());
  let bestC = countAll(order);
  for (let iter = 0; iter < 12 && bestC > 0; iter++) {
    const next = order.map((l) => l.slice());
    if (iter % 2 === 0) {
      for (let l = 1; l < next.length; l++) {
        const pos = new Map(next[l - 1].map((id, i) => [id, i]));
        next[l] = sortBy(next[l], ups, pos);
      }
    } else {
      for (let l = next.length - 2; l >= 0; l--) {
        const pos = new Map(next[l + 1].map((id, i) => [id, i]));
        next[l] = sortBy(next[l], downs, pos);
      }
    }
    order = next;
    const c = countAll(order);
    if (c < bestC) {
      bestC = c;
      best = order.map((l) => l.slice());
    }
  }
  order = best;

  // Coordinates.
  const itemById = new Map<string, Item>();
  for (const l of items) for (const it of l) itemById.set(it.id, it);
  const layerHeight = order.map((l) => l.reduce((s, id) => s + itemById.get(id)!.h, 0) + Math.max(0, l.length - 1) * o.rowGap);
  const maxH = Math.max(0, ...layerHeight);
  const pos = new Map<string, { x: number; y: number; h: number }>();
  order.forEach((l, li) => {
    let y = o.margin + (maxH - layerHeight[li]) / 2;
    const x = o.margin + li * (o.nodeWidth + o.layerGap);
    for (const id of l) {
      const h = itemById.get(id)!.h;
      pos.set(id, { x, y, h });
      y += h + o.rowGap;
    }
  });
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const laidNodes: LaidNode[] = [];
  order.forEach((l, li) =>
    l.forEach((id, i) => {
      if (itemById.get(id)!.dummy) return;
      const p = pos.get(id)!;
      const n = byId.get(id)!;
      laidNodes.push({ id, kind: n.kind, layer: li, order: i, x: p.x, y: p.y, w: o.nodeWidth, h: o.nodeHeight, node: n });
    }),
  );
  laidNodes.sort((a, b) => a.layer - b.layer || a.order - b.order);

  // Edge geometry.
  const r = (v: number) => Math.round(v * 10) / 10;
  const curve = (x0: number, y0: number, x1: number, y1: number) => {
    const dx = (x1 - x0) / 2;
    return `C${r(x0 + dx)},${r(y0)} ${r(x1 - dx)},${r(y1)} ${r(x1)},${r(y1)}`;
  };
  let bottom = o.margin + maxH;
  const laidEdges: LaidEdge[] = [];
  const keys = new Set(edges.map(edgeKey));
  const outDeg = new Map<string, number>(nodes.map((n) => [n.id, 0]));
  const inDeg = new Map<string, number>(nodes.map((n) => [n.id, 0]));
  for (const e of edges) {
    if (e.client === e.server) continue;
    outDeg.set(e.client, outDeg.get(e.client)! + 1);
    inDeg.set(e.server, inDeg.get(e.server)! + 1);
  }
  let arcIndex = 0;
  for (const e of edges) {
    const k = edgeKey(e);
    const c = pos.get(e.client)!;
    const s = pos.get(e.server)!;
    const back = backSet.has(k);
    if (e.client === e.server) {
      const sx = c.x + o.nodeWidth - 28;
      const sy = c.y;
      const ex = c.x + o.nodeWidth;
      const ey = c.y + 14;
      laidEdges.push({
        key: k, edge: e, back: true, self: true,
        path: `M${r(sx)},${r(sy)} C${r(sx)},${r(sy - 34)} ${r(ex + 34)},${r(ey)} ${r(ex)},${r(ey)}`,
        labelX: r(ex + 24), labelY: r(sy - 24), marksY: r(sy - 24 + 14),
      });
      continue;
    }
    const lc = layer.get(e.client)!;
    const ls = layer.get(e.server)!;
    if (lc === ls) {
      // Not produced by the layering; an arc under the boxes of the layer just in case.
      let floor = 0;
      for (const id of order[lc]) floor = Math.max(floor, pos.get(id)!.y + pos.get(id)!.h);
      const yb = floor + 34 + 20 * arcIndex++;
      const x0 = c.x + o.nodeWidth / 2 + 12;
      const y0 = c.y + o.nodeHeight;
      const x1 = s.x + o.nodeWidth / 2 - 12;
      const y1 = s.y + o.nodeHeight;
      const ly = (y0 + y1) / 8 + 0.75 * yb;
      bottom = Math.max(bottom, ly + 20);
      laidEdges.push({
        key: k, edge: e, back, self: false,
        path: `M${r(x0)},${r(y0)} C${r(x0)},${r(yb)} ${r(x1)},${r(yb)} ${r(x1)},${r(y1)}`,
        labelX: r((x0 + x1) / 2), labelY: r(ly + 14), marksY: r(ly + 28),
      });
      continue;
    }
    // Left to right when the server is in a later layer, else right to
    // left; a pair calling each other both ways keeps the two apart.
    const ltr = lc < ls;
    const both = keys.has(edgeKey({ client: e.server, server: e.client }));
    const off = both ? (ltr ? -7 : 7) : 0;
    const chain = (chains.get(k) ?? []).slice();
    if (!ltr) chain.reverse();
    let x = ltr ? c.x + o.nodeWidth : c.x;
    let y = c.y + o.nodeHeight / 2 + off;
    let d = `M${r(x)},${r(y)}`;
    let lx = 0;
    let ly = 0;
    chain.forEach((id, i) => {
      const p = pos.get(id)!;
      const cy = p.y + p.h / 2 + off;
      const inX = ltr ? p.x : p.x + o.nodeWidth;
      const outX = ltr ? p.x + o.nodeWidth : p.x;
      d += ' ' + curve(x, y, inX, cy) + ` L${r(outX)},${r(cy)}`;
      if (i === Math.floor((chain.length - 1) / 2)) {
        lx = p.x + o.nodeWidth / 2;
        ly = cy;
      }
      x = outX;
      y = cy;
    });
    const ex = ltr ? s.x : s.x + o.nodeWidth;
    const ey = s.y + o.nodeHeight / 2 + off;
    if (!chain.length) {
      // On a direct edge the label sits towards the end with fewer
      // edges: the labels of a fan-out spread near the targets, those of
      // a fan-in near the callers (B(0.7) is 65.8% of the way in x).
      const fanOut = outDeg.get(e.client)!;
      const fanIn = inDeg.get(e.server)!;
      let fx = fanOut > fanIn ? 0.658 : fanOut < fanIn ? 0.342 : 0.5;
      // Keep the label off the boxes.
      const gap = Math.abs(ex - x);
      const room = (gap - o.labelWidth) / 2 - 4;
      if (room <= 0) fx = 0.5;
      else fx = Math.min(Math.max(fx, 0.5 - room / gap), 0.5 + room / gap);
      lx = x + (ex - x) * fx;
      ly = y + (ey - y) * curveY(fx);
    }
    d += ' ' + curve(x, y, ex, ey);
    // The label goes above a left-to-right line and below a right-to-left one, the marks below it.
    const labelY = ltr ? ly - 6 : ly + 15;
    laidEdges.push({ key: k, edge: e, back, self: false, path: d, labelX: r(lx), labelY: r(labelY), marksY: r(ltr ? ly + 13 : ly + 29) });
  }
  for (const le of laidEdges) bottom = Math.max(bottom, le.labelY + 4, le.marksY + 13 * ((le.edge.marks ?? []).length - 1) + 4);

  const width = nLayers ? o.margin * 2 + nLayers * o.nodeWidth + (nLayers - 1) * o.layerGap : 0;
  const height = nLayers ? Math.ceil(bottom + o.margin) : 0;
  return {
    nodes: laidNodes,
    edges: laidEdges,
    layers: order.map((l) => l.filter((id) => !itemById.get(id)!.dummy)),
    width,
    height,
  };
}

/* ---------- side panels ---------- */

/** promString quotes a PromQL label value. */
export function promString(v: string): string {
  return '"' + v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') + '"';
}

const serverKinds = 'span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"';

/** redQueries are the PromQL expressions of a service's rate (req/s), error ratio (%) and p95 latency (ms) charts. */
export function redQueries(service: string): { rate: string; errors: string; p95: string } {
  const sel = `service_name=${promString(service)},${serverKinds}`;
  const calls = `sum(rate(traces_span_metrics_calls{${sel}}[1m]))`;
  return {
    rate: calls,
    // No error series at all reads as 0% (while there are calls), not as no data.
    errors: `100 * (sum(rate(traces_span_metrics_calls{${sel},status_code="STATUS_CODE_ERROR"}[1m])) or vector(0)) / ${calls}`,
    p95: `histogram_quantile(0.95, sum by (le) (rate(traces_span_metrics_duration_bucket{${sel}}[1m])))`,
  };
}

/** topOperationsQuery counts a service's server calls per operation over a window of seconds. */
export function topOperationsQuery(service: string, seconds: number): string {
  const s = Math.max(60, Math.round(seconds));
  return `topk(10, sum by (span_name) (increase(traces_span_metrics_calls{service_name=${promString(service)},${serverKinds}}[${s}s])))`;
}

/** windowState is the time part of a state as the other pages read it (range, or from and to). */
function windowState(s: RangeState): { range?: string; from?: string; to?: string } {
  if (s.from) return { from: s.from, to: s.to || String(Date.now()) };
  return { range: s.range || DEFAULT_RANGE };
}

/** nodeLinks links a service to its traces, logs, alerts and metrics over the map's window. */
export function nodeLinks(service: string, s: RangeState): { traces: string; logs: string; alerts: string; metrics: string } {
  const w = windowState(s);
  return {
    traces: '/traces' + encodeQuery({ service, ...w }),
    logs: '/logs' + encodeQuery({ service, ...w }),
    // The alerts page reads only its tab (and a silence's matchers): it lists every active alert.
    alerts: '/alerts' + encodeQuery({ tab: 'alerts' }),
    metrics: '/explore' + encodeQuery({ q: redQueries(service).rate, ...w }),
  };
}

/** operationLink opens the traces of one operation of a service over the window. */
export function operationLink(service: string, operation: string, s: RangeState): string {
  return '/traces' + encodeQuery({ service, operation, ...windowState(s) });
}

/** incoming and outgoing list a node's edges, busiest first. */
export function incoming(edges: MapEdge[], id: string): MapEdge[] {
  return edges.filter((e) => e.server === id).sort((a, b) => b.rate - a.rate || cmp(a.client, b.client));
}

export function outgoing(edges: MapEdge[], id: string): MapEdge[] {
  return edges.filter((e) => e.client === id).sort((a, b) => b.rate - a.rate || cmp(a.server, b.server));
}
