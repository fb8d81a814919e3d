// The trace view: a virtualised waterfall of the span tree with service
// colours, a time ruler, error marks, search and the critical path, and
// the selected span's details. State (span, search, critical path) is in the URL.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { apiGet, ApiError } from '../lib/api';
import { useAsync } from '../lib/hooks';
import { t } from '../lib/i18n';
import { decodeQuery, encodeQuery } from '../lib/query';
import { navigate } from '../lib/router';
import { formatDuration, formatTime, valueText } from '../lib/format';
import { ticks } from '../lib/axis';
import {
  buildTree, criticalPath, spanMatches, traceServiceColor, visibleRows,
  type JaegerTrace, type PathSegment, type SpanNode, type TraceTree,
} from '../lib/trace';
import { ErrorBox, KVTable, Loading } from '../components/Misc';
import type { LogRecord } from './Logs';
import { LogBody, severityClass } from './Logs';

const ROW_H = 26;
const OVERSCAN = 12;

export function TracePage({ params, search }: { params: string[]; search: string }) {
  const id = params[0].toLowerCase();
  const res = useAsync(async (s) => {
    const r = await apiGet<{ data: JaegerTrace[] | null }>(`/api/traces/${encodeURIComponent(id)}`, undefined, s);
    const tr = (r.data ?? [])[0];
    if (!tr) throw new ApiError(404, t('trace.notFound'));
    return tr;
  }, [id]);
  const tree = useMemo(() => (res.data ? buildTree(res.data) : null), [res.data]);
  if (res.error) return <section class="page"><ErrorBox error={res.error} /></section>;
  if (!tree) return <section class="page"><Loading /></section>;
  return <TraceView tree={tree} raw={res.data!} search={search} />;
}

