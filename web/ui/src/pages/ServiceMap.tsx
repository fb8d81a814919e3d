// The service map, Vigil's landing page: who calls whom over a time window
// (any past window, so a link shows the map as it was), laid out left to
// right from callers to databases and queues. Edges carry rate, error ratio
// and p95, and the resilience marks (open breakers, ejected instances,
// exhausted retry budgets). A node opens its RED charts, top operations and
// links; an edge its figures, marks and example traces. State is in the URL.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import type { ComponentChildren } from 'preact';
import { apiGet } from '../lib/api';
import { useAsync } from '../lib/hooks';
import { t } from '../lib/i18n';
import { navigate } from '../lib/router';
import { autoStep, resolveRange } from '../lib/timerange';
import { formatDuration, formatNumber, formatTime } from '../lib/format';
import {
  DEFAULT_RANGE, apiParams, clockTime, connectionName, edgeKey, edgeLabel, edgeWidth, errorTint, estimateTextWidth,
  formatLatency, formatPercent, formatRate, incoming, kindName, layoutMap, mapSearch, markText, nodeLinks, nodeSubtitle,
  normalizeMap, operationLink, outgoing, redQueries, stateFromSearch, topOperationsQuery, truncate,
  type EdgeTrace, type LaidEdge, type LaidNode, type Layout, type MapEdge, type MapNode, type MapState, type ServiceMap,
} from '../lib/servicemap';
import { Chart, themeColors } from '../components/Chart';
import { ErrorBox, Loading } from '../components/Misc';
import { TimeRange } from '../components/TimeRange';

interface Win {
  start: number;
  end: number;
}

