// The targets page: what Vigil scrapes (/api/v1/targets, grouped by
// scrape pool, with health, last scrape and error) and what registered
// with its service registry (/api/vigil/registry: services, instances
// and their checks), on two tabs that share a filter box and a "show
// only unhealthy" toggle. State is in the URL; it refreshes itself every
// 15 s while the browser tab is visible.
import { useEffect, useState } from 'preact/hooks';
import { apiGet, apiGetWithHeaders, ApiError } from '../lib/api';
import { useAsync } from '../lib/hooks';
import { t, type MessageKey } from '../lib/i18n';
import { formatDuration, formatTime, relativeTime } from '../lib/format';
import { decodeQuery, encodeQuery } from '../lib/query';
import { navigate } from '../lib/router';
import {
  checkStatus,
  clip,
  findTarget,
  groupTargets,
  instanceAddress,
  instanceLinks,
  labelsShown,
  normalizeRegistry,
  normalizeTargets,
  pageSearch,
  pageState,
  scrapeLeader,
  serviceCounts,
  shapeServices,
  targetCounts,
  validTime,
  type ActiveTarget,
  type CheckStatus,
  type Filter,
  type Health,
  type PageState,
  type RegistryCheck,
  type RegistryState,
  type Tab,
  type TargetDiscovery,
  type Transition,
} from '../lib/targets';
import { ErrorBox, Loading } from '../components/Misc';

const REFRESH_SECONDS = 15;

const tabs: Tab[] = ['targets', 'services'];
const tabLabel: Record<Tab, MessageKey> = { targets: 'targets.tab.targets', services: 'targets.tab.services' };

/** useVisibleTick counts every ms while the document is visible, and once more when it becomes visible again. */
function useVisibleTick(ms: number): number {
  const [n, setN] = useState(0);
  useEffect(() => {
    const bump = () => !document.hidden && setN((x) => x + 1);
    const id = setInterval(bump, ms);
    document.addEventListener('visibilitychange', bump);
    return () => {
      clearInterval(id);
      document.removeEventListener('visibilitychange', bump);
    };
  }, [ms]);
  return n;
}

/** optional reads a route that this Vigil does not serve as empty, other errors as errors. */
async function optional<T>(p: Promise<T>, empty: T): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return empty;
    throw e;
  }
}

function ago(d: Date | null, now: Date): string {
  return d ? relativeTime(d, now, { now: t('time.now'), ago: (v: string) => t('time.ago', { v }) }) : t('targets.never');
}

function HealthBadge({ health }: { health: Health }) {
  return <span class={'badge health-' + health}>{t(('targets.health.' + health) as MessageKey)}</span>;
}

function StatusBadge({ status }: { status: CheckStatus }) {
  return <span class={'badge status-' + status}>{t(('targets.status.' + status) as MessageKey)}</span>;
}

export function TargetsPage({ search }: { search: string }) {
  const st = pageState(decodeQuery(search));
  const [draft, setDraft] = useState(st.text);
  useEffect(() => setDraft(st.text), [st.text]);
  const go = (patch: Partial<PageState>, replace = true) => navigate('/targets' + pageSearch({ ...st, ...patch }), replace);
  const tick = useVisibleTick(REFRESH_SECONDS * 1000);
  const filter: Filter = { text: st.text, unhealthyOnly: st.unhealthyOnly };
  return (
    <section class="page targets-page">
      <div class="page-head targets-head">
        <h1>{t('targets.title')}</h1>
        <div class="tabs" role="tablist">
          {tabs.map((x) => (
            <button key={x} role="tab" aria-selected={x === st.tab} data-tab={x} class={x === st.tab ? 'active' : ''} onClick={() => go({ tab: x }, false)}>
              {t(tabLabel[x])}
            </button>
          ))}
        </div>
        <div class="spacer" />
        <input
          type="search"
          name="filter"
          class="targets-filter"
          placeholder={t(st.tab === 'services' ? 'targets.filterServices' : 'targets.filter')}
          value={draft}
          onInput={(e) => {
            const v = (e.target as HTMLInputElement).value;
            setDraft(v);
            go({ text: v });
          }}
        />
        <label class="check">
          <input type="checkbox" name="unhealthy" checked={st.unhealthyOnly} onChange={(e) => go({ unhealthyOnly: (e.target as HTMLInputElement).checked })} />
          {t('targets.unhealthyOnly')}
        </label>
        <span class="muted small">{t('targets.live', { v: REFRESH_SECONDS })}</span>
      </div>
      {st.tab === 'targets' ? <ScrapeTargets tick={tick} filter={filter} /> : <RegisteredServices tick={tick} filter={filter} />}
    </section>
  );
}

