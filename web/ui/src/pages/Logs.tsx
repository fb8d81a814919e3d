// Log search: filters in the URL, the volume histogram, newest-first
// results with infinite scroll (cursor), expandable structured bodies,
// trace links, and the live tail over WebSocket that pauses on scroll.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { apiGet, isAbort } from '../lib/api';
import { getToken, wsProtocols } from '../lib/auth';
import { useAsync } from '../lib/hooks';
import { t } from '../lib/i18n';
import { decodeQuery, encodeQuery, parseKeyValues } from '../lib/query';
import { navigate } from '../lib/router';
import { resolveRange, type RangeState } from '../lib/timerange';
import { formatTime, valueText } from '../lib/format';
import { Chart, themeColors } from '../components/Chart';
import { ErrorBox, KVTable, Loading } from '../components/Misc';
import { TimeRange } from '../components/TimeRange';
import { loadServices } from './Services';

export interface LogRecord {
  timestamp: string;
  observed_timestamp?: string;
  service: string;
  severity_number: number;
  severity_text: string;
  body: unknown;
  attributes?: Record<string, unknown> | null;
  resource?: Record<string, unknown> | null;
  scope?: { name?: string; version?: string } | null;
  trace_id?: string;
  span_id?: string;
  event_name?: string;
}

interface Filters {
  service: string;
  severity: string;
  q: string;
  trace_id: string;
  attrs: string;
  range?: string;
  from?: string;
  to?: string;
  tail?: string;
}

const severities = ['', 'trace', 'debug', 'info', 'warn', 'error', 'fatal'];

function filtersFrom(search: string): Filters {
  const q = decodeQuery(search);
  return {
    service: q.service ?? '', severity: q.severity ?? '', q: q.q ?? '', trace_id: q.trace_id ?? '',
    attrs: q.attrs ?? '', range: q.range, from: q.from, to: q.to, tail: q.tail,
  };
}

/** filterParams turns the filters into /api/logs parameters; withTime adds start and end. */
export function filterParams(f: Filters, withTime: boolean, now: number): Record<string, string> {
  const p: Record<string, string> = {};
  if (f.service) p.service = f.service;
  if (f.severity) p.severity = f.severity;
  if (f.q) p.q = f.q;
  if (f.trace_id) p.trace_id = f.trace_id.trim().toLowerCase();
  for (const [k, v] of parseKeyValues(f.attrs).pairs) p['attr.' + k] = v;
  if (withTime) {
    const { start, end } = resolveRange(f, now);
    p.start = new Date(start).toISOString();
    p.end = new Date(end).toISOString();
  }
  return p;
}

/** severityClass maps an OTel severity number (1–24) to a CSS class. */
export function severityClass(n: number): string {
  if (n >= 21) return 'sev-fatal';
  if (n >= 17) return 'sev-error';
  if (n >= 13) return 'sev-warn';
  if (n >= 9) return 'sev-info';
  if (n >= 5) return 'sev-debug';
  return n > 0 ? 'sev-trace' : 'sev-unset';
}

/** structuredBody returns the object a body holds (a map, or a string holding a JSON object), else null. */
export function structuredBody(body: unknown): object | null {
  if (body && typeof body === 'object') return body as object;
  if (typeof body === 'string' && body.length < 1 << 20) {
    const s = body.trim();
    if (s.startsWith('{') && s.endsWith('}')) {
      try {
        const v = JSON.parse(s);
        if (v && typeof v === 'object') return v;
      } catch {
        return null;
      }
    }
  }
  return null;
}

/** LogBody renders a body as text; a structured body expands into indented JSON. */
export function LogBody({ body }: { body: unknown }) {
  const [open, setOpen] = useState(false);
  const obj = useMemo(() => structuredBody(body), [body]);
  if (!obj) return <span class="log-body">{valueText(body)}</span>;
  return (
    <span class="log-body structured">
      <button class="toggle" aria-expanded={open} onClick={(e) => { e.stopPropagation(); setOpen(!open); }}>{open ? '▾' : '▸'}</button>
      {open ? <pre>{JSON.stringify(obj, null, 2)}</pre> : <span class="oneline">{typeof body === 'string' ? body : JSON.stringify(obj)}</span>}
    </span>
  );
}

type TailState = 'off' | 'connecting' | 'live' | 'closed' | 'idle';

// The close code the server sends a tail that matched no record for its
// idle timeout: reconnecting at once would only wait again, so the tail
// stays closed until the user asks.
const TAIL_CLOSE_IDLE = 4408;