function TraceView({ tree, raw, search }: { tree: TraceTree; raw: JaegerTrace; search: string }) {
  const q = decodeQuery(search);
  const selectedId: string = q.span ?? '';
  const find: string = q.find ?? '';
  const showCP = q.cp !== '0';
  const setQuery = (patch: Record<string, string | undefined>, replace = true) => {
    navigate(`/trace/${tree.traceID}` + encodeQuery({ span: selectedId, find, cp: showCP ? undefined : '0', ...patch }), replace);
  };
  const [collapsed, setCollapsed] = useState<Set<string>>(() => new Set());
  const [findText, setFindText] = useState(find);
  const rows = useMemo(() => visibleRows(tree, collapsed), [tree, collapsed]);
  const cp = useMemo(() => {
    const m = new Map<string, PathSegment[]>();
    for (const seg of criticalPath(tree)) {
      const l = m.get(seg.id);
      if (l) l.push(seg);
      else m.set(seg.id, [seg]);
    }
    return m;
  }, [tree]);
  const needle = find.trim().toLowerCase();
  const matches = useMemo(() => {
    if (!needle) return null;
    const s = new Set<string>();
    for (const n of tree.order) if (spanMatches(n, needle)) s.add(n.id);
    return s;
  }, [tree, needle]);
  const selected = selectedId ? tree.byId.get(selectedId) ?? null : null;
  const root = tree.roots[0];
  const duration = Math.max(1, tree.end - tree.start);

  // Scrolling and the window of rendered rows.
  const scroller = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 800 });
  useEffect(() => {
    const el = scroller.current!;
    let raf = 0;
    const update = () => {
      raf = 0;
      setView({ top: el.scrollTop, height: el.clientHeight });
    };
    const onScroll = () => {
      if (!raf) raf = requestAnimationFrame(update);
    };
    update();
    el.addEventListener('scroll', onScroll, { passive: true });
    const ro = new ResizeObserver(update);
    ro.observe(el);
    return () => {
      el.removeEventListener('scroll', onScroll);
      ro.disconnect();
      if (raf) cancelAnimationFrame(raf);
    };
  }, []);
  useEffect(() => {
    performance.mark('vigil.trace.rendered');
  }, [tree]);

  const scrollToSpan = (sid: string) => {
    const el = scroller.current;
    const i = rows.findIndex((n) => n.id === sid);
    if (!el || i < 0) return;
    const y = i * ROW_H;
    if (y < el.scrollTop || y > el.scrollTop + el.clientHeight - ROW_H * 2) el.scrollTop = Math.max(0, y - el.clientHeight / 3);
  };
  // A span named in the URL is revealed (its ancestors expanded) and scrolled to.
  useEffect(() => {
    if (!selected) return;
    let changed = false;
    const next = new Set(collapsed);
    for (let p = selected.parent; p; p = p.parent) if (next.delete(p.id)) changed = true;
    if (changed) setCollapsed(next);
    else scrollToSpan(selected.id);
  }, [selectedId, rows]);

  const first = Math.max(0, Math.floor(view.top / ROW_H) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((view.top + view.height) / ROW_H) + OVERSCAN);
  const tickVals = ticks(0, duration, 6);
  const matchList = matches ? rows.filter((n) => matches.has(n.id)) : [];
  const [matchPos, setMatchPos] = useState(0);
  const gotoMatch = (d: number) => {
    if (!matchList.length) return;
    const p = (matchPos + d + matchList.length) % matchList.length;
    setMatchPos(p);
    setQuery({ span: matchList[p].id });
  };

  const toggle = (n: SpanNode) => {
    const next = new Set(collapsed);
    if (next.has(n.id)) next.delete(n.id);
    else next.add(n.id);
    setCollapsed(next);
  };

  return (
    <section class="page trace-page">
      <header class="trace-head">
        <h1>
          <span class="svc-dot" style={{ background: traceServiceColor(tree, root?.service ?? '') }} />
          <span>{root?.service}</span>: <span>{root?.span.operationName}</span>
          <span class="mono muted small trace-id-full">{tree.traceID}</span>
        </h1>
        <div class="trace-stats">
          <span>{t('trace.started')}: <b>{formatTime(new Date(tree.start / 1000), true)}</b></span>
          <span>{t('traces.duration')}: <b>{formatDuration(tree.end - tree.start)}</b></span>
          <span>{t('trace.total')}: <b class="total-spans">{tree.order.length}</b></span>
          <span>{t('trace.depth')}: <b>{tree.maxDepth + 1}</b></span>
          {tree.errors > 0 && <span class="badge error-badge">{t('traces.errors', { n: tree.errors })}</span>}
          <span class="trace-services">
            {tree.services.map((s) => (
              <span class="chip small" key={s}><span class="svc-dot" style={{ background: traceServiceColor(tree, s) }} />{s}</span>
            ))}
          </span>
        </div>
        {raw.warnings && raw.warnings.length > 0 && (
          <div class="warning">{t('trace.warnings')}: {raw.warnings.join('; ')}</div>
        )}
        <div class="toolbar">
          <form class="inline" onSubmit={(e) => { e.preventDefault(); setMatchPos(0); setQuery({ find: findText }); }}>
            <input type="search" name="find" placeholder={t('trace.find')} value={findText}
              onInput={(e) => {
                const v = (e.target as HTMLInputElement).value;
                setFindText(v);
                setMatchPos(0);
                setQuery({ find: v });
              }} />
            {matches && <span class="muted small match-count">{t('trace.matches', { n: matches.size })}</span>}
            {matches && matches.size > 0 && (
              <>
                <button type="button" class="icon" onClick={() => gotoMatch(-1)} aria-label="previous">↑</button>
                <button type="button" class="icon" onClick={() => gotoMatch(1)} aria-label="next">↓</button>
              </>
            )}
          </form>
          <label class="check">
            <input type="checkbox" checked={showCP} onChange={(e) => setQuery({ cp: (e.target as HTMLInputElement).checked ? undefined : '0' })} />
            <span class="cp-swatch" /> {t('trace.criticalPath')}
          </label>
          <button type="button" onClick={() => setCollapsed(new Set())}>{t('trace.expandAll')}</button>
          <button type="button" onClick={() => setCollapsed(new Set(tree.order.filter((n) => n.children.length && n.parent).map((n) => n.id)))}>
            {t('trace.collapseAll')}
          </button>
          <a href={'/logs' + encodeQuery({ trace_id: tree.traceID, range: '7d' })}>{t('trace.logs')}</a>
        </div>
      </header>
      <div class={'trace-body' + (selected ? ' with-detail' : '')}>
        <div class="waterfall">
          <div class="ruler">
            <div class="span-name ruler-name">{t('trace.name')}</div>
            <div class="span-timeline">
              {tickVals.map((v) => (
                <span class={'tick' + (v / duration > 0.93 ? ' end' : '')} key={v} style={{ left: `${(v / duration) * 100}%` }}>{formatDuration(v)}</span>
              ))}
            </div>
          </div>
          <div class="wf-scroll" ref={scroller}>
            <div class="wf-canvas" style={{ height: `${rows.length * ROW_H}px` }}>
              <div class="wf-grid">
                {tickVals.map((v) => <span key={v} style={{ left: `${(v / duration) * 100}%` }} />)}
              </div>
              {rows.slice(first, last).map((n, k) => (
                <SpanRow key={n.id} n={n} top={(first + k) * ROW_H} tree={tree} duration={duration}
                  collapsed={collapsed.has(n.id)} selected={n.id === selectedId}
                  match={matches ? matches.has(n.id) : null}
                  segments={showCP ? cp.get(n.id) : undefined}
                  onToggle={toggle}
                  onSelect={() => setQuery({ span: n.id === selectedId ? undefined : n.id })} />
              ))}
            </div>
          </div>
        </div>
        {selected && <SpanDetail n={selected} tree={tree} raw={raw} onClose={() => setQuery({ span: undefined })} />}
      </div>
    </section>
  );
}