/* ---------- scrape targets ---------- */

interface TargetsAnswer {
  data: TargetDiscovery;
  leader: boolean | undefined;
}

async function loadTargets(signal: AbortSignal): Promise<TargetsAnswer> {
  try {
    const r = await apiGetWithHeaders<{ data: TargetDiscovery | null }>('/api/v1/targets', undefined, signal);
    return { data: normalizeTargets(r.data?.data), leader: scrapeLeader(r.headers) };
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return { data: normalizeTargets(null), leader: undefined };
    throw e;
  }
}

function ScrapeTargets({ tick, filter }: { tick: number; filter: Filter }) {
  const res = useAsync(loadTargets, [tick]);
  const now = new Date();
  const d = res.data?.data;
  const pools = d ? groupTargets(d, filter) : [];
  const counts = d ? targetCounts(d) : undefined;
  return (
    <div class="scrape-targets">
      {res.data?.leader === false && (
        <div class="warning not-leader" role="status">
          {t('targets.notLeader')}
        </div>
      )}
      <ErrorBox error={res.error} />
      {res.loading && !res.data && <Loading />}
      {counts && d!.activeTargets.length > 0 && (
        <p class="muted small targets-summary">{t('targets.summary', { up: counts.up, down: counts.down, unknown: counts.unknown })}</p>
      )}
      {d && d.activeTargets.length === 0 && res.data?.leader !== false && <p class="empty">{t('targets.none')}</p>}
      {d && d.activeTargets.length > 0 && pools.length === 0 && <p class="empty">{t('targets.noMatch')}</p>}
      {pools.map((p) => (
        <div class="card target-pool" key={p.name} data-pool={p.name}>
          <div class="pool-head">
            <strong class="pool-name">{p.name}</strong>
            {p.total > 0 && <span class={'chip small ' + (p.up === p.total ? 'pool-ok' : 'pool-bad')}>{t('targets.poolUp', { up: p.up, total: p.total })}</span>}
            {p.dropped > 0 && <span class="muted small">{t('targets.dropped', { v: p.dropped })}</span>}
          </div>
          {p.targets.length > 0 && (
            <table class="grid compact targets-table">
              <thead>
                <tr>
                  <th>{t('targets.col.endpoint')}</th>
                  <th>{t('targets.col.health')}</th>
                  <th>{t('targets.col.labels')}</th>
                  <th>{t('targets.col.lastScrape')}</th>
                  <th>{t('targets.col.duration')}</th>
                  <th>{t('targets.col.error')}</th>
                </tr>
              </thead>
              <tbody>
                {p.targets.map((x) => (
                  <TargetRow key={x.scrapeUrl} target={x} now={now} />
                ))}
              </tbody>
            </table>
          )}
        </div>
      ))}
    </div>
  );
}

function TargetRow({ target: x, now }: { target: ActiveTarget; now: Date }) {
  const last = validTime(x.lastScrape);
  return (
    <tr data-target={x.scrapeUrl} data-health={x.health} class={'target-row health-' + x.health}>
      <td class="endpoint">
        <a class="mono" href={x.scrapeUrl} target="_blank" rel="noopener noreferrer" title={x.globalUrl && x.globalUrl !== x.scrapeUrl ? x.globalUrl : undefined}>
          {x.scrapeUrl}
        </a>
      </td>
      <td>
        <HealthBadge health={x.health} />
      </td>
      <td>
        <div class="labels">
          {labelsShown(x).map(([k, v]) => (
            <span class="chip small" key={k}>
              {k}={v}
            </span>
          ))}
        </div>
      </td>
      <td class="nowrap" title={last ? formatTime(last) : ''}>
        {ago(last, now)}
        {x.scrapeInterval && <div class="muted small">{t('targets.every', { v: x.scrapeInterval })}</div>}
      </td>
      <td class="nowrap num">{last ? formatDuration(x.lastScrapeDuration * 1e6) : '–'}</td>
      <td class="error-text target-error">{x.lastError}</td>
    </tr>
  );
}

