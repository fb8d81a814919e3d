// The metrics explorer: a PromQL editor with metric, label and value
// completion, errors from the API shown under it, and the result as a
// uPlot chart (query_range) or a table (instant query). State is in the URL.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { apiGet } from '../lib/api';
import { useAsync } from '../lib/hooks';
import { t } from '../lib/i18n';
import { decodeQuery, encodeQuery } from '../lib/query';
import { navigate } from '../lib/router';
import { autoStep, resolveRange, type RangeState } from '../lib/timerange';
import { formatNumber, formatTime, parseDuration } from '../lib/format';
import { completionContext, promFunctions, rankCompletions, seriesName, type CompletionContext } from '../lib/promql';
import { Chart, seriesPalette, themeColors } from '../components/Chart';
import { Loading } from '../components/Misc';
import { TimeRange } from '../components/TimeRange';

const MAX_SERIES = 100;

interface PromSeries {
  metric: Record<string, string>;
  values?: [number, string][];
  value?: [number, string];
}
interface PromData {
  resultType: 'matrix' | 'vector' | 'scalar' | 'string';
  result: PromSeries[] | [number, string];
}

interface State extends RangeState {
  q: string;
  step: string;
  tab: string;
}

function stateFrom(search: string): State {
  const q = decodeQuery(search);
  return { q: q.q ?? '', range: q.range, from: q.from, to: q.to, step: q.step ?? '', tab: q.tab ?? 'chart' };
}

function toURL(s: State): string {
  return '/explore' + encodeQuery({ q: s.q, range: s.range, from: s.from, to: s.to, step: s.step, tab: s.tab === 'chart' ? undefined : s.tab });
}

// Names for completion, loaded once per page visit.
function useNames() {
  const metrics = useAsync((s) => apiGet<{ data: string[] | null }>('/api/v1/label/__name__/values', undefined, s).then((r) => r.data ?? []), []);
  const meta = useAsync((s) => apiGet<{ data: Record<string, { type: string; help: string }[]> | null }>('/api/v1/metadata', undefined, s)
    .then((r) => r.data ?? {}).catch(() => ({})), []);
  return { metrics: metrics.data ?? [], meta: (meta.data ?? {}) as Record<string, { type: string; help: string }[]> };
}

interface Suggestion {
  text: string;
  kind: string;
  help?: string;
}

export function MetricsPage({ search }: { search: string }) {
  const applied = useMemo(() => stateFrom(search), [search]);
  const [draft, setDraft] = useState(applied.q);
  useEffect(() => setDraft(applied.q), [applied.q]);
  const run = (patch: Partial<State> = {}, replace = false) => navigate(toURL({ ...applied, q: draft.trim(), ...patch }), replace);
  const { start, end } = resolveRange(applied, Date.now());
  const step = applied.step && parseDuration(applied.step) ? parseDuration(applied.step)! / 1e6 : autoStep(end - start);

  const result = useAsync<PromData | null>(async (s) => {
    if (!applied.q) return null;
    if (applied.tab === 'table') {
      const r = await apiGet<{ data: PromData }>('/api/v1/query', { query: applied.q, time: (end / 1000).toFixed(3) }, s);
      return r.data;
    }
    const r = await apiGet<{ data: PromData }>('/api/v1/query_range', {
      query: applied.q, start: (start / 1000).toFixed(3), end: (end / 1000).toFixed(3), step: String(step),
    }, s);
    return r.data;
  }, [search]);

  return (
    <section class="page metrics-page">
      <div class="card">
        <Editor value={draft} onChange={setDraft} onRun={() => run()} />
        {result.error && <div class="query-error error" role="alert">{result.error.message}</div>}
        <div class="controls">
          <button class="primary run-query" onClick={() => run()}>{t('common.run')}</button>
          <span class="muted small">{t('metrics.runHint')}</span>
          <span class="spacer" />
          <label class="inline">
            {t('metrics.range')}
            <TimeRange value={applied} onChange={(r) => run({ range: r.range, from: r.from, to: r.to })} />
          </label>
          <label class="inline">
            {t('metrics.step')}
            <input class="step" name="step" value={applied.step} placeholder={`${t('metrics.stepAuto')} (${step}s)`}
              onChange={(e) => run({ step: (e.target as HTMLInputElement).value.trim() }, true)} />
          </label>
          <span class="tabs">
            <button class={applied.tab !== 'table' ? 'active' : ''} onClick={() => run({ tab: 'chart' }, true)}>{t('metrics.chart')}</button>
            <button class={applied.tab === 'table' ? 'active' : ''} onClick={() => run({ tab: 'table' }, true)}>{t('metrics.table')}</button>
          </span>
        </div>
      </div>
      {!applied.q && <p class="empty">{t('metrics.empty')}</p>}
      {result.loading && applied.q && <Loading />}
      {result.data && (applied.tab === 'table' ? <ResultTable data={result.data} /> : <ResultChart data={result.data} start={start} end={end} />)}
    </section>
  );
}

