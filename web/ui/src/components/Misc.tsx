import { t } from '../lib/i18n';
import { valueText } from '../lib/format';
import type { KeyValue } from '../lib/trace';

export function ErrorBox({ error }: { error?: Error }) {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      {t('common.error')}: {error.message}
    </div>
  );
}

export function Loading() {
  return <div class="muted loading">{t('common.loading')}</div>;
}

/** KVTable shows key/value pairs; every value is rendered as text. */
export function KVTable({ items, class: cls }: { items: KeyValue[] | [string, unknown][]; class?: string }) {
  const rows = (items as (KeyValue | [string, unknown])[]).map((i): [string, unknown] => (Array.isArray(i) ? i : [i.key, i.value]));
  if (!rows.length) return <p class="muted small">–</p>;
  return (
    <table class={'kv ' + (cls ?? '')}>
      <tbody>
        {rows.map(([k, v], i) => (
          <tr key={i}>
            <th>{k}</th>
            <td class="kv-value">{valueText(v)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