export function LogsPage({ search }: { search: string }) {
  const applied = useMemo(() => filtersFrom(search), [search]);
  const [form, setForm] = useState<Filters>(applied);
  useEffect(() => setForm(applied), [applied]);
  const set = (patch: Partial<Filters>) => setForm((f) => ({ ...f, ...patch }));
  const services = useAsync((s) => loadServices(s), []);
  const attrError = parseKeyValues(form.attrs).error;
  const apply = (f: Filters, replace = false) => {
    const { service, severity, q, trace_id, attrs, range, from, to, tail } = f;
    navigate('/logs' + encodeQuery({ service, severity, q, trace_id, attrs, range, from, to, tail }), replace);
  };
  // The search key leaves out the tail toggle: turning it on keeps the results.
  const searchKey = JSON.stringify({ ...applied, tail: undefined });

  // Pages of results, newest first.
  const [records, setRecords] = useState<LogRecord[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<Error | undefined>();
  const [done, setDone] = useState(false);
  const fetchCtl = useRef<AbortController | null>(null);
  const paramsRef = useRef<Record<string, string>>({});
  const loadPage = (next: string | null, reset: boolean) => {
    fetchCtl.current?.abort();
    const ac = new AbortController();
    fetchCtl.current = ac;
    setLoading(true);
    const p: Record<string, string> = { ...paramsRef.current, limit: '100' };
    if (next) p.cursor = next;
    apiGet<{ data: LogRecord[] | null; next_cursor?: string }>('/api/logs', p, ac.signal).then(
      (r) => {
        if (ac.signal.aborted) return;
        setRecords((old) => (reset ? r.data ?? [] : old.concat(r.data ?? [])));
        setCursor(r.next_cursor || null);
        setDone(!r.next_cursor);
        setLoading(false);
        setError(undefined);
      },
      (e) => {
        if (isAbort(e) || ac.signal.aborted) return;
        setError(e);
        setLoading(false);
      },
    );
  };
  useEffect(() => {
    paramsRef.current = filterParams(applied, true, Date.now());
    setRecords([]);
    setCursor(null);
    setDone(false);
    loadPage(null, true);
    return () => fetchCtl.current?.abort();
  }, [searchKey]);

  // Infinite scroll: load the next page when the sentinel comes into view.
  const sentinel = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = sentinel.current;
    if (!el || done || !cursor) return;
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !loading) loadPage(cursor, false);
    }, { rootMargin: '400px' });
    io.observe(el);
    return () => io.disconnect();
  }, [cursor, done, loading]);

  // Live tail.
  const tailOn = applied.tail === '1';
  const [tailState, setTailState] = useState<TailState>('off');
  const [tailGen, setTailGen] = useState(0);
  const [tailed, setTailed] = useState<LogRecord[]>([]);
  const [pending, setPending] = useState<LogRecord[]>([]);
  const [dropped, setDropped] = useState(0);
  const [paused, setPaused] = useState(false);
  const pausedRef = useRef(false);
  pausedRef.current = paused;
  useEffect(() => {
    setTailed([]);
    setPending([]);
    setDropped(0);
    if (!tailOn) {
      setTailState('off');
      return;
    }
    const p = filterParams(applied, false, Date.now());
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}/api/logs/tail${encodeQuery(p)}`;
    let ws: WebSocket | null = null;
    let closed = false;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let failures = 0;
    const open = () => {
      setTailState('connecting');
      ws = new WebSocket(url, wsProtocols(getToken()));
      ws.onopen = () => {
        failures = 0;
        setTailState('live');
      };
      ws.onmessage = (ev) => {
        let frame: { type: string; record?: LogRecord; dropped?: number };
        try {
          frame = JSON.parse(String(ev.data));
        } catch {
          return;
        }
        if (frame.type === 'dropped') setDropped((d) => d + (frame.dropped ?? 0));
        if (frame.type === 'record' && frame.record) {
          const rec = frame.record;
          if (pausedRef.current) setPending((l) => [rec, ...l].slice(0, 5000));
          else setTailed((l) => [rec, ...l].slice(0, 5000));
        }
      };
      ws.onclose = (ev) => {
        if (closed) return;
        if (ev.code === TAIL_CLOSE_IDLE) {
          setTailState('idle');
          return;
        }
        // Refused or dropped (a limit, a restart): back off, 3 s doubling
        // up to a minute, so that refused clients do not hammer the server.
        setTailState('closed');
        failures++;
        retry = setTimeout(open, Math.min(60_000, 3000 * 2 ** (failures - 1)));
      };
    };
    open();
    return () => {
      closed = true;
      clearTimeout(retry);
      ws?.close();
    };
  }, [tailOn, searchKey, tailGen]);
  // Scrolling away from the newest lines pauses the tail; coming back resumes it.
  useEffect(() => {
    if (!tailOn) return;
    const onScroll = () => {
      const away = window.scrollY > 80;
      if (away !== pausedRef.current) {
        if (!away) resume();
        else setPaused(true);
      }
    };
    window.addEventListener('scroll', onScroll, { passive: true });
    return () => window.removeEventListener('scroll', onScroll);
  }, [tailOn]);
  const resume = () => {
    setPending((p) => {
      if (p.length) setTailed((l) => [...p, ...l].slice(0, 5000));
      return [];
    });
    setPaused(false);
  };

  const shown = tailOn ? tailed.concat(records) : records;

  return (
    <section class="page logs-page">
      <form class="card filters" onSubmit={(e) => { e.preventDefault(); if (!attrError) apply(form); }}>
        <label>
          {t('logs.service')}
          <select name="service" value={form.service} onChange={(e) => set({ service: (e.target as HTMLSelectElement).value })}>
            <option value="">{t('logs.anyService')}</option>
            {(services.data ?? []).map((s) => <option key={s.name} value={s.name}>{s.name}</option>)}
            {form.service && !(services.data ?? []).some((s) => s.name === form.service) && <option value={form.service}>{form.service}</option>}
          </select>
        </label>
        <label>
          {t('logs.severity')}
          <select name="severity" value={form.severity} onChange={(e) => set({ severity: (e.target as HTMLSelectElement).value })}>
            {severities.map((s) => <option key={s} value={s}>{s || t('common.all')}</option>)}
          </select>
        </label>
        <label class="grow">
          {t('logs.text')}
          <input name="q" value={form.q} placeholder={t('logs.textHint')} onInput={(e) => set({ q: (e.target as HTMLInputElement).value })} />
        </label>
        <label>
          {t('logs.traceId')}
          <input name="trace_id" class="mono" value={form.trace_id} onInput={(e) => set({ trace_id: (e.target as HTMLInputElement).value })} />
        </label>
        <label>
          {t('logs.attrs')}
          <input name="attrs" value={form.attrs} placeholder={t('logs.attrsHint')} class={attrError ? 'invalid' : ''}
            onInput={(e) => set({ attrs: (e.target as HTMLInputElement).value })} />
        </label>
        <label>
          {t('traces.range')}
          <TimeRange value={form} onChange={(r: RangeState) => set({ range: r.range, from: r.from, to: r.to })} />
        </label>
        <button type="submit" class="primary">{t('common.search')}</button>
        <label class="check tail-toggle">
          <input type="checkbox" name="tail" checked={tailOn} onChange={(e) => apply({ ...applied, tail: (e.target as HTMLInputElement).checked ? '1' : undefined }, true)} />
          {t('logs.tail')}
        </label>
        {tailOn && (
          <span class={'tail-status ' + tailState + (paused ? ' paused' : '')}>
            {paused ? (
              <>
                {t('logs.tailPaused', { n: pending.length })}{' '}
                <button type="button" class="link" onClick={() => { window.scrollTo(0, 0); resume(); }}>{t('logs.tailResume')}</button>
              </>
            ) : tailState === 'idle' ? (
              <>
                {t('logs.tailIdle')}{' '}
                <button type="button" class="link tail-reconnect" onClick={() => setTailGen((g) => g + 1)}>{t('logs.tailReconnect')}</button>
              </>
            ) : tailState === 'live' ? t('logs.tailLive') : tailState === 'connecting' ? t('logs.tailConnecting') : t('logs.tailClosed')}
          </span>
        )}
      </form>
      <Histogram filters={applied} searchKey={searchKey} />
      {dropped > 0 && <div class="warning">{t('logs.dropped', { n: dropped })}</div>}
      <ErrorBox error={error} />
      <div class="log-list" role="list">
        {shown.map((r, i) => <LogRow key={i} r={r} />)}
      </div>
      {!loading && !error && shown.length === 0 && <p class="empty">{t('logs.empty')}</p>}
      <div ref={sentinel} class="sentinel">
        {loading ? <Loading /> : done && shown.length > 0 ? <span class="muted small">{t('logs.end')}</span> : null}
      </div>
    </section>
  );
}

function LogRow({ r }: { r: LogRecord }) {
  const [open, setOpen] = useState(false);
  const attrs = Object.entries(r.attributes ?? {});
  return (
    <div class={'log-row ' + severityClass(r.severity_number)} role="listitem">
      <div class="log-line" onClick={() => setOpen(!open)}>
        <span class="log-time mono">{formatTime(new Date(r.timestamp), true)}</span>
        <span class="sev">{r.severity_text || (r.severity_number ? String(r.severity_number) : '–')}</span>
        <span class="log-service">{r.service}</span>
        <LogBody body={r.body} />
        {r.trace_id && (
          <a class="trace-ref mono" href={`/trace/${r.trace_id}` + (r.span_id ? `?span=${r.span_id}` : '')} onClick={(e) => e.stopPropagation()}>
            {r.trace_id.slice(0, 8)}
          </a>
        )}
      </div>
      {open && (
        <div class="log-detail">
          {r.trace_id && <div class="small">trace_id <span class="mono log-trace-id">{r.trace_id}</span>{r.span_id && <> span_id <span class="mono">{r.span_id}</span></>}</div>}
          {r.event_name && <div class="small">event {r.event_name}</div>}
          <h4>{t('span.attributes')}</h4>
          <KVTable items={attrs} />
          <h4>{t('span.resource')}</h4>
          <KVTable items={Object.entries(r.resource ?? {})} />
          {r.scope?.name && <div class="small muted">scope {r.scope.name} {r.scope.version ?? ''}</div>}
        </div>
      )}
    </div>
  );
}

function Histogram({ filters, searchKey }: { filters: Filters; searchKey: string }) {
  const res = useAsync(async (s) => {
    const p = { ...filterParams(filters, true, Date.now()), buckets: '60' };
    return apiGet<{ data: { time: string; count: number }[]; step_seconds: number; approximate: boolean }>('/api/logs/histogram', p, s);
  }, [searchKey]);
  const data = useMemo<uPlot.AlignedData | null>(() => {
    if (!res.data) return null;
    return [res.data.data.map((b) => Date.parse(b.time) / 1000), res.data.data.map((b) => b.count)];
  }, [res.data]);
  if (res.error) return <ErrorBox error={res.error} />;
  if (!data) return <div class="card histogram placeholder" />;
  const options = (width: number): uPlot.Options => {
    const c = themeColors();
    const axis = { stroke: c.axis, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid, width: 1 } };
    const step = res.data?.step_seconds ?? 60;
    return {
      width, height: 110, legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false } },
      scales: { x: { time: true, range: (_u, min, max) => [min, max + step] } },
      axes: [axis, { ...axis, size: 44 }],
      series: [{}, { label: t('logs.volume'), fill: 'rgba(37,99,235,0.45)', stroke: '#2563eb', paths: bars(), points: { show: false } }],
      hooks: {
        // Dragging over the histogram narrows the time range.
        setSelect: [(u) => {
          if (u.select.width < 4) return;
          const from = Math.floor(u.posToVal(u.select.left, 'x') * 1000);
          const to = Math.ceil(u.posToVal(u.select.left + u.select.width, 'x') * 1000);
          const q = decodeQuery(location.search);
          navigate('/logs' + encodeQuery({ ...q, range: undefined, from: String(from), to: String(to) }));
        }],
      },
    };
  };
  return (
    <div class="card histogram">
      <Chart options={options} data={data} optionsKey={String(data[0].length)} />
      {res.data?.approximate && <span class="muted small">{t('logs.approximate')}</span>}
    </div>
  );
}

function bars(): uPlot.Series.PathBuilder {
  return (u, seriesIdx, idx0, idx1) => {
    const xs = u.data[0];
    const ys = u.data[seriesIdx];
    const path = new Path2D();
    const w = xs.length > 1 ? Math.max(1, (u.valToPos(xs[1], 'x', true) - u.valToPos(xs[0], 'x', true)) * 0.85) : 4;
    const y0 = u.valToPos(0, 'y', true);
    for (let i = idx0; i <= idx1; i++) {
      const y = ys[i];
      if (y == null || y === 0) continue;
      const x = u.valToPos(xs[i], 'x', true);
      const top = u.valToPos(y as number, 'y', true);
      path.rect(x, top, w, y0 - top);
    }
    return { stroke: path, fill: path };
  };
}
