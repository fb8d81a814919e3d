// The alerts page: firing and pending alerts (with links to their
// expression, traces and logs), the rule groups with their state, the
// silences (list, create from an alert, expire) and the notification
// history with a test send per receiver. It refreshes itself every 10 s.
import { useEffect, useState } from 'preact/hooks';
import { apiGet, apiSend, ApiError } from '../lib/api';
import { useAsync } from '../lib/hooks';
import { t, type MessageKey } from '../lib/i18n';
import { formatTime, relativeTime } from '../lib/format';
import { decodeQuery, encodeQuery } from '../lib/query';
import { navigate } from '../lib/router';
import { alertLinks, exploreLink, formatMatchers, parseMatchers, silenceMatchers, type Matcher } from '../lib/alerts';
import { ErrorBox, Loading } from '../components/Misc';

type Labels = Record<string, string>;

interface AMAlert {
  labels: Labels;
  annotations: Labels;
  startsAt: string;
  endsAt?: string;
  fingerprint: string;
  generatorURL?: string;
  receivers?: { name: string }[];
  status: { state: string; silencedBy?: string[]; inhibitedBy?: string[] };
}

interface RuleAlert {
  labels: Labels;
  annotations: Labels;
  state: string;
  activeAt?: string;
  value: string;
}

interface Rule {
  type: 'alerting' | 'recording';
  name: string;
  query: string;
  duration?: number;
  state?: string;
  health: string;
  lastError?: string;
  lastEvaluation: string;
  evaluationTime: number;
  labels?: Labels;
  alerts?: RuleAlert[];
}

interface RuleGroup {
  name: string;
  file: string;
  interval: number;
  lastEvaluation: string;
  evaluationTime: number;
  rules: Rule[];
}

interface Silence {
  id: string;
  status: { state: string };
  matchers: Matcher[];
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
}

interface Notification {
  time: string;
  receiver: string;
  integration: string;
  index: number;
  groupKey: string;
  firing: number;
  resolved: number;
  ok: boolean;
  retry: boolean;
  message: string;
  durationMs: number;
  test: boolean;
}

interface ReceiverInfo {
  name: string;
  integrations: { type: string; index: number }[];
}

interface TestResult {
  receiver: string;
  ok: boolean;
  integrations: { type: string; index: number; ok: boolean; retry: boolean; message: string; durationMs: number }[];
}

interface RulesStatus {
  lastReload?: string;
  success: boolean;
  error?: string;
  files?: string[];
  leader?: boolean;
}

const tabs = ['alerts', 'rules', 'silences', 'notifications'] as const;
type Tab = (typeof tabs)[number];

const tabLabel: Record<Tab, MessageKey> = {
  alerts: 'alerts.tab.alerts',
  rules: 'alerts.tab.rules',
  silences: 'alerts.tab.silences',
  notifications: 'alerts.tab.notifications',
};

/** optional answers [] when a route is missing (a Vigil without that part configured). */
async function optional<T>(p: Promise<T>, empty: T): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return empty;
    throw e;
  }
}

function useTick(ms: number): number {
  const [n, setN] = useState(0);
  useEffect(() => {
    const id = setInterval(() => setN((x) => x + 1), ms);
    return () => clearInterval(id);
  }, [ms]);
  return n;
}

function LabelChips({ labels, skip = [] }: { labels: Labels; skip?: string[] }) {
  return (
    <div class="labels">
      {Object.keys(labels)
        .filter((k) => !skip.includes(k))
        .sort()
        .map((k) => (
          <span class="chip small" key={k}>
            {k}={labels[k]}
          </span>
        ))}
    </div>
  );
}

function StateBadge({ state }: { state: string }) {
  const known = ['firing', 'pending', 'inactive', 'active', 'suppressed', 'expired', 'ok', 'err', 'unknown'];
  const key = ('alerts.state.' + (known.includes(state) ? state : 'unknown')) as MessageKey;
  return <span class={'badge state-' + state}>{t(key)}</span>;
}

function ago(iso: string | undefined, now: Date): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (!Number.isFinite(d.getTime()) || d.getFullYear() < 2000) return '–';
  return relativeTime(d, now, { now: t('time.now'), ago: (v: string) => t('time.ago', { v }) });
}

