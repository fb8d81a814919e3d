// The landing page: every service Vigil has seen, with its last-seen time
// and links to its traces, logs and metrics.
import { useState } from 'preact/hooks';
import { apiGet, ApiError } from '../lib/api';
import { useAsync } from '../lib/hooks';
import { t } from '../lib/i18n';
import { formatTime, relativeTime } from '../lib/format';
import { encodeQuery, decodeQuery } from '../lib/query';
import { navigate } from '../lib/router';
import { ErrorBox, Loading } from '../components/Misc';

export interface ServiceInfo {
  name: string;
  last_seen?: string;
  signals?: string[];
}

/** loadServices reads /api/vigil/services, falling back to the Jaeger service list when that route does not exist. */
export async function loadServices(signal?: AbortSignal): Promise<ServiceInfo[]> {
  try {
    const r = await apiGet<{ data: ServiceInfo[] | null }>('/api/vigil/services', undefined, signal);
    return (r.data ?? []).slice().sort((a, b) => a.name.localeCompare(b.name));
  } catch (e) {
    if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 405)) throw e;
  }
  const r = await apiGet<{ data: string[] | null }>('/api/services', undefined, signal);
  return (r.data ?? []).slice().sort().map((name) => ({ name, signals: ['traces'] }));
}

export function ServicesPage({ search }: { search: string }) {
  const q = decodeQuery(search);
  const [filter, setFilter] = useState<string>(q.filter ?? '');
  const res = useAsync((s) => loadServices(s), []);
  const now = new Date();
  const words = { now: t('time.now'), ago: (v: string) => t('time.ago', { v }) };
  const shown = (res.data ?? []).filter((s) => s.name.toLowerCase().includes(filter.toLowerCase()));
  return (
    <section class="page services-page">
      <div class="page-head">
        <h1>{t('services.title')}</h1>
        <input
          type="search"
          placeholder={t('services.filter')}
          value={filter}
          onInput={(e) => {
            const v = (e.target as HTMLInputElement).value;
            setFilter(v);
            navigate('/services' + encodeQuery({ filter: v }), true);
          }}
        />
      </div>
      <ErrorBox error={res.error} />
      {res.loading && !res.data && <Loading />}
      {res.data && res.data.length === 0 && <p class="empty">{t('services.empty')}</p>}
      {shown.length > 0 && (
        <table class="grid services-table">
          <thead>
            <tr>
              <th>{t('services.name')}</th>
              <th>{t('services.signals')}</th>
              <th>{t('services.lastSeen')}</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((s) => {
              const seen = s.last_seen ? new Date(s.last_seen) : null;
              const sig = s.signals ?? [];
              return (
                <tr key={s.name}>
                  <td class="service-name">{s.name}</td>
                  <td>
                    <div class="signals">
                    {(sig.length ? sig : ['traces']).map((x) => {
                      const href =
                        x === 'logs' ? '/logs' + encodeQuery({ service: s.name })
                        : x === 'metrics' ? '/explore' + encodeQuery({ q: `{job="${s.name.replace(/["\\]/g, (c) => '\\' + c)}"}` })
                        : '/traces' + encodeQuery({ service: s.name });
                      const key = x === 'logs' ? 'signal.logs' : x === 'metrics' ? 'signal.metrics' : 'signal.traces';
                      return (
                        <a class="chip" href={href} key={x}>
                          {t(key)}
                        </a>
                      );
                    })}
                    </div>
                  </td>
                  <td title={seen ? formatTime(seen) : ''}>{seen ? relativeTime(seen, now, words) : '–'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