export function ServiceMapPage({ search }: { search: string }) {
  const state = useMemo(() => stateFromSearch(search), [search]);
  const base = window.location.pathname.startsWith('/map') ? '/map' : '/';
  const go = (patch: Partial<MapState>, replace = false) => navigate(base + mapSearch({ ...state, ...patch }), replace);

  const [env, setEnv] = useState(state.env);
  const [ns, setNs] = useState(state.ns);
  useEffect(() => setEnv(state.env), [state.env]);
  useEffect(() => setNs(state.ns), [state.ns]);

  // The window is resolved when the data key changes (or on refresh), so
  // the map and its side panels share one window.
  const [tick, setTick] = useState(0);
  const dataKey = JSON.stringify([state.range, state.from, state.to, state.env, state.ns, tick]);
  const win = useMemo<Win>(() => resolveRange(state, Date.now(), DEFAULT_RANGE), [dataKey]);
  const res = useAsync<ServiceMap>(
    (s) => apiGet<{ data: ServiceMap | null }>('/api/vigil/servicemap', apiParams(state, win), s).then((r) => normalizeMap(r.data)),
    [dataKey],
  );
  const map = res.data;
  const now = new Date();
  // A relative window follows now: every 15 s, every 5 s while the map is
  // still empty (it appears after the first flush), not in a hidden tab.
  const live = !state.from;
  const every = map && map.edges.length === 0 ? 5 : 15;
  useEffect(() => {
    if (!live) return;
    const id = setInterval(() => !document.hidden && setTick((n) => n + 1), every * 1000);
    return () => clearInterval(id);
  }, [live, every]);

  const edgeTexts = useMemo(() => {
    const m = new Map<string, { label: string; marks: { kind: string; text: string }[] }>();
    for (const e of map?.edges ?? []) {
      m.set(edgeKey(e), { label: edgeLabel(e, t), marks: (e.marks ?? []).map((k) => ({ kind: k.kind, text: markText(k, now, t, e.server) })) });
    }
    return m;
    // now changes each render; the texts follow the data and the language.
  }, [map, t('map.reqPerSec')]);

  const layout = useMemo(() => {
    if (!map) return null;
    // Room between layers for the longest edge label.
    let widest = 0;
    let label = 0;
    for (const x of edgeTexts.values()) {
      label = Math.max(label, estimateTextWidth(x.label, 11));
      widest = Math.max(widest, label, ...x.marks.map((m) => estimateTextWidth(m.text, 10.5)));
    }
    const layerGap = Math.max(170, Math.min(320, Math.ceil(widest) + 36));
    return layoutMap(map.nodes, map.edges, { layerGap, labelWidth: Math.ceil(label) });
  }, [map, edgeTexts]);

  const selNode = map && state.node ? layout?.nodes.find((n) => n.id === state.node)?.node : undefined;
  const selEdge = map && state.edge ? map.edges.find((e) => edgeKey(e) === state.edge) : undefined;
  const filtered = !!(state.env || state.ns);

  const submitFilters = (e: Event) => {
    e.preventDefault();
    go({ env: env.trim(), ns: ns.trim() });
  };

  return (
    <section class="page servicemap-page">
      <div class="page-head servicemap-head">
        <h1>{t('map.title')}</h1>
        <form class="servicemap-filters" onSubmit={submitFilters}>
          <label class="inline">
            {t('map.window')}
            <TimeRange value={state} def={DEFAULT_RANGE} onChange={(r) => go({ range: r.range, from: r.from, to: r.to })} />
          </label>
          <label class="inline">
            {t('map.env')}
            <input name="env" value={env} placeholder={t('map.envHint')} onInput={(e) => setEnv((e.target as HTMLInputElement).value)}
              onChange={(e) => go({ env: (e.target as HTMLInputElement).value.trim() })} />
          </label>
          <label class="inline">
            {t('map.ns')}
            <input name="ns" value={ns} placeholder={t('map.nsHint')} onInput={(e) => setNs((e.target as HTMLInputElement).value)}
              onChange={(e) => go({ ns: (e.target as HTMLInputElement).value.trim() })} />
          </label>
          <button type="submit" class="sr-only">{t('map.apply')}</button>
          <button type="button" class="refresh" onClick={() => setTick((n) => n + 1)}>{t('map.refresh')}</button>
          <a href="/services" class="services-link">{t('map.servicesList')}</a>
        </form>
      </div>
      <ErrorBox error={res.error} />
      {map?.warnings.map((w, i) => <div class="warning" key={i}>{w}</div>)}
      {res.loading && !map && <Loading />}
      {map && layout && (
        <>
          <div class="servicemap-meta muted small">
            <span>{t('map.summary', { nodes: layout.nodes.length, edges: map.edges.length })}</span>
            <span>{formatTime(new Date(win.start))} – {formatTime(new Date(win.end))}</span>
            {live && <span>{t('map.live', { v: every })}</span>}
            {map.edges.length > 0 && <span>{t('map.hint')}</span>}
          </div>
          {map.edges.length === 0 && <p class="empty servicemap-empty">{filtered ? t('map.emptyFiltered') + ' ' : ''}{t('map.empty')}</p>}
          {layout.nodes.length > 0 && (
            <div class={'servicemap-body' + (selNode || selEdge ? ' with-panel' : '')}>
              <MapGraph
                layout={layout}
                texts={edgeTexts}
                selected={selNode ? 'n:' + selNode.id : selEdge ? 'e:' + edgeKey(selEdge) : ''}
                onNode={(id) => go({ node: id, edge: '' }, true)}
                onEdge={(k) => go({ edge: k, node: '' }, true)}
                onClear={() => go({ edge: '', node: '' }, true)}
              />
              {selNode && (
                <NodePanel key={selNode.id} node={selNode} map={map} win={win} state={state}
                  onEdge={(k) => go({ edge: k, node: '' }, true)} onClose={() => go({ node: '' }, true)} />
              )}
              {selEdge && !selNode && (
                <EdgePanel key={edgeKey(selEdge)} edge={selEdge} win={win} state={state} now={now}
                  onNode={(id) => go({ node: id, edge: '' }, true)} onClose={() => go({ edge: '' }, true)} />
              )}
            </div>
          )}
        </>
      )}
    </section>
  );
}