interface RowProps {
  n: SpanNode;
  top: number;
  tree: TraceTree;
  duration: number;
  collapsed: boolean;
  selected: boolean;
  match: boolean | null;
  segments?: PathSegment[];
  onToggle: (n: SpanNode) => void;
  onSelect: () => void;
}

function SpanRow({ n, top, tree, duration, collapsed, selected, match, segments, onToggle, onSelect }: RowProps) {
  const left = ((n.start - tree.start) / duration) * 100;
  const width = Math.max(0.15, ((n.end - n.start) / duration) * 100);
  const color = traceServiceColor(tree, n.service);
  const cls = 'span-row' + (selected ? ' selected' : '') + (n.error ? ' is-error' : '') +
    (match === true ? ' match' : match === false ? ' dim' : '');
  const indent = Math.min(n.depth, 40) * 14;
  return (
    <div class={cls} style={{ top: `${top}px` }} data-span-id={n.id} onClick={onSelect}>
      <div class="span-name" style={{ paddingLeft: `${indent + 4}px` }}>
        {n.children.length > 0 ? (
          <button class="toggle" aria-expanded={!collapsed}
            onClick={(e) => { e.stopPropagation(); onToggle(n); }}>
            {collapsed ? '▸' : '▾'}
          </button>
        ) : <span class="toggle-space" />}
        <span class="svc-bar" style={{ background: color }} />
        {n.error && <span class="error-mark" title={t('span.error')}>!</span>}
        <span class="svc">{n.service}</span>
        <span class="op">{n.span.operationName}</span>
        {collapsed && <span class="chip small">+{n.descendants}</span>}
      </div>
      <div class="span-timeline">
        <div class="bar" style={{ left: `${left}%`, width: `${width}%`, background: color }} />
        {segments?.map((s, i) => (
          <div key={i} class="cp-seg" style={{
            left: `${((s.start - tree.start) / duration) * 100}%`,
            width: `${Math.max(0.1, ((s.end - s.start) / duration) * 100)}%`,
          }} />
        ))}
        <span class={'bar-label' + (left <= 70 && left + width > 88 ? ' inside' : '')}
          style={left > 70 ? { right: `${100 - left + 0.5}%` } : left + width > 88 ? { right: `${100 - left - width + 0.5}%` } : { left: `${left + width + 0.5}%` }}>
          {formatDuration(n.end - n.start)}
        </span>
      </div>
    </div>
  );
}

const statusOf = (tags: { key: string; value: unknown }[]) => {
  const code = tags.find((x) => x.key === 'otel.status_code')?.value;
  const desc = tags.find((x) => x.key === 'otel.status_description')?.value;
  return { code: code ? String(code) : '', desc: desc ? String(desc) : '' };
};

