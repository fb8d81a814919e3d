// The trace model of the waterfall: Jaeger JSON in, a span tree with
// depths, visible rows, error marks and the critical path out.

export interface KeyValue {
  key: string;
  type?: string;
  value: unknown;
}

export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references?: { refType: string; traceID: string; spanID: string }[] | null;
  startTime: number; // µs since the epoch
  duration: number; // µs
  tags?: KeyValue[] | null;
  logs?: { timestamp: number; fields: KeyValue[] | null }[] | null;
  processID: string;
  warnings?: string[] | null;
}

export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags?: KeyValue[] | null }>;
  warnings?: string[] | null;
}

export interface SpanNode {
  span: JaegerSpan;
  id: string;
  service: string;
  parent: SpanNode | null;
  children: SpanNode[];
  depth: number;
  start: number; // µs since the epoch
  end: number;
  error: boolean;
  /** descendants counts every span below this one. */
  descendants: number;
}

export interface TraceTree {
  traceID: string;
  roots: SpanNode[];
  byId: Map<string, SpanNode>;
  /** order lists every node depth-first, children by start time. */
  order: SpanNode[];
  start: number;
  end: number;
  services: string[];
  errors: number;
  maxDepth: number;
}

/** isErrorSpan reports whether a span is marked as failed (error=true or an OTel status of ERROR). */
export function isErrorSpan(s: JaegerSpan): boolean {
  for (const t of s.tags ?? []) {
    if (t.key === 'error' && (t.value === true || t.value === 'true')) return true;
    if (t.key === 'otel.status_code' && String(t.value).toUpperCase() === 'ERROR') return true;
  }
  return false;
}

/**
 * buildTree links spans to their CHILD_OF parent (the first reference when
 * none is CHILD_OF, as Jaeger does). A span whose parent is missing from
 * the trace becomes a root; duplicate span ids keep the first; a reference
 * cycle is broken by treating the span that closes it as a root.
 */
export function buildTree(trace: JaegerTrace): TraceTree {
  const byId = new Map<string, SpanNode>();
  const services: string[] = [];
  const seenSvc = new Set<string>();
  let errors = 0;
  for (const s of trace.spans ?? []) {
    if (byId.has(s.spanID)) continue;
    const service = trace.processes?.[s.processID]?.serviceName ?? s.processID ?? '';
    const node: SpanNode = {
      span: s, id: s.spanID, service, parent: null, children: [], depth: 0,
      start: s.startTime, end: s.startTime + s.duration, error: isErrorSpan(s), descendants: 0,
    };
    if (node.error) errors++;
    byId.set(s.spanID, node);
  }
  for (const node of byId.values()) {
    const refs = node.span.references ?? [];
    const ref = refs.find((r) => r.refType === 'CHILD_OF' && r.traceID === node.span.traceID) ??
      refs.find((r) => r.traceID === node.span.traceID);
    if (!ref) continue;
    const parent = byId.get(ref.spanID);
    if (!parent || parent === node) continue;
    // Walk up to make sure linking does not close a cycle.
    let p: SpanNode | null = parent;
    let cyclic = false;
    for (let guard = 0; p && guard <= byId.size; guard++, p = p.parent) {
      if (p === node) {
        cyclic = true;
        break;
      }
    }
    if (cyclic) continue;
    node.parent = parent;
    parent.children.push(node);
  }
  const byStart = (a: SpanNode, b: SpanNode) => a.start - b.start || a.end - b.end || (a.id < b.id ? -1 : 1);
  const roots: SpanNode[] = [];
  let start = Infinity;
  let end = -Infinity;
  for (const node of byId.values()) {
    if (!node.parent) roots.push(node);
    node.children.sort(byStart);
    if (node.start < start) start = node.start;
    if (node.end > end) end = node.end;
  }
  roots.sort(byStart);
  const order: SpanNode[] = [];
  let maxDepth = 0;
  // Iterative depth-first walk: traces can be deeper than the JS stack.
  const stack: SpanNode[] = [];
  for (let i = roots.length - 1; i >= 0; i--) stack.push(roots[i]);
  while (stack.length) {
    const n = stack.pop()!;
    n.depth = n.parent ? n.parent.depth + 1 : 0;
    if (n.depth > maxDepth) maxDepth = n.depth;
    order.push(n);
    for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]);
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i];
    if (n.parent) n.parent.descendants += n.descendants + 1;
  }
  for (const n of order) {
    if (!seenSvc.has(n.service)) {
      seenSvc.add(n.service);
      services.push(n.service);
    }
  }
  if (!order.length) {
    start = 0;
    end = 0;
  }
  return { traceID: trace.traceID, roots, byId, order, start, end, services, errors, maxDepth };
}

/** visibleRows returns the nodes shown when the spans in `collapsed` hide their descendants. */
export function visibleRows(tree: TraceTree, collapsed: ReadonlySet<string>): SpanNode[] {
  if (collapsed.size === 0) return tree.order;
  const out: SpanNode[] = [];
  const order = tree.order;
  for (let i = 0; i < order.length; i++) {
    const n = order[i];
    out.push(n);
    if (collapsed.has(n.id)) i += n.descendants; // descendants follow contiguously in depth-first order
  }
  return out;
}

/** A piece of the critical path: [start, end) of one span's own time on it. */
export interface PathSegment {
  id: string;
  start: number;
  end: number;
}

