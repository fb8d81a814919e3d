// Formatting of durations, times and telemetry values for display. Every
// function returns plain text; callers render it as text, never as HTML.

/** formatDuration renders a duration given in microseconds, e.g. 850µs, 1.25ms, 3.4s, 2m 5s. */
export function formatDuration(us: number): string {
  if (!Number.isFinite(us)) return '–';
  const sign = us < 0 ? '-' : '';
  const a = Math.abs(us);
  if (a < 1) return sign + trim(a * 1000, 0) + 'ns';
  if (a < 1000) return sign + trim(a, a < 10 ? 2 : a < 100 ? 1 : 0) + 'µs';
  const ms = a / 1000;
  if (ms < 1000) return sign + trim(ms, ms < 10 ? 2 : ms < 100 ? 1 : 0) + 'ms';
  const s = ms / 1000;
  if (s < 60) return sign + trim(s, s < 10 ? 2 : 1) + 's';
  const totalS = Math.round(s);
  const m = Math.floor(totalS / 60);
  if (m < 60) {
    const rs = totalS % 60;
    return sign + m + 'm' + (rs ? ' ' + rs + 's' : '');
  }
  const h = Math.floor(m / 60);
  const rm = m % 60;
  return sign + h + 'h' + (rm ? ' ' + rm + 'm' : '');
}

function trim(v: number, digits: number): string {
  return String(Number(v.toFixed(digits)));
}

/** parseDuration reads a Jaeger/Prometheus-style duration ("250ms", "1.5s", "2m", "1h30m", "500us") into microseconds; null when invalid. */
export function parseDuration(s: string): number | null {
  const str = s.trim();
  if (!str) return null;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)/gy;
  const unit: Record<string, number> = {
    ns: 0.001, us: 1, µs: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6, d: 86400e6, w: 7 * 86400e6, y: 365 * 86400e6,
  };
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  re.lastIndex = 0;
  while ((m = re.exec(str)) !== null) {
    total += parseFloat(m[1]) * unit[m[2]];
    pos = re.lastIndex;
  }
  if (pos !== str.length || pos === 0) return null;
  return total;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** formatTime renders a Date in local time as YYYY-MM-DD HH:MM:SS(.mmm). */
export function formatTime(d: Date, millis = false): string {
  if (isNaN(d.getTime())) return '–';
  const s = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return millis ? s + '.' + pad(d.getMilliseconds(), 3) : s;
}

/** relativeTime renders how long ago `then` was, relative to `now`, with the unit words given. */
export function relativeTime(then: Date, now: Date, words: { now: string; ago: (v: string) => string }): string {
  const s = Math.round((now.getTime() - then.getTime()) / 1000);
  if (s < 5) return words.now;
  if (s < 60) return words.ago(s + 's');
  const m = Math.floor(s / 60);
  if (m < 60) return words.ago(m + 'm');
  const h = Math.floor(m / 60);
  if (h < 48) return words.ago(h + 'h');
  return words.ago(Math.floor(h / 24) + 'd');
}

/** valueText renders a telemetry value (string, number, bool, array, map) as text. */
export function valueText(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/** formatNumber renders a metric sample value compactly. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e9 || a < 1e-3)) return v.toExponential(3).replace(/\.?0+e/, 'e');
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(6)));
}