/* ---------- the graph ---------- */

interface GraphProps {
  layout: Layout;
  texts: Map<string, { label: string; marks: { kind: string; text: string }[] }>;
  selected: string;
  onNode: (id: string) => void;
  onEdge: (key: string) => void;
  onClear: () => void;
}

const ZOOMS = [0.25, 0.33, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2];

function MapGraph({ layout, texts, selected, onNode, onEdge, onClear }: GraphProps) {
  const box = useRef<HTMLDivElement>(null);
  const [zoom, setZoom] = useState(1);
  // A wide map starts zoomed out a little, not below readable (then it scrolls; Fit shows all).
  useEffect(() => {
    const w = box.current?.clientWidth ?? 0;
    if (w > 0 && layout.width > w) setZoom(Math.max(0.85, Math.floor((w / layout.width) * 100) / 100));
  }, [layout.width]);
  // The next zoom step up or down from the current zoom (which Fit may have set between steps).
  const step = (dir: 1 | -1) => {
    const next = dir > 0 ? ZOOMS.find((z) => z > zoom + 1e-9) : [...ZOOMS].reverse().find((z) => z < zoom - 1e-9);
    if (next) setZoom(next);
  };
  const fit = () => {
    const w = box.current?.clientWidth ?? 0;
    if (w > 0 && layout.width > 0) setZoom(Math.max(0.25, Math.min(2, Math.floor(((w - 4) / layout.width) * 100) / 100)));
  };
  // Bring the selection into view (a link may select a node off screen).
  useEffect(() => {
    if (!selected) return;
    const sel = selected.startsWith('n:') ? `[data-node="${CSS.escape(selected.slice(2))}"]` : `[data-edge="${CSS.escape(selected.slice(2))}"]`;
    box.current?.querySelector(sel)?.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }, [selected, zoom, layout.width, layout.height]);
  const related = new Set<string>();
  if (selected.startsWith('n:')) {
    const id = selected.slice(2);
    for (const e of layout.edges) if (e.edge.client === id || e.edge.server === id) related.add(e.key);
  }
  return (
    <div class="servicemap-graph card">
      <div class="zoom-controls">
        <button type="button" class="icon" title={t('map.zoomOut')} aria-label={t('map.zoomOut')} onClick={() => step(-1)}>−</button>
        <button type="button" class="zoom-level" title={t('map.zoomReset')} onClick={() => setZoom(1)}>{Math.round(zoom * 100)}%</button>
        <button type="button" class="icon" title={t('map.zoomIn')} aria-label={t('map.zoomIn')} onClick={() => step(1)}>+</button>
        <button type="button" title={t('map.zoomFit')} onClick={fit}>{t('map.zoomFit')}</button>
      </div>
      <div class="servicemap-scroll" ref={box}>
        <svg
          class="servicemap-svg"
          width={Math.ceil(layout.width * zoom)}
          height={Math.ceil(layout.height * zoom)}
          viewBox={`0 0 ${layout.width} ${layout.height}`}
          role="img"
          aria-label={t('map.title')}
        >
          <defs>
            <marker id="sm-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" markerUnits="userSpaceOnUse" orient="auto">
              <path d="M0,0 L10,5 L0,10 z" class="sm-arrow" />
            </marker>
            <marker id="sm-arrow-mark" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" markerUnits="userSpaceOnUse" orient="auto">
              <path d="M0,0 L10,5 L0,10 z" class="sm-arrow-mark" />
            </marker>
            <marker id="sm-arrow-error" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" markerUnits="userSpaceOnUse" orient="auto">
              <path d="M0,0 L10,5 L0,10 z" class="sm-arrow-error" />
            </marker>
            <marker id="sm-arrow-sel" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" markerUnits="userSpaceOnUse" orient="auto">
              <path d="M0,0 L10,5 L0,10 z" class="sm-arrow-sel" />
            </marker>
          </defs>
          <rect class="sm-bg" x={0} y={0} width={layout.width} height={layout.height} onClick={onClear} />
          {layout.edges.map((e) => (
            <EdgeView key={e.key} e={e} text={texts.get(e.key)} selected={selected === 'e:' + e.key} related={related.has(e.key)}
              dim={related.size > 0 && !related.has(e.key)} onClick={() => onEdge(e.key)}
              hint={`${e.edge.client} → ${e.edge.server}`} />
          ))}
          {layout.nodes.map((n) => (
            <NodeView key={n.id} n={n} selected={selected === 'n:' + n.id} onClick={() => onNode(n.id)} />
          ))}
        </svg>
      </div>
    </div>
  );
}