function Editor({ value, onChange, onRun }: { value: string; onChange: (v: string) => void; onRun: () => void }) {
  const names = useNames();
  const ta = useRef<HTMLTextAreaElement>(null);
  const [ctx, setCtx] = useState<CompletionContext | null>(null);
  const [sel, setSel] = useState(0);
  const [labels, setLabels] = useState<string[]>([]);
  const [values, setValues] = useState<string[]>([]);
  const cache = useRef(new Map<string, Promise<string[]>>());
  const load = (path: string, params?: Record<string, string | string[]>) => {
    const key = path + JSON.stringify(params ?? {});
    let p = cache.current.get(key);
    if (!p) {
      p = apiGet<{ data: string[] | null }>(path, params).then((r) => r.data ?? [], () => []);
      cache.current.set(key, p);
    }
    return p;
  };
  useEffect(() => {
    if (!ctx) return;
    const match = ctx.metric ? { 'match[]': [ctx.metric] } : undefined;
    if (ctx.kind === 'label') load('/api/v1/labels', match).then(setLabels);
    if (ctx.kind === 'value' && ctx.label) load(`/api/v1/label/${encodeURIComponent(ctx.label)}/values`, match).then(setValues);
  }, [ctx?.kind, ctx?.metric, ctx?.label]);

  const suggestions: Suggestion[] = useMemo(() => {
    if (!ctx || ctx.kind === 'none') return [];
    if (ctx.kind === 'metric') {
      const ms = rankCompletions(names.metrics, ctx.prefix, 40).map((m) => ({
        text: m, kind: names.meta[m]?.[0]?.type ?? t('metrics.metric'), help: names.meta[m]?.[0]?.help,
      }));
      const fs = rankCompletions(promFunctions, ctx.prefix, 10).map((f) => ({ text: f, kind: t('metrics.function') }));
      return fs.concat(ms).slice(0, 40);
    }
    if (ctx.kind === 'label') return rankCompletions(labels.filter((l) => l !== '__name__'), ctx.prefix, 40).map((l) => ({ text: l, kind: t('metrics.label') }));
    return rankCompletions(values, ctx.prefix, 40).map((v) => ({ text: v, kind: ctx.label ?? '' }));
  }, [ctx, names.metrics, names.meta, labels, values]);

  const refresh = () => {
    const el = ta.current!;
    setCtx(completionContext(el.value, el.selectionStart));
    setSel(0);
  };
  const accept = (s: Suggestion) => {
    if (!ctx) return;
    const el = ta.current!;
    const endIdx = el.selectionStart;
    let insert = s.text;
    if (ctx.kind === 'value') insert = s.text.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
    const next = value.slice(0, ctx.from) + insert + value.slice(endIdx);
    const pos = ctx.from + insert.length;
    // Update the DOM and the caret now, not after the next render: a key
    // typed right after the completion must land after the inserted text.
    el.value = next;
    el.focus();
    el.setSelectionRange(pos, pos);
    onChange(next);
    setCtx(null);
  };
  const open = suggestions.length > 0;
  return (
    <div class="editor">
      <label class="sr-only" for="promql">{t('metrics.query')}</label>
      <textarea
        id="promql"
        ref={ta}
        name="query"
        class="mono promql"
        rows={Math.min(8, Math.max(2, value.split('\n').length))}
        spellcheck={false}
        autoComplete="off"
        placeholder={t('metrics.placeholder')}
        value={value}
        onInput={(e) => {
          onChange((e.target as HTMLTextAreaElement).value);
          refresh();
        }}
        onClick={refresh}
        onBlur={() => setTimeout(() => setCtx(null), 150)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            setCtx(null);
            onRun();
            return;
          }
          if (e.key === ' ' && e.ctrlKey) {
            e.preventDefault();
            refresh();
            return;
          }
          if (!open) {
            if (e.key === 'Enter' && !e.shiftKey) {
              e.preventDefault();
              onRun();
            }
            return;
          }
          if (e.key === 'ArrowDown') {
            e.preventDefault();
            setSel((sel + 1) % suggestions.length);
          } else if (e.key === 'ArrowUp') {
            e.preventDefault();
            setSel((sel - 1 + suggestions.length) % suggestions.length);
          } else if (e.key === 'Enter' || e.key === 'Tab') {
            e.preventDefault();
            accept(suggestions[sel]);
          } else if (e.key === 'Escape') {
            setCtx(null);
          }
        }}
      />
      {open && (
        <ul class="suggestions" role="listbox">
          {suggestions.map((s, i) => (
            <li key={s.text} role="option" aria-selected={i === sel} class={i === sel ? 'active' : ''}
              onMouseDown={(e) => { e.preventDefault(); accept(s); }} title={s.help ?? ''}>
              <span class="mono">{s.text}</span>
              <span class="muted small">{s.kind}</span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function ResultChart({ data, start, end }: { data: PromData; start: number; end: number }) {
  const { aligned, names, total } = useMemo(() => {
    if (data.resultType !== 'matrix') {
      return { aligned: null, names: [] as string[], total: 0 };
    }
    const series = (data.result as PromSeries[]).slice(0, MAX_SERIES);
    const tsSet = new Set<number>();
    for (const s of series) for (const [ts] of s.values ?? []) tsSet.add(ts);
    const xs = [...tsSet].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const ys = series.map((s) => {
      const col: (number | null)[] = new Array(xs.length).fill(null);
      for (const [ts, v] of s.values ?? []) col[index.get(ts)!] = Number(v);
      return col;
    });
    return { aligned: [xs, ...ys] as uPlot.AlignedData, names: series.map((s) => seriesName(s.metric)), total: (data.result as PromSeries[]).length };
  }, [data]);
  if (data.resultType !== 'matrix') return <ResultTable data={data} />;
  if (!aligned || names.length === 0) return <p class="empty">{t('metrics.noData')}</p>;
  const options = (width: number): uPlot.Options => {
    const c = themeColors();
    const axis = { stroke: c.axis, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid, width: 1 } };
    return {
      width, height: 320,
      scales: { x: { time: true, range: () => [start / 1000, end / 1000] } },
      axes: [axis, { ...axis, size: 64, values: (_u, vals) => vals.map((v) => formatNumber(v)) }],
      legend: { live: true },
      series: [
        { value: (_u, v) => (v == null ? '–' : formatTime(new Date(v * 1000))) },
        ...names.map((n, i) => ({
          label: n, stroke: seriesPalette[i % seriesPalette.length], width: 1.5, spanGaps: false,
          // uPlot's default shows points only where they are sparse (a lone sample stays visible).
          value: (_u: uPlot, v: number | null) => (v == null ? '–' : formatNumber(v)),
        })),
      ],
    };
  };
  return (
    <div class="card result-chart">
      {total > names.length && <div class="warning">{t('metrics.tooMany', { n: names.length, total })}</div>}
      <Chart options={options} data={aligned} optionsKey={names.join('\n') + start + ':' + end} />
    </div>
  );
}

function ResultTable({ data }: { data: PromData }) {
  if (data.resultType === 'scalar' || data.resultType === 'string') {
    const [, v] = data.result as [number, string];
    return <table class="grid result-table"><tbody><tr><th>{data.resultType}</th><td>{v}</td></tr></tbody></table>;
  }
  const rows = data.result as PromSeries[];
  if (!rows.length) return <p class="empty">{t('metrics.noData')}</p>;
  return (
    <table class="grid result-table">
      <thead><tr><th>{t('metrics.series')}</th><th>{t('metrics.value')}</th></tr></thead>
      <tbody>
        {rows.slice(0, 2000).map((r, i) => {
          const v = r.value ?? r.values?.[r.values.length - 1];
          return (
            <tr key={i}>
              <td class="mono">{seriesName(r.metric)}</td>
              <td class="num">{v ? v[1] : '–'}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