/* ---------- registered services ---------- */

async function loadRegistry(signal: AbortSignal): Promise<RegistryState> {
  const r = await optional(apiGet<{ data: RegistryState | null }>('/api/vigil/registry', undefined, signal), { data: null });
  return normalizeRegistry(r.data);
}

function RegisteredServices({ tick, filter }: { tick: number; filter: Filter }) {
  const res = useAsync(loadRegistry, [tick]);
  // The scrape targets, to link an instance to its own; the registry page works without them.
  const targets = useAsync((s) => loadTargets(s).then((r) => r.data).catch(() => undefined), [tick]);
  const now = new Date();
  const d = res.data;
  const services = d ? shapeServices(d, filter) : [];
  const counts = d ? serviceCounts(d) : undefined;
  return (
    <div class="registry-services">
      <ErrorBox error={res.error} />
      {res.loading && !d && <Loading />}
      {d && !d.enabled && <p class="empty registry-off">{t('targets.registryOff')}</p>}
      {d && d.enabled && (
        <p class="muted small targets-summary">
          {counts && t('targets.serviceSummary', { passing: counts.passing, warning: counts.warning, critical: counts.critical, maintenance: counts.maintenance })}
          {d.node && ' · ' + t('targets.node', { name: d.node.name, address: d.node.address || '–', dc: d.node.datacenter })}
        </p>
      )}
      {d && d.enabled && d.services.length === 0 && <p class="empty">{t('targets.noServices')}</p>}
      {d && d.services.length > 0 && services.length === 0 && <p class="empty">{t('targets.noMatch')}</p>}
      {services.map((s) => (
        <div class="card registry-service" key={s.name} data-service={s.name}>
          <div class="pool-head">
            <StatusBadge status={s.status} />
            <strong class="service-name">{s.name}</strong>
            <span class="muted small">{s.instances.length === 1 ? t('targets.oneInstance') : t('targets.instances', { v: s.instances.length })}</span>
          </div>
          {s.instances.map((i) => {
            const addr = instanceAddress(i, d!.node);
            const links = instanceLinks(s.name, addr);
            const target = findTarget(targets.data, addr);
            return (
              <div class="registry-instance" key={i.id} data-instance={i.id}>
                <div class="instance-head">
                  <StatusBadge status={i.status} />
                  <strong class="instance-id">{i.id}</strong>
                  <span class="mono small">{addr || t('targets.noAddress')}</span>
                  {!i.address && addr && <span class="muted small">{t('targets.nodeAddress')}</span>}
                  {i.tags.map((tag) => (
                    <span class="chip small tag" key={'t' + tag}>
                      {tag}
                    </span>
                  ))}
                  {Object.entries(i.meta)
                    .sort(([a], [b]) => a.localeCompare(b))
                    .map(([k, v]) => (
                      <span class="chip small meta" key={'m' + k}>
                        {k}={v}
                      </span>
                    ))}
                  <div class="spacer" />
                  {target && (
                    <a class="chip scrape-target-link" href={'/targets' + encodeQuery({ tab: 'targets', q: target.scrapeUrl })}>
                      {t('targets.scrapeTarget')} <HealthBadge health={target.health} />
                    </a>
                  )}
                  {addr && (
                    <a class="chip metrics-link" href={links.metrics}>
                      {t('signal.metrics')}
                    </a>
                  )}
                  <a class="chip traces-link" href={links.traces}>
                    {t('signal.traces')}
                  </a>
                </div>
                {i.checks.length === 0 ? (
                  <p class="muted small no-checks">{t('targets.noChecks')}</p>
                ) : (
                  <table class="grid compact checks-table">
                    <thead>
                      <tr>
                        <th>{t('targets.col.status')}</th>
                        <th>{t('targets.col.check')}</th>
                        <th>{t('targets.col.output')}</th>
                        <th>{t('targets.col.lastCheck')}</th>
                        <th>{t('targets.col.since')}</th>
                        <th>{t('targets.col.interval')}</th>
                      </tr>
                    </thead>
                    <tbody>
                      {i.checks.map((c) => (
                        <CheckRow key={c.id} check={c} now={now} tick={tick} />
                      ))}
                    </tbody>
                  </table>
                )}
              </div>
            );
          })}
        </div>
      ))}
    </div>
  );
}