function activate(f: () => void) {
  return (e: KeyboardEvent) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      f();
    }
  };
}

function EdgeView({ e, text, selected, related, dim, onClick, hint }: {
  e: LaidEdge; text?: { label: string; marks: { kind: string; text: string }[] }; selected: boolean; related: boolean; dim: boolean;
  onClick: () => void; hint: string;
}) {
  const marked = (e.edge.marks ?? []).length > 0;
  const failing = e.edge.error_rate >= 0.05;
  const cls = ['sm-edge', marked && 'marked', failing && 'failing', e.back && 'back', selected && 'selected', related && 'related', dim && 'dim']
    .filter(Boolean).join(' ');
  const marker = selected ? 'sm-arrow-sel' : marked ? 'sm-arrow-mark' : failing ? 'sm-arrow-error' : 'sm-arrow';
  const marks = text?.marks ?? [];
  return (
    <g class={cls} data-edge={e.key} role="button" tabIndex={0} aria-label={hint}
      onClick={(ev) => { ev.stopPropagation(); onClick(); }} onKeyDown={activate(onClick)}>
      <title>{hint}</title>
      <path class="sm-edge-hit" d={e.path} />
      <path class="sm-edge-line" d={e.path} style={{ strokeWidth: edgeWidth(e.edge.rate) }} marker-end={`url(#${marker})`} />
      <text class="sm-edge-label" x={e.labelX} y={e.labelY} text-anchor="middle">{text?.label}</text>
      {marks.map((m, i) => (
        <text key={i} class="sm-mark" data-mark={m.kind} x={e.labelX} y={e.marksY + i * 13} text-anchor="middle">⚠ {m.text}</text>
      ))}
    </g>
  );
}

/** shapePath outlines a node of a kind in a w×h box. */
function shapePath(kind: string, w: number, h: number): string {
  switch (kind) {
    case 'database':
      return `M0,7 A${w / 2},7 0 0 1 ${w},7 V${h - 7} A${w / 2},7 0 0 1 0,${h - 7} Z`;
    case 'messaging':
      return `M0,0 H${w - 12} L${w},${h / 2} L${w - 12},${h} H0 L12,${h / 2} Z`;
    case 'user': {
      const r = h / 2;
      return `M${r},0 H${w - r} A${r},${r} 0 0 1 ${w - r},${h} H${r} A${r},${r} 0 0 1 ${r},0 Z`;
    }
    default:
      return `M8,0 H${w - 8} Q${w},0 ${w},8 V${h - 8} Q${w},${h} ${w - 8},${h} H8 Q0,${h} 0,${h - 8} V8 Q0,0 8,0 Z`;
  }
}

