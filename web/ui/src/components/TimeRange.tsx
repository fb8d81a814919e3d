import { quickRanges, toLocalInput, type RangeState } from '../lib/timerange';
import { t } from '../lib/i18n';

interface Props {
  value: RangeState;
  onChange: (v: RangeState) => void;
  def?: string;
}

/** TimeRange is the quick-pick select plus, for a custom window, two datetime inputs. */
export function TimeRange({ value, onChange, def = '1h' }: Props) {
  const custom = !!value.from;
  const sel = custom ? 'custom' : value.range || def;
  return (
    <span class="timerange">
      <select
        aria-label={t('traces.range')}
        value={sel}
        onChange={(e) => {
          const v = (e.target as HTMLSelectElement).value;
          if (v === 'custom') {
            const now = Date.now();
            onChange({ from: String(now - 3600_000), to: String(now) });
          } else onChange({ range: v });
        }}
      >
        {quickRanges.map((r) => (
          <option value={r} key={r}>{t('time.last', { v: r })}</option>
        ))}
        <option value="custom">{t('common.custom')}</option>
      </select>
      {custom && (
        <>
          <input
            type="datetime-local"
            aria-label={t('common.from')}
            value={toLocalInput(Number(value.from))}
            onChange={(e) => {
              const ms = new Date((e.target as HTMLInputElement).value).getTime();
              if (Number.isFinite(ms)) onChange({ ...value, from: String(ms) });
            }}
          />
          <input
            type="datetime-local"
            aria-label={t('common.to')}
            value={toLocalInput(Number(value.to || Date.now()))}
            onChange={(e) => {
              const ms = new Date((e.target as HTMLInputElement).value).getTime();
              if (Number.isFinite(ms)) onChange({ ...value, to: String(ms) });
            }}
          />
        </>
      )}
    </span>
  );
}