function CheckRow({ check: c, now, tick }: { check: RegistryCheck; now: Date; tick: number }) {
  const [history, setHistory] = useState(false);
  const last = validTime(c.lastCheck);
  const since = validTime(c.statusSince);
  const every = c.interval ? t('targets.every', { v: c.interval }) : c.ttl ? t('targets.ttl', { v: c.ttl }) : '–';
  return (
    <>
      <tr data-check={c.id} data-status={c.status} class={'check-row status-' + c.status}>
        <td>
          <StatusBadge status={c.status} />
        </td>
        <td class="check-name">
          <div>{c.name || c.id}</div>
          <div class="muted small mono">
            {c.id} · {c.type}
            {c.target ? ' · ' + c.target : ''}
          </div>
          {c.notes && <div class="muted small">{c.notes}</div>}
        </td>
        <td class="check-output">
          <Output text={c.output} />
        </td>
        <td class="nowrap" title={last ? formatTime(last) : ''}>
          {ago(last, now)}
        </td>
        <td class="nowrap" title={since ? formatTime(since) : ''}>
          {since ? ago(since, now) : '–'}
        </td>
        <td class="nowrap">
          {every}
          <div>
            <button class="link small check-history-toggle" onClick={() => setHistory(!history)}>
              {t(history ? 'targets.hideHistory' : 'targets.history')}
            </button>
          </div>
        </td>
      </tr>
      {history && (
        <tr class="check-history-row">
          <td colSpan={6}>
            <CheckHistory id={c.id} tick={tick} now={now} />
          </td>
        </tr>
      )}
    </>
  );
}

/** Output shows a check's output as preformatted text, clipped with a button to show all of it. */
function Output({ text }: { text: string }) {
  const [open, setOpen] = useState(false);
  if (!text) return <span class="muted">–</span>;
  const c = clip(text);
  return (
    <div class="output">
      <pre class={'check-output-text' + (c.clipped && !open ? ' clipped' : '')}>{open ? text : c.text}</pre>
      {c.clipped && (
        <button class="link small output-toggle" onClick={() => setOpen(!open)}>
          {t(open ? 'targets.showLess' : 'targets.showMore')}
        </button>
      )}
    </div>
  );
}

const HISTORY_LIMIT = 20;

function CheckHistory({ id, tick, now }: { id: string; tick: number; now: Date }) {
  const res = useAsync(
    (s) =>
      apiGet<{ data: { transitions: Transition[] | null } | null }>(
        '/api/vigil/registry/checks/' + encodeURIComponent(id) + '/history',
        { limit: HISTORY_LIMIT },
        s,
      ).then((r) => r.data?.transitions ?? []),
    [id, tick],
  );
  return (
    <div class="check-history" data-history={id}>
      <ErrorBox error={res.error} />
      {res.loading && !res.data && <Loading />}
      {res.data && res.data.length === 0 && <p class="muted small">{t('targets.noHistory')}</p>}
      {res.data && res.data.length > 0 && (
        <ol class="transitions">
          {res.data.map((x, n) => {
            const at = validTime(x.at);
            return (
              <li key={n}>
                <StatusBadge status={checkStatus(x.status)} />
                <span class="small nowrap" title={at ? formatTime(at) : ''}>
                  {ago(at, now)}
                </span>
                {x.output && <span class="mono small transition-output">{clip(x.output, 1, 200).text}</span>}
              </li>
            );
          })}
        </ol>
      )}
    </div>
  );
}