function NodeView({ n, selected, onClick }: { n: LaidNode; selected: boolean; onClick: () => void }) {
  const d = shapePath(n.kind, n.w, n.h);
  const tint = errorTint(n.node.error_rate);
  const pad = n.kind === 'messaging' ? 20 : n.kind === 'user' ? 42 : 12;
  const maxUnits = Math.floor((n.w - pad - 8) / 7.6);
  const cls = ['sm-node', 'kind-' + n.kind, selected && 'selected', n.node.error_rate >= 0.05 && 'failing'].filter(Boolean).join(' ');
  return (
    <g class={cls} data-node={n.id} transform={`translate(${n.x},${n.y})`} role="button" tabIndex={0} aria-label={n.id}
      onClick={(ev) => { ev.stopPropagation(); onClick(); }} onKeyDown={activate(onClick)}>
      <title>{`${n.id} (${kindName(n.kind, t)})`}</title>
      <path class="sm-shape" d={d} />
      {tint > 0 && <path class="sm-tint" d={d} style={{ fillOpacity: tint }} />}
      {n.kind === 'database' && <path class="sm-db-lid" d={`M0,7 A${n.w / 2},7 0 0 0 ${n.w},7`} />}
      {n.kind === 'user' && (
        <g class="sm-user-icon" transform={`translate(${n.h / 2 - 2},${n.h / 2})`}>
          <circle cx={0} cy={-6} r={5} />
          <path d="M-9,11 A9,8 0 0 1 9,11 Z" />
        </g>
      )}
      <text class="sm-node-name" x={pad} y={n.h / 2 - 4}>{truncate(n.id, maxUnits)}</text>
      <text class="sm-node-sub" x={pad} y={n.h / 2 + 13}>{truncate(nodeSubtitle(n.node, t), Math.floor((n.w - pad - 8) / 6))}</text>
    </g>
  );
}

/* ---------- side panels ---------- */

