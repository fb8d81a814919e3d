import { describe, expect, it } from 'vitest';
import { buildTree, criticalPath, isErrorSpan, searchStop, spanMatches, summarize, TRUNCATED_CODE, visibleRows, type JaegerSpan, type JaegerTrace } from './trace';

// span builds a span of trace "t" starting at `start` µs lasting `dur` µs.
function span(id: string, parent: string | null, start: number, dur: number, extra: Partial<JaegerSpan> = {}): JaegerSpan {
  return {
    traceID: 't', spanID: id, operationName: 'op-' + id, startTime: start, duration: dur, processID: extra.processID ?? 'p1',
    references: parent ? [{ refType: 'CHILD_OF', traceID: 't', spanID: parent }] : [], tags: [], logs: [], ...extra,
  };
}

function trace(spans: JaegerSpan[]): JaegerTrace {
  return { traceID: 't', spans, processes: { p1: { serviceName: 'api' }, p2: { serviceName: 'db' } } };
}

describe('buildTree', () => {
  it('links children, sorts by start and walks depth first', () => {
    const tr = buildTree(trace([
      span('c2', 'root', 50, 10),
      span('root', null, 0, 100),
      span('c1', 'root', 10, 20, { processID: 'p2' }),
      span('g1', 'c1', 15, 5),
    ]));
    expect(tr.order.map((n) => n.id)).toEqual(['root', 'c1', 'g1', 'c2']);
    expect(tr.order.map((n) => n.depth)).toEqual([0, 1, 2, 1]);
    expect(tr.roots.map((n) => n.id)).toEqual(['root']);
    expect(tr.byId.get('root')!.descendants).toBe(3);
    expect(tr.byId.get('c1')!.service).toBe('db');
    expect(tr.services).toEqual(['api', 'db']);
    expect([tr.start, tr.end, tr.maxDepth]).toEqual([0, 100, 2]);
  });

  it('makes spans with a missing parent roots and drops duplicate ids', () => {
    const tr = buildTree(trace([span('a', null, 0, 10), span('b', 'gone', 5, 10), span('a', null, 99, 1)]));
    expect(tr.roots.map((n) => n.id)).toEqual(['a', 'b']);
    expect(tr.order).toHaveLength(2);
    expect(tr.byId.get('a')!.start).toBe(0);
  });

  it('breaks reference cycles', () => {
    const tr = buildTree(trace([span('a', 'b', 0, 10), span('b', 'a', 1, 5)]));
    expect(tr.order).toHaveLength(2);
    expect(tr.roots.length).toBe(1);
  });

  it('prefers CHILD_OF over FOLLOWS_FROM and ignores other traces', () => {
    const s = span('c', null, 5, 1, {
      references: [
        { refType: 'FOLLOWS_FROM', traceID: 'other', spanID: 'x' },
        { refType: 'FOLLOWS_FROM', traceID: 't', spanID: 'a' },
        { refType: 'CHILD_OF', traceID: 't', spanID: 'b' },
      ],
    });
    const tr = buildTree(trace([span('a', null, 0, 10), span('b', 'a', 1, 8), s]));
    expect(tr.byId.get('c')!.parent!.id).toBe('b');
  });

  it('handles a 10,000-deep chain without recursion', () => {
    const spans = [span('s0', null, 0, 20000)];
    for (let i = 1; i < 10000; i++) spans.push(span('s' + i, 's' + (i - 1), i, 20000 - 2 * i));
    const tr = buildTree(trace(spans));
    expect(tr.maxDepth).toBe(9999);
    expect(criticalPath(tr).length).toBeGreaterThan(0);
  });

  it('is empty for an empty trace', () => {
    const tr = buildTree(trace([]));
    expect(tr.order).toEqual([]);
    expect([tr.start, tr.end]).toEqual([0, 0]);
  });
});

describe('visibleRows', () => {
  it('hides the descendants of collapsed spans', () => {
    const tr = buildTree(trace([
      span('r', null, 0, 100), span('a', 'r', 1, 10), span('a1', 'a', 2, 5), span('a2', 'a1', 3, 1), span('b', 'r', 20, 10),
    ]));
    expect(visibleRows(tr, new Set()).map((n) => n.id)).toEqual(['r', 'a', 'a1', 'a2', 'b']);
    expect(visibleRows(tr, new Set(['a'])).map((n) => n.id)).toEqual(['r', 'a', 'b']);
    expect(visibleRows(tr, new Set(['a', 'a1'])).map((n) => n.id)).toEqual(['r', 'a', 'b']);
    expect(visibleRows(tr, new Set(['r'])).map((n) => n.id)).toEqual(['r']);
  });
});