export function AlertsPage({ search }: { search: string }) {
  const q = decodeQuery(search);
  const tab: Tab = (tabs as readonly string[]).includes(q.tab) ? (q.tab as Tab) : 'alerts';
  const tick = useTick(10000);
  const [changed, setChanged] = useState(0);
  const status = useAsync((s) => optional(apiGet<{ data: RulesStatus }>('/api/vigil/rules/status', undefined, s).then((r) => r.data), undefined), [tick]);
  const go = (next: Record<string, string | undefined>) => navigate('/alerts' + encodeQuery({ tab, ...next }));
  return (
    <section class="page alerts-page">
      <div class="page-head">
        <h1>{t('alerts.title')}</h1>
        <div class="tabs" role="tablist">
          {tabs.map((x) => (
            <button key={x} role="tab" data-tab={x} class={x === tab ? 'active' : ''} onClick={() => navigate('/alerts' + encodeQuery({ tab: x }))}>
              {t(tabLabel[x])}
            </button>
          ))}
        </div>
      </div>
      {status.data && !status.data.success && (
        <div class="error rules-reload-error" role="alert">
          {t('alerts.reloadFailed')}: {status.data.error}
        </div>
      )}
      {tab === 'alerts' && <ActiveAlerts tick={tick + changed} onSilence={(labels) => go({ tab: 'silences', matchers: formatMatchers(silenceMatchers(labels)) })} />}
      {tab === 'rules' && <Rules tick={tick} />}
      {tab === 'silences' && <Silences tick={tick + changed} prefill={q.matchers ?? ''} onChange={() => setChanged((n) => n + 1)} />}
      {tab === 'notifications' && <Notifications tick={tick + changed} />}
    </section>
  );
}

function ActiveAlerts({ tick, onSilence }: { tick: number; onSilence: (labels: Labels) => void }) {
  const res = useAsync((s) => optional(apiGet<AMAlert[]>('/api/v2/alerts', undefined, s), []), [tick]);
  const rules = useAsync((s) => optional(apiGet<{ data: { alerts: RuleAlert[] } }>('/api/v1/alerts', undefined, s).then((r) => r.data.alerts ?? []), []), [tick]);
  const now = new Date();
  const alerts = (res.data ?? []).slice().sort((a, b) => b.startsAt.localeCompare(a.startsAt));
  const pending = (rules.data ?? []).filter((a) => a.state === 'pending');
  return (
    <div class="alerts-list">
      <ErrorBox error={res.error ?? rules.error} />
      {res.loading && !res.data && <Loading />}
      {res.data && alerts.length === 0 && pending.length === 0 && <p class="empty">{t('alerts.none')}</p>}
      {alerts.map((a) => {
        const links = alertLinks(a.labels, a.startsAt, a.endsAt, now.getTime());
        const state = a.status.state === 'suppressed' ? 'suppressed' : 'firing';
        return (
          <div class="card alert-card" key={a.fingerprint} data-alertname={a.labels.alertname}>
            <div class="alert-head">
              <StateBadge state={state} />
              <strong class="alert-name">{a.labels.alertname}</strong>
              {a.labels.severity && <span class={'badge severity-' + a.labels.severity}>{a.labels.severity}</span>}
              <span class="muted small" title={formatTime(new Date(a.startsAt))}>
                {t('alerts.since', { v: ago(a.startsAt, now) })}
              </span>
              <div class="spacer" />
              {a.generatorURL && <a class="chip" href={rewriteGenerator(a.generatorURL)}>{t('alerts.expression')}</a>}
              {links.traces && <a class="chip" href={links.traces}>{t('signal.traces')}</a>}
              {links.logs && <a class="chip" href={links.logs}>{t('signal.logs')}</a>}
              <button class="silence-alert" onClick={() => onSilence(a.labels)}>{t('alerts.silence')}</button>
            </div>
            {a.annotations.summary && <p class="alert-summary">{a.annotations.summary}</p>}
            {a.annotations.description && <p class="muted small">{a.annotations.description}</p>}
            <LabelChips labels={a.labels} skip={['alertname']} />
            {state === 'suppressed' && (a.status.silencedBy?.length ?? 0) > 0 && (
              <p class="muted small">{t('alerts.silencedBy', { v: a.status.silencedBy!.join(', ') })}</p>
            )}
          </div>
        );
      })}
      {pending.length > 0 && <h2>{t('alerts.pending')}</h2>}
      {pending.map((a, i) => (
        <div class="card alert-card pending" key={'p' + i}>
          <div class="alert-head">
            <StateBadge state="pending" />
            <strong>{a.labels.alertname}</strong>
            <span class="muted small">{t('alerts.since', { v: ago(a.activeAt, now) })}</span>
          </div>
          <LabelChips labels={a.labels} skip={['alertname']} />
        </div>
      ))}
    </div>
  );
}

/** rewriteGenerator keeps a generator URL on this host when it points at Vigil's explorer. */
function rewriteGenerator(u: string): string {
  try {
    const url = new URL(u, window.location.href);
    if (url.pathname === '/explore' || url.pathname === '/graph') {
      const expr = url.searchParams.get('q') ?? url.searchParams.get('g0.expr') ?? '';
      return exploreLink(expr);
    }
  } catch {
    // not a URL: show it as it is
  }
  return u;
}