function Figures({ rows }: { rows: [string, string][] }) {
  return (
    <table class="kv servicemap-figures">
      <tbody>
        {rows.map(([k, v]) => (
          <tr key={k}>
            <th>{k}</th>
            <td>{v}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function nodeFigures(n: MapNode): [string, string][] {
  return [
    [t('map.calls'), String(n.calls)],
    [t('map.errors'), String(n.errors)],
    [t('map.rate'), `${formatRate(n.rate)} ${t('map.reqPerSec')}`],
    [t('map.errorRate'), formatPercent(n.error_rate)],
    [t('map.p50'), formatLatency(n.p50)],
    [t('map.p95'), formatLatency(n.p95)],
    [t('map.p99'), formatLatency(n.p99)],
  ];
}

function EdgeList({ title, edges, other, onEdge }: { title: string; edges: MapEdge[]; other: (e: MapEdge) => string; onEdge: (k: string) => void }) {
  if (!edges.length) return null;
  return (
    <>
      <h4>{title}</h4>
      <table class="grid compact servicemap-edges">
        <tbody>
          {edges.map((e) => (
            <tr key={edgeKey(e)}>
              <td><button class="link" onClick={() => onEdge(edgeKey(e))}>{other(e)}</button></td>
              <td class="num">{formatRate(e.rate)} {t('map.reqPerSec')}</td>
              <td class={'num' + (e.error_rate > 0 ? ' error-text' : '')}>{formatPercent(e.error_rate)}</td>
              <td class="num">{formatLatency(e.p95)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function PanelHead({ title, sub, onClose }: { title: ComponentChildren; sub?: ComponentChildren; onClose: () => void }) {
  return (
    <div class="detail-head">
      <div>
        <h2>{title}</h2>
        {sub}
      </div>
      <button class="icon" title={t('common.close')} aria-label={t('common.close')} onClick={onClose}>×</button>
    </div>
  );
}

function NodePanel({ node, map, win, state, onEdge, onClose }: {
  node: MapNode; map: ServiceMap; win: Win; state: MapState; onEdge: (k: string) => void; onClose: () => void;
}) {
  const isService = node.kind === 'service';
  const links = nodeLinks(node.id, state);
  const q = redQueries(node.id);
  return (
    <aside class="card servicemap-panel" data-panel="node">
      <PanelHead title={node.id} sub={<span class={'chip small kind-chip kind-' + node.kind}>{kindName(node.kind, t)}</span>} onClose={onClose} />
      {!isService && <p class="muted small">{t('map.virtualHint')}</p>}
      <Figures rows={nodeFigures(node)} />
      {isService && (
        <div class="servicemap-links">
          <a class="chip" href={links.traces} data-link="traces">{t('map.links.traces')}</a>
          <a class="chip" href={links.logs} data-link="logs">{t('map.links.logs')}</a>
          <a class="chip" href={links.alerts} data-link="alerts">{t('map.links.alerts')}</a>
          <a class="chip" href={links.metrics} data-link="metrics">{t('map.links.metrics')}</a>
        </div>
      )}
      <EdgeList title={t('map.incoming')} edges={incoming(map.edges, node.id)} other={(e) => e.client} onEdge={onEdge} />
      {isService && <EdgeList title={t('map.outgoing')} edges={outgoing(map.edges, node.id)} other={(e) => e.server} onEdge={onEdge} />}
      {isService && (
        <>
          <SeriesChart title={t('map.chart.rate')} query={q.rate} win={win} format={(v) => formatNumber(Number(v.toPrecision(3)))} />
          <SeriesChart title={t('map.chart.errors')} query={q.errors} win={win} format={(v) => formatNumber(Number(v.toFixed(2)))} />
          <SeriesChart title={t('map.chart.p95')} query={q.p95} win={win} format={(v) => formatNumber(Number(v.toPrecision(3)))} />
          <TopOperations service={node.id} win={win} state={state} />
        </>
      )}
    </aside>
  );
}

interface PromSeries {
  metric: Record<string, string>;
  values?: [number, string][];
  value?: [number, string];
}

function SeriesChart({ title, query, win, format }: { title: string; query: string; win: Win; format: (v: number) => string }) {
  const step = autoStep(win.end - win.start, 120);
  const res = useAsync<uPlot.AlignedData | null>(async (s) => {
    const r = await apiGet<{ data: { result: PromSeries[] } }>('/api/v1/query_range', {
      query, start: (win.start / 1000).toFixed(3), end: (win.end / 1000).toFixed(3), step: String(step),
    }, s);
    const series = r.data?.result?.[0];
    if (!series?.values?.length) return null;
    const xs = series.values.map(([ts]) => ts);
    const ys = series.values.map(([, v]) => {
      const n = Number(v);
      return Number.isFinite(n) ? n : null;
    });
    return [xs, ys];
  }, [query, win.start, win.end]);
  const options = (width: number): uPlot.Options => {
    const c = themeColors();
    const axis = { stroke: c.axis, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid, width: 1 }, font: '11px system-ui' };
    return {
      width, height: 110, legend: { show: false }, cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: () => [win.start / 1000, win.end / 1000] }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [axis, { ...axis, size: 48, values: (_u, vals) => vals.map((v) => format(v)) }],
      series: [{}, { label: title, stroke: '#2563eb', fill: 'rgba(37,99,235,0.12)', width: 1.5, spanGaps: false }],
    };
  };
  return (
    <div class="servicemap-chart">
      <h4>{title}</h4>
      <ErrorBox error={res.error} />
      {res.loading && !res.data && <Loading />}
      {!res.loading && !res.error && !res.data && <p class="muted small">{t('map.noData')}</p>}
      {res.data && <Chart options={options} data={res.data} optionsKey={`${query}:${win.start}:${win.end}`} />}
    </div>
  );
}

function TopOperations({ service, win, state }: { service: string; win: Win; state: MapState }) {
  const res = useAsync(async (s) => {
    const r = await apiGet<{ data: { result: PromSeries[] } }>('/api/v1/query', {
      query: topOperationsQuery(service, (win.end - win.start) / 1000), time: (win.end / 1000).toFixed(3),
    }, s);
    return (r.data?.result ?? [])
      .map((x) => ({ name: x.metric.span_name ?? '', calls: Number(x.value?.[1] ?? 0) }))
      .filter((x) => Number.isFinite(x.calls))
      .sort((a, b) => b.calls - a.calls || a.name.localeCompare(b.name));
  }, [service, win.start, win.end]);
  return (
    <div class="servicemap-ops">
      <h4>{t('map.topOps')}</h4>
      <ErrorBox error={res.error} />
      {res.loading && !res.data && <Loading />}
      {res.data && res.data.length === 0 && <p class="muted small">{t('map.noData')}</p>}
      {res.data && res.data.length > 0 && (
        <table class="grid compact">
          <thead>
            <tr><th>{t('map.operation')}</th><th class="num">{t('map.opCalls')}</th></tr>
          </thead>
          <tbody>
            {res.data.map((o) => (
              <tr key={o.name}>
                <td class="op-name"><a href={operationLink(service, o.name, state)}>{o.name}</a></td>
                <td class="num">{formatNumber(Math.round(o.calls))}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function EdgePanel({ edge, win, state, now, onNode, onClose }: {
  edge: MapEdge; win: Win; state: MapState; now: Date; onNode: (id: string) => void; onClose: () => void;
}) {
  const traces = useAsync(
    (s) => apiGet<{ data: EdgeTrace[] | null }>('/api/vigil/servicemap/traces', {
      client: edge.client, server: edge.server, start: new Date(win.start).toISOString(), end: new Date(win.end).toISOString(), limit: 20,
    }, s).then((r) => r.data ?? []),
    [edge.client, edge.server, win.start, win.end],
  );
  const marks = edge.marks ?? [];
  return (
    <aside class="card servicemap-panel" data-panel="edge">
      <PanelHead
        title={<><button class="link" onClick={() => onNode(edge.client)}>{edge.client}</button> → <button class="link" onClick={() => onNode(edge.server)}>{edge.server}</button></>}
        sub={<span class="chips">{(edge.connection_types ?? [edge.connection_type]).map((c) => <span class="chip small" key={c}>{connectionName(c, t)}</span>)}</span>}
        onClose={onClose}
      />
      <Figures rows={[
        [t('map.caller'), edge.client],
        [t('map.callee'), edge.server],
        [t('map.calls'), String(edge.calls)],
        [t('map.failed'), String(edge.failed)],
        [t('map.rate'), `${formatRate(edge.rate)} ${t('map.reqPerSec')}`],
        [t('map.errorRate'), formatPercent(edge.error_rate)],
        [t('map.p50'), formatLatency(edge.p50)],
        [t('map.p95'), formatLatency(edge.p95)],
        [t('map.p99'), formatLatency(edge.p99)],
      ]} />
      {marks.length > 0 && (
        <>
          <h4>{t('map.marks')}</h4>
          <ul class="servicemap-marks">
            {marks.map((m, i) => (
              <li key={i} class="mark-item" title={formatTime(new Date(m.since))}>
                ⚠ {markText(m, now, t, edge.server)}
                {m.kind === 'retry_budget_exhausted' && m.value > 0 && (
                  <span class="muted small"> · {t('map.markRefusals', { v: formatNumber(Math.round(m.value)) })}</span>
                )}
              </li>
            ))}
          </ul>
        </>
      )}
      <h4>{t('map.traces')}</h4>
      <ErrorBox error={traces.error} />
      {traces.loading && !traces.data && <Loading />}
      {traces.data && traces.data.length === 0 && <p class="muted small">{t('map.noTraces')}</p>}
      {traces.data && traces.data.length > 0 && (
        <ul class="servicemap-traces">
          {traces.data.map((tr) => (
            <li key={tr.traceID} data-edge-trace={tr.traceID} class={tr.failed ? 'failed' : ''}>
              <a href={'/trace/' + tr.traceID}>
                <span class="mono">{tr.traceID.slice(0, 16)}</span>
                <span class="muted" title={formatTime(new Date(tr.time), true)}>{clockTime(new Date(tr.time), now)}</span>
                <span class="duration">{formatDuration(tr.duration_ms * 1000)}</span>
                {tr.failed && <span class="badge error-badge">{t('map.failedTrace')}</span>}
              </a>
            </li>
          ))}
        </ul>
      )}
      <p class="small">
        <a href={nodeLinks(edge.client, state).traces}>{t('map.clientTraces', { v: edge.client })}</a>
      </p>
    </aside>
  );
}