describe('criticalPath', () => {
  const total = (segs: { start: number; end: number }[]) => segs.reduce((s, x) => s + x.end - x.start, 0);

  it('follows sequential children and the parent gaps between them', () => {
    // root [0,100]: a [10,40], b [50,90]
    const tr = buildTree(trace([span('root', null, 0, 100), span('a', 'root', 10, 30), span('b', 'root', 50, 40)]));
    const cp = criticalPath(tr);
    expect(cp).toEqual([
      { id: 'root', start: 90, end: 100 },
      { id: 'b', start: 50, end: 90 },
      { id: 'root', start: 40, end: 50 },
      { id: 'a', start: 10, end: 40 },
      { id: 'root', start: 0, end: 10 },
    ]);
    expect(total(cp)).toBe(100);
  });

  it('takes the last-finishing of overlapping children, then the part of the other before it', () => {
    // root [0,100]: a [10,80], b [50,90]
    const tr = buildTree(trace([span('root', null, 0, 100), span('a', 'root', 10, 70), span('b', 'root', 50, 40)]));
    expect(criticalPath(tr)).toEqual([
      { id: 'root', start: 90, end: 100 },
      { id: 'b', start: 50, end: 90 },
      { id: 'a', start: 10, end: 50 },
      { id: 'root', start: 0, end: 10 },
    ]);
  });

  it('clamps children that outlive their parent and skips children that start after it', () => {
    // root [0,100]: a [60,130] runs past the end (async), c [5,20] nested deeper in a [60..]
    const tr = buildTree(trace([span('root', null, 0, 100), span('a', 'root', 60, 70), span('x', 'a', 110, 10)]));
    const cp = criticalPath(tr);
    expect(cp).toEqual([
      { id: 'a', start: 60, end: 100 },
      { id: 'root', start: 0, end: 60 },
    ]);
  });

  it('covers every root', () => {
    const tr = buildTree(trace([span('r1', null, 0, 10), span('r2', null, 20, 10)]));
    expect(criticalPath(tr).map((s) => s.id).sort()).toEqual(['r1', 'r2']);
  });

  it('terminates when a child starts before its parent', () => {
    const tr = buildTree(trace([span('root', null, 10, 100), span('early', 'root', 0, 50)]));
    expect(criticalPath(tr)).toEqual([
      { id: 'root', start: 50, end: 110 },
      { id: 'early', start: 10, end: 50 },
    ]);
  });
});

describe('errors, search and summary', () => {
  const err = span('e', 'r', 5, 5, { tags: [{ key: 'otel.status_code', type: 'string', value: 'ERROR' }] });
  const err2 = span('e2', 'r', 6, 5, { tags: [{ key: 'error', type: 'bool', value: true }] });
  const tagged = span('t1', 'r', 7, 1, { tags: [{ key: 'http.url', type: 'string', value: '/Users/42' }] });
  const tr = trace([span('r', null, 0, 20, { operationName: 'GET /' }), err, err2, tagged]);

  it('marks error spans', () => {
    expect([err, err2, tagged].map(isErrorSpan)).toEqual([true, true, false]);
  });

  it('finds spans by operation, service, tag value', () => {
    const t = buildTree(tr);
    const hits = (q: string) => t.order.filter((n) => spanMatches(n, q)).map((n) => n.id);
    expect(hits('users/42')).toEqual(['t1']);
    expect(hits('get /')).toEqual(['r']);
    expect(hits('')).toEqual([]);
    expect(hits('api')).toHaveLength(4);
  });

  it('summarizes a trace for the result list', () => {
    const s = summarize(tr);
    expect(s).toMatchObject({ rootService: 'api', rootOperation: 'GET /', spans: 4, errors: 2, duration: 20 });
    expect(s.services).toEqual([{ name: 'api', count: 4 }]);
  });
});

describe('searchStop', () => {
  it('is null for a complete search, whatever else the errors say', () => {
    expect(searchStop(undefined)).toBeNull();
    expect(searchStop(null)).toBeNull();
    expect(searchStop([])).toBeNull();
    expect(searchStop([{ msg: 'trace not found', traceID: 'abc' }])).toBeNull();
  });
  it('reads when an incomplete search stopped', () => {
    const msg = 'search incomplete: it stopped at the most spans one search may examine; spans that started before '
      + '2026-12-07T11:30:05.123456Z were not searched, so older matching traces may be missing: narrow the time range, or add an operation or tags';
    expect(searchStop([{ code: TRUNCATED_CODE, msg }])).toEqual({ from: Date.parse('2026-12-07T11:30:05.123Z') });
  });
  it('still reports a stop whose message has no time', () => {
    expect(searchStop([{ code: TRUNCATED_CODE, msg: 'search incomplete' }])).toEqual({ from: null });
  });
});