function Rules({ tick }: { tick: number }) {
  const res = useAsync((s) => optional(apiGet<{ data: { groups: RuleGroup[] } }>('/api/v1/rules', undefined, s).then((r) => r.data.groups ?? []), []), [tick]);
  const now = new Date();
  return (
    <div class="rule-groups">
      <ErrorBox error={res.error} />
      {res.loading && !res.data && <Loading />}
      {res.data && res.data.length === 0 && <p class="empty">{t('alerts.noRules')}</p>}
      {(res.data ?? []).map((g) => (
        <div class="card rule-group" key={g.file + '/' + g.name}>
          <div class="alert-head">
            <strong>{g.name}</strong>
            <span class="muted small">{g.file}</span>
            <div class="spacer" />
            <span class="muted small">
              {t('alerts.every', { v: g.interval + 's' })} · {t('alerts.lastEval', { v: ago(g.lastEvaluation, now) })} · {(g.evaluationTime * 1000).toFixed(1)} ms
            </span>
          </div>
          <table class="grid rules-table">
            <thead>
              <tr>
                <th>{t('alerts.rule')}</th>
                <th>{t('alerts.state')}</th>
                <th>{t('alerts.query')}</th>
                <th>{t('alerts.for')}</th>
                <th>{t('alerts.lastEvalCol')}</th>
                <th>{t('common.error')}</th>
              </tr>
            </thead>
            <tbody>
              {g.rules.map((r) => (
                <tr key={r.name + r.query} data-rule={r.name}>
                  <td class="rule-name">{r.name}</td>
                  <td>{r.type === 'alerting' ? <StateBadge state={r.state ?? 'inactive'} /> : <span class="muted small">{t('alerts.recording')}</span>}</td>
                  <td class="mono small"><a href={exploreLink(r.query)}>{r.query}</a></td>
                  <td>{r.type === 'alerting' && r.duration ? r.duration + 's' : '–'}</td>
                  <td title={r.lastEvaluation}>{ago(r.lastEvaluation, now)} ({(r.evaluationTime * 1000).toFixed(1)} ms)</td>
                  <td class="error-text">{r.health === 'err' ? r.lastError : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </div>
  );
}

function Silences({ tick, prefill, onChange }: { tick: number; prefill: string; onChange: () => void }) {
  const res = useAsync((s) => optional(apiGet<Silence[]>('/api/v2/silences', undefined, s), []), [tick]);
  const [matchers, setMatchers] = useState(prefill);
  const [hours, setHours] = useState('2');
  const [author, setAuthor] = useState(() => localStorage.getItem('vigil.silence.author') ?? '');
  const [comment, setComment] = useState('');
  const [error, setError] = useState<Error | undefined>();
  const [created, setCreated] = useState('');
  useEffect(() => setMatchers(prefill), [prefill]);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      const ms = parseMatchers(matchers);
      const h = Number(hours);
      if (!Number.isFinite(h) || h <= 0) throw new Error(t('alerts.badDuration'));
      if (!author.trim()) throw new Error(t('alerts.needAuthor'));
      if (!comment.trim()) throw new Error(t('alerts.needComment'));
      localStorage.setItem('vigil.silence.author', author.trim());
      const start = new Date();
      const r = await apiSend<{ silenceID: string }>('POST', '/api/v2/silences', {
        matchers: ms,
        startsAt: start.toISOString(),
        endsAt: new Date(start.getTime() + h * 3600 * 1000).toISOString(),
        createdBy: author.trim(),
        comment: comment.trim(),
      });
      setCreated(r.silenceID);
      setComment('');
      onChange();
    } catch (err) {
      setError(err as Error);
    }
  };
  const expire = async (id: string) => {
    setError(undefined);
    try {
      await apiSend('DELETE', '/api/v2/silence/' + encodeURIComponent(id));
      onChange();
    } catch (err) {
      setError(err as Error);
    }
  };
  const list = (res.data ?? []).slice().sort((a, b) => (a.status.state === b.status.state ? b.startsAt.localeCompare(a.startsAt) : a.status.state === 'active' ? -1 : 1));
  return (
    <div class="silences">
      <form class="card silence-form" onSubmit={submit}>
        <h2>{t('alerts.newSilence')}</h2>
        <label>
          {t('alerts.matchers')}
          <input name="matchers" class="mono" value={matchers} placeholder='alertname="HighErrorRate", job="user-service"' onInput={(e) => setMatchers((e.target as HTMLInputElement).value)} />
        </label>
        <div class="row">
          <label>
            {t('alerts.hours')}
            <input name="hours" type="number" min="0.1" step="any" value={hours} onInput={(e) => setHours((e.target as HTMLInputElement).value)} />
          </label>
          <label>
            {t('alerts.author')}
            <input name="author" value={author} onInput={(e) => setAuthor((e.target as HTMLInputElement).value)} />
          </label>
          <label class="grow">
            {t('alerts.comment')}
            <input name="comment" value={comment} onInput={(e) => setComment((e.target as HTMLInputElement).value)} />
          </label>
          <button type="submit" class="primary">{t('alerts.create')}</button>
        </div>
        {created && <p class="muted small silence-created">{t('alerts.created', { v: created })}</p>}
      </form>
      <ErrorBox error={error ?? res.error} />
      {res.loading && !res.data && <Loading />}
      {res.data && list.length === 0 && <p class="empty">{t('alerts.noSilences')}</p>}
      {list.length > 0 && (
        <table class="grid silences-table">
          <thead>
            <tr>
              <th>{t('alerts.state')}</th>
              <th>{t('alerts.matchers')}</th>
              <th>{t('alerts.ends')}</th>
              <th>{t('alerts.author')}</th>
              <th>{t('alerts.comment')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((s) => (
              <tr key={s.id} data-silence={s.id}>
                <td><StateBadge state={s.status.state} /></td>
                <td class="mono small">{formatMatchers(s.matchers)}</td>
                <td title={s.endsAt}>{formatTime(new Date(s.endsAt))}</td>
                <td>{s.createdBy}</td>
                <td>{s.comment}</td>
                <td>{s.status.state !== 'expired' && <button class="expire-silence" onClick={() => expire(s.id)}>{t('alerts.expire')}</button>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function Notifications({ tick }: { tick: number }) {
  const res = useAsync((s) => optional(apiGet<{ data: Notification[] }>('/api/vigil/notifications', { limit: 200 }, s).then((r) => r.data ?? []), []), [tick]);
  const receivers = useAsync((s) => optional(apiGet<{ data: ReceiverInfo[] }>('/api/vigil/receivers', undefined, s).then((r) => r.data ?? []), []), []);
  const [testing, setTesting] = useState('');
  const [result, setResult] = useState<{ name: string; text: string; ok: boolean } | undefined>();
  const now = new Date();
  const test = async (name: string) => {
    setTesting(name);
    setResult(undefined);
    try {
      const r = await apiSend<{ data: TestResult }>('POST', '/api/vigil/receivers/' + encodeURIComponent(name) + '/test');
      const ints = r.data?.integrations ?? [];
      const text = ints.map((i) => `${i.type}[${i.index}]: ${i.ok ? 'OK' : t('common.error')}${i.message ? ' — ' + i.message : ''} (${i.durationMs.toFixed(0)} ms)`).join('\n');
      setResult({ name, ok: r.data.ok, text: text || t('alerts.noIntegrations') });
    } catch (e) {
      setResult({ name, ok: false, text: (e as Error).message });
    } finally {
      setTesting('');
    }
  };
  return (
    <div class="notifications">
      <ErrorBox error={receivers.error} />
      {(receivers.data ?? []).length > 0 && (
        <div class="card receivers">
          <h2>{t('alerts.receivers')}</h2>
          {(receivers.data ?? []).map((r) => (
            <div class="receiver-row" key={r.name} data-receiver={r.name}>
              <strong>{r.name}</strong>
              <span class="muted small">{r.integrations.map((i) => i.type).join(', ') || '–'}</span>
              <button class="test-receiver" disabled={testing === r.name} onClick={() => test(r.name)}>
                {testing === r.name ? t('common.loading') : t('alerts.test')}
              </button>
              {result && result.name === r.name && <pre class={'test-result ' + (result.ok ? 'ok' : 'error-text')}>{result.text}</pre>}
            </div>
          ))}
        </div>
      )}
      <ErrorBox error={res.error} />
      {res.loading && !res.data && <Loading />}
      {res.data && res.data.length === 0 && <p class="empty">{t('alerts.noNotifications')}</p>}
      {(res.data ?? []).length > 0 && (
        <table class="grid notifications-table">
          <thead>
            <tr>
              <th>{t('alerts.when')}</th>
              <th>{t('alerts.receiver')}</th>
              <th>{t('alerts.alertsCol')}</th>
              <th>{t('alerts.result')}</th>
            </tr>
          </thead>
          <tbody>
            {(res.data ?? []).map((n, i) => (
              <tr key={i}>
                <td title={n.time}>{ago(n.time, now)}</td>
                <td>
                  {n.receiver} <span class="muted small">{n.integration}[{n.index}]{n.test ? ' · ' + t('alerts.testSend') : ''}</span>
                </td>
                <td>
                  {n.firing} {t('alerts.state.firing')} · {n.resolved} {t('alerts.resolved')}
                </td>
                <td class={n.ok ? '' : 'error-text'}>
                  {n.ok ? 'OK' : t('common.error')}
                  {n.message ? ': ' + n.message : ''} <span class="muted small">({n.durationMs.toFixed(0)} ms{!n.ok && n.retry ? ', ' + t('alerts.retried') : ''})</span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