/**
 * criticalPath returns the segments of the longest chain of blocking work
 * (as Jaeger computes it): from the end of each root, walk back through the
 * last-finishing child that started before the cursor; the time between
 * that child's end and the cursor is the parent's own, and the walk then
 * continues before the child's start. Children are clamped to their
 * parent's span. Segments come out latest first.
 */
export function criticalPath(tree: TraceTree): PathSegment[] {
  const out: PathSegment[] = [];
  interface Frame {
    node: SpanNode;
    cursor: number;
    lo: number; // the node's start, clamped into its parent
    kids: SpanNode[];
  }
  const push = (node: SpanNode, limitEnd: number, limitStart: number): Frame => {
    const kids = node.children.slice().sort((a, b) => b.end - a.end);
    return { node, cursor: Math.min(node.end, limitEnd), lo: Math.max(node.start, limitStart), kids };
  };
  for (const root of tree.roots.slice().sort((a, b) => b.end - a.end)) {
    const stack: Frame[] = [push(root, root.end, root.start)];
    while (stack.length) {
      const f = stack[stack.length - 1];
      if (f.cursor <= f.lo) {
        stack.pop();
        continue;
      }
      // The last-finishing child that starts before the cursor.
      let best: SpanNode | null = null;
      let bestEnd = -Infinity;
      for (const c of f.kids) {
        if (c.start >= f.cursor || c.end <= f.lo) continue;
        const ce = Math.min(c.end, f.cursor);
        if (ce > bestEnd) {
          bestEnd = ce;
          best = c;
        }
      }
      if (!best) {
        if (f.cursor > f.lo) out.push({ id: f.node.id, start: f.lo, end: f.cursor });
        stack.pop();
        continue;
      }
      if (f.cursor > bestEnd) out.push({ id: f.node.id, start: bestEnd, end: f.cursor });
      const childStart = Math.max(best.start, f.lo);
      f.cursor = childStart;
      stack.push(push(best, bestEnd, childStart));
    }
  }
  return out;
}

/** spanMatches reports whether a span's operation, service, id or any tag key or value contains the lower-cased needle. */
export function spanMatches(n: SpanNode, needle: string): boolean {
  if (!needle) return false;
  const has = (s: unknown) => String(s).toLowerCase().includes(needle);
  if (has(n.span.operationName) || has(n.service) || n.id.toLowerCase() === needle) return true;
  for (const t of n.span.tags ?? []) if (has(t.key) || has(t.value)) return true;
  for (const l of n.span.logs ?? []) for (const f of l.fields ?? []) if (has(f.value)) return true;
  return false;
}

/** traceSummary is what the search result list shows of a trace. */
export interface TraceSummary {
  traceID: string;
  rootService: string;
  rootOperation: string;
  spans: number;
  errors: number;
  start: number; // µs
  duration: number; // µs
  services: { name: string; count: number }[];
}

/** summarize computes a TraceSummary; the root is the earliest span without a parent in the trace. */
export function summarize(trace: JaegerTrace): TraceSummary {
  const tree = buildTree(trace);
  const root = tree.roots[0];
  const counts = new Map<string, number>();
  for (const n of tree.order) counts.set(n.service, (counts.get(n.service) ?? 0) + 1);
  return {
    traceID: trace.traceID,
    rootService: root?.service ?? '',
    rootOperation: root?.span.operationName ?? '',
    spans: tree.order.length,
    errors: tree.errors,
    start: tree.start,
    duration: tree.end - tree.start,
    services: [...counts].map(([name, count]) => ({ name, count })),
  };
}

const palette = [
  '#3b82f6', '#10b981', '#f59e0b', '#8b5cf6', '#ec4899', '#14b8a6',
  '#f97316', '#6366f1', '#84cc16', '#06b6d4', '#a855f7', '#eab308',
];

/** traceServiceColor gives each service of a trace its own colour, in order of appearance (by name hash past the palette). */
export function traceServiceColor(tree: TraceTree, service: string): string {
  const i = tree.services.indexOf(service);
  return i >= 0 && i < palette.length ? palette[i] : serviceColor(service);
}

/** serviceColor gives a stable colour per service name. */
export function serviceColor(service: string): string {
  let h = 2166136261;
  for (let i = 0; i < service.length; i++) {
    h ^= service.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return palette[(h >>> 0) % palette.length];
}

/** SearchError is one entry of the errors of a Jaeger envelope. */
export interface SearchError {
  code?: number;
  msg: string;
  traceID?: string;
}

/**
 * TRUNCATED_CODE is the code of the error GET /api/traces adds when a
 * search stopped at the most spans one search may examine: the traces
 * answered are the newest matches of the part it examined, and older
 * ones may be missing.
 */
export const TRUNCATED_CODE = 206;

/** SearchStop says how far an incomplete search got. */
export interface SearchStop {
  /** from is the time (ms since the epoch) before which spans were not searched; null when the message gives none. */
  from: number | null;
}

/** searchStop returns how far a trace search got when its errors say it stopped early, else null. */
export function searchStop(errors: SearchError[] | null | undefined): SearchStop | null {
  const e = (errors ?? []).find((x) => x && x.code === TRUNCATED_CODE);
  if (!e) return null;
  const m = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/.exec(e.msg ?? '');
  const from = m ? Date.parse(m[0]) : NaN;
  return { from: Number.isNaN(from) ? null : from };
}
