// Trace search, as Jaeger's: service, operation, tags, durations, time
// range and limit in the URL; results as a duration scatter and a list.
import { useMemo, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { apiGet } from '../lib/api';
import { useAsync } from '../lib/hooks';
import { t } from '../lib/i18n';
import { decodeQuery, encodeQuery, parseKeyValues } from '../lib/query';
import { navigate } from '../lib/router';
import { resolveRange, type RangeState } from '../lib/timerange';
import { formatDuration, formatTime } from '../lib/format';
import { searchStop, serviceColor, summarize, type JaegerTrace, type SearchError, type SearchStop, type TraceSummary } from '../lib/trace';
import { Chart, themeColors } from '../components/Chart';
import { ErrorBox, Loading } from '../components/Misc';
import { TimeRange } from '../components/TimeRange';
import { loadServices } from './Services';

interface Form {
  service: string;
  operation: string;
  tags: string;
  minDuration: string;
  maxDuration: string;
  range?: string;
  from?: string;
  to?: string;
  limit: string;
  sort: string;
}

function formFromSearch(search: string): Form {
  const q = decodeQuery(search);
  return {
    service: q.service ?? '',
    operation: q.operation ?? '',
    tags: q.tags ?? '',
    minDuration: q.minDuration ?? '',
    maxDuration: q.maxDuration ?? '',
    range: q.range,
    from: q.from,
    to: q.to,
    limit: q.limit ?? '20',
    sort: q.sort ?? '',
  };
}

/** searchParams turns the form into the parameters of GET /api/traces. */
export function searchParams(f: Form, now: number): Record<string, string | string[]> {
  const { start, end } = resolveRange(f, now);
  const p: Record<string, string | string[]> = {
    service: f.service,
    start: String(Math.floor(start * 1000)),
    end: String(Math.ceil(end * 1000)),
    limit: f.limit || '20',
  };
  if (f.operation) p.operation = f.operation;
  if (f.minDuration) p.minDuration = f.minDuration;
  if (f.maxDuration) p.maxDuration = f.maxDuration;
  const kv = parseKeyValues(f.tags);
  if (kv.pairs.length) p.tag = kv.pairs.map(([k, v]) => `${k}:${v}`);
  return p;
}

export function TracesPage({ search }: { search: string }) {
  const applied = useMemo(() => formFromSearch(search), [search]);
  const [form, setForm] = useState<Form>(applied);
  const [traceId, setTraceId] = useState('');
  const set = (patch: Partial<Form>) => setForm((f) => ({ ...f, ...patch }));
  const services = useAsync((s) => loadServices(s), []);
  const ops = useAsync(
    (s) => (form.service
      ? apiGet<{ data: string[] | null }>(`/api/services/${encodeURIComponent(form.service)}/operations`, undefined, s).then((r) => (r.data ?? []).sort())
      : Promise.resolve([] as string[])),
    [form.service],
  );
  const tagError = parseKeyValues(form.tags).error;
  const results = useAsync<{ traces: TraceSummary[]; start: number; end: number; stop: SearchStop | null } | null>(
    async (s) => {
      if (!applied.service) return null;
      const now = Date.now();
      const { start, end } = resolveRange(applied, now);
      const r = await apiGet<{ data: JaegerTrace[] | null; errors?: SearchError[] | null }>('/api/traces', searchParams(applied, now), s);
      return { traces: (r.data ?? []).map(summarize), start, end, stop: searchStop(r.errors) };
    },
    [search],
  );

  const submit = (e: Event) => {
    e.preventDefault();
    if (tagError) return;
    const { service, operation, tags, minDuration, maxDuration, range, from, to, limit, sort } = form;
    navigate('/traces' + encodeQuery({ service, operation, tags, minDuration, maxDuration, range, from, to, limit, sort }));
  };

  const sorted = useMemo(() => {
    const list = (results.data?.traces ?? []).slice();
    if (applied.sort === 'longest') list.sort((a, b) => b.duration - a.duration);
    else if (applied.sort === 'errors') list.sort((a, b) => b.errors - a.errors || b.start - a.start);
    else list.sort((a, b) => b.start - a.start);
    return list;
  }, [results.data, applied.sort]);

  return (
    <section class="page traces-page">
      <div class="split">
        <form class="card search-form" onSubmit={submit}>
          <h2>{t('traces.title')}</h2>
          <label>
            {t('traces.service')}
            <select name="service" value={form.service} onChange={(e) => set({ service: (e.target as HTMLSelectElement).value, operation: '' })}>
              <option value="">{t('traces.pickService')}</option>
              {(services.data ?? []).map((s) => (
                <option key={s.name} value={s.name}>{s.name}</option>
              ))}
              {form.service && !(services.data ?? []).some((s) => s.name === form.service) && (
                <option value={form.service}>{form.service}</option>
              )}
            </select>
          </label>
          <label>
            {t('traces.operation')}
            <select name="operation" value={form.operation} onChange={(e) => set({ operation: (e.target as HTMLSelectElement).value })}>
              <option value="">{t('traces.anyOperation')}</option>
              {(ops.data ?? []).map((o) => (
                <option key={o} value={o}>{o}</option>
              ))}
              {form.operation && !(ops.data ?? []).includes(form.operation) && <option value={form.operation}>{form.operation}</option>}
            </select>
          </label>
          <label>
            {t('traces.tags')}
            <input name="tags" value={form.tags} placeholder={t('traces.tagsHint')} class={tagError ? 'invalid' : ''}
              onInput={(e) => set({ tags: (e.target as HTMLInputElement).value })} />
            {tagError && <span class="error small">{tagError}</span>}
          </label>
          <div class="row2">
            <label>
              {t('traces.minDuration')}
              <input name="minDuration" value={form.minDuration} placeholder={t('traces.durationHint')}
                onInput={(e) => set({ minDuration: (e.target as HTMLInputElement).value.trim() })} />
            </label>
            <label>
              {t('traces.maxDuration')}
              <input name="maxDuration" value={form.maxDuration} placeholder={t('traces.durationHint')}
                onInput={(e) => set({ maxDuration: (e.target as HTMLInputElement).value.trim() })} />
            </label>
          </div>
          <label>
            {t('traces.range')}
            <TimeRange value={form} onChange={(r: RangeState) => set({ range: r.range, from: r.from, to: r.to })} />
          </label>
          <label>
            {t('traces.limit')}
            <input name="limit" type="number" min={1} max={1500} value={form.limit} onInput={(e) => set({ limit: (e.target as HTMLInputElement).value })} />
          </label>
          <button type="submit" class="primary" disabled={!form.service}>{t('common.search')}</button>
          <hr />
          <label>
            {t('traces.openById')}
            <span class="inline">
              <input name="traceID" value={traceId} onInput={(e) => setTraceId((e.target as HTMLInputElement).value.trim())} />
              <button type="button" disabled={!/^[0-9a-fA-F]{1,32}$/.test(traceId)} onClick={() => navigate('/trace/' + traceId.toLowerCase())}>
                {t('traces.open')}
              </button>
            </span>
          </label>
        </form>
        <div class="results">
          <ErrorBox error={results.error} />
          {results.loading && applied.service && <Loading />}
          {results.data && (
            <>
              <div class="results-head">
                <strong>{t('traces.found', { n: results.data.traces.length })}</strong>
                <select aria-label="sort" value={applied.sort}
                  onChange={(e) => navigate('/traces' + encodeQuery({ ...applied, sort: (e.target as HTMLSelectElement).value }), true)}>
                  <option value="">{t('traces.sortNewest')}</option>
                  <option value="longest">{t('traces.sortLongest')}</option>
                  <option value="errors">{t('traces.sortErrors')}</option>
                </select>
              </div>
              {results.data.stop && (
                <div class="warning search-incomplete" role="status">
                  {results.data.stop.from != null
                    ? t('traces.incomplete', { from: formatTime(new Date(results.data.stop.from)) })
                    : t('traces.incompleteNoTime')}
                </div>
              )}
              {results.data.traces.length > 0 && <Scatter traces={results.data.traces} start={results.data.start} end={results.data.end} />}
              {results.data.traces.length === 0 && <p class="empty">{t('traces.empty')}</p>}
              <ul class="trace-list">
                {sorted.map((tr) => <TraceRow key={tr.traceID} tr={tr} maxDuration={Math.max(...sorted.map((x) => x.duration))} />)}
              </ul>
            </>
          )}
        </div>
      </div>
    </section>
  );
}

function TraceRow({ tr, maxDuration }: { tr: TraceSummary; maxDuration: number }) {
  return (
    <li class={'trace-row' + (tr.errors ? ' has-errors' : '')}>
      <a href={'/trace/' + tr.traceID} class="trace-link">
        <div class="trace-row-head">
          <span class="trace-title">
            <span class="svc-dot" style={{ background: serviceColor(tr.rootService) }} />
            <span class="root-service">{tr.rootService}</span>: <span class="root-op">{tr.rootOperation}</span>
          </span>
          <span class="trace-id mono">{tr.traceID.slice(0, 12)}</span>
          <span class="duration">{formatDuration(tr.duration)}</span>
        </div>
        <div class="durbar"><span style={{ width: `${maxDuration ? Math.max(1, (tr.duration / maxDuration) * 100) : 0}%` }} /></div>
        <div class="trace-row-meta">
          <span class="span-count">{t('traces.spans', { n: tr.spans })}</span>
          {tr.errors > 0 && <span class="badge error-badge">{t('traces.errors', { n: tr.errors })}</span>}
          {tr.services.map((s) => (
            <span class="chip small" key={s.name}>
              <span class="svc-dot" style={{ background: serviceColor(s.name) }} />
              {s.name} ({s.count})
            </span>
          ))}
          <span class="spacer" />
          <span class="muted">{formatTime(new Date(tr.start / 1000))}</span>
        </div>
      </a>
    </li>
  );
}

function Scatter({ traces, start, end }: { traces: TraceSummary[]; start: number; end: number }) {
  const pts = useMemo(() => traces.slice().sort((a, b) => a.start - b.start), [traces]);
  const data = useMemo<uPlot.AlignedData>(() => [
    pts.map((p) => p.start / 1e6),
    pts.map((p) => (p.errors ? null : p.duration / 1000)),
    pts.map((p) => (p.errors ? p.duration / 1000 : null)),
  ], [pts]);
  const options = (width: number): uPlot.Options => {
    const c = themeColors();
    const axis = { stroke: c.axis, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid, width: 1 } };
    const pointSeries = (color: string, label: string): uPlot.Series => ({
      label, stroke: color, fill: color, paths: () => null, points: { show: true, size: 8, stroke: color, fill: color },
    });
    return {
      width, height: 160, legend: { show: false }, cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: () => [start / 1000, end / 1000] }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [axis, { ...axis, values: (_u, vals) => vals.map((v) => formatDuration(v * 1000)), size: 60 }],
      series: [{}, pointSeries('#2563eb', 'ok'), pointSeries('#dc2626', 'error')],
    };
  };
  const onCreate = (u: uPlot) => {
    u.over.addEventListener('click', () => {
      const i = u.cursor.idx;
      if (i != null && pts[i]) navigate('/trace/' + pts[i].traceID);
    });
    u.over.style.cursor = 'pointer';
  };
  return (
    <div class="card scatter" title={t('traces.chartHint')}>
      <Chart options={options} data={data} optionsKey={`${pts.length}:${pts[0]?.traceID}:${pts[pts.length - 1]?.traceID}:${start}:${end}`} onCreate={onCreate} />
    </div>
  );
}