function SpanDetail({ n, tree, raw, onClose }: { n: SpanNode; tree: TraceTree; raw: JaegerTrace; onClose: () => void }) {
  const s = n.span;
  const tags = s.tags ?? [];
  const status = statusOf(tags);
  const kind = tags.find((x) => x.key === 'span.kind')?.value;
  const refs = s.references ?? [];
  const links = refs.filter((r) => !(r.refType === 'CHILD_OF' && r.spanID === n.parent?.id && r.traceID === s.traceID));
  const logs = useTraceLogs(tree.traceID);
  const spanLogs = (logs.data ?? []).filter((l) => l.span_id === n.id);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && onClose();
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [onClose]);
  const statusText = status.code === 'ERROR' || n.error ? t('span.error') : status.code === 'OK' ? t('span.ok') : t('span.unset');
  return (
    <aside class="span-detail card" aria-label={s.operationName}>
      <div class="detail-head">
        <h2>
          <span class="svc-dot" style={{ background: traceServiceColor(tree, n.service) }} />
          <span>{n.service}</span>: <span class="detail-op">{s.operationName}</span>
        </h2>
        <button class="icon" onClick={onClose} aria-label={t('common.close')}>✕</button>
      </div>
      <table class="kv summary">
        <tbody>
          <tr><th>{t('span.id')}</th><td class="mono">{n.id}</td></tr>
          {n.parent && (
            <tr><th>{t('span.parent')}</th><td><a class="mono" href={`/trace/${tree.traceID}?span=${encodeURIComponent(n.parent.id)}`}>{n.parent.span.operationName}</a></td></tr>
          )}
          <tr><th>{t('span.start')}</th><td>+{formatDuration(n.start - tree.start)} · {formatTime(new Date(n.start / 1000), true)}</td></tr>
          <tr><th>{t('span.duration')}</th><td>{formatDuration(n.end - n.start)}</td></tr>
          {kind !== undefined && <tr><th>{t('span.kind')}</th><td>{valueText(kind)}</td></tr>}
          <tr><th>{t('span.status')}</th><td class={n.error ? 'error-text' : ''}>{statusText}{status.desc ? ': ' + status.desc : ''}</td></tr>
        </tbody>
      </table>
      <details open>
        <summary>{t('span.attributes')} ({tags.length})</summary>
        <KVTable items={tags} class="span-attributes" />
      </details>
      <details>
        <summary>{t('span.resource')}</summary>
        <KVTable items={raw.processes?.[s.processID]?.tags ?? []} class="span-resource" />
      </details>
      {(s.logs ?? []).length > 0 && (
        <details open>
          <summary>{t('span.events')} ({(s.logs ?? []).length})</summary>
          {(s.logs ?? []).map((ev, i) => (
            <div class="event" key={i}>
              <div class="muted small">+{formatDuration(ev.timestamp - tree.start)}</div>
              <KVTable items={ev.fields ?? []} />
            </div>
          ))}
        </details>
      )}
      {links.length > 0 && (
        <details open>
          <summary>{t('span.links')} ({links.length})</summary>
          <ul class="links">
            {links.map((r, i) => {
              const local = r.traceID === tree.traceID ? tree.byId.get(r.spanID) : undefined;
              return (
                <li key={i}>
                  <span class="chip small">{r.refType}</span>{' '}
                  <a class="mono" href={`/trace/${encodeURIComponent(r.traceID)}?span=${encodeURIComponent(r.spanID)}`}>
                    {local ? `${local.service}: ${local.span.operationName}` : `${r.traceID.slice(0, 16)}…/${r.spanID}`}
                  </a>
                </li>
              );
            })}
          </ul>
        </details>
      )}
      <details open>
        <summary>{t('span.logs')} {logs.data ? `(${spanLogs.length})` : ''}</summary>
        <ErrorBox error={logs.error} />
        {logs.loading && <Loading />}
        {logs.data && spanLogs.length === 0 && <p class="muted small">{t('span.noLogs')}</p>}
        {spanLogs.map((l, i) => (
          <div class={'span-log ' + severityClass(l.severity_number)} key={i}>
            <span class="muted small">{formatTime(new Date(l.timestamp), true)}</span>{' '}
            <span class="sev">{l.severity_text || l.severity_number || ''}</span>{' '}
            <LogBody body={l.body} />
          </div>
        ))}
      </details>
    </aside>
  );
}

const logsCache = new Map<string, Promise<LogRecord[]>>();

function useTraceLogs(traceID: string) {
  return useAsync((signal) => {
    let p = logsCache.get(traceID);
    if (!p) {
      p = apiGet<{ data: LogRecord[] | null }>(`/api/traces/${encodeURIComponent(traceID)}/logs`, undefined, signal)
        .then((r) => r.data ?? []);
      p.catch(() => logsCache.delete(traceID));
      logsCache.set(traceID, p);
      if (logsCache.size > 20) logsCache.delete(logsCache.keys().next().value!);
    }
    return p;
  }, [traceID]);
}
