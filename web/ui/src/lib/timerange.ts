// Time ranges shared by the traces, logs and metrics pages: a quick pick
// ("range=1h", relative to now) or a custom window ("from"/"to" in ms).
import { parseDuration } from './format';

export const quickRanges = ['5m', '15m', '1h', '3h', '6h', '12h', '24h', '2d', '7d'];

export interface RangeState {
  range?: string;
  from?: string;
  to?: string;
}

/** resolveRange turns the URL's range state into [start, end] in ms since the epoch; the default is the last `def`. */
export function resolveRange(s: RangeState, now: number, def = '1h'): { start: number; end: number } {
  const from = s.from ? Number(s.from) : NaN;
  const to = s.to ? Number(s.to) : NaN;
  if (Number.isFinite(from) && Number.isFinite(to) && to > from) return { start: from, end: to };
  if (Number.isFinite(from) && !s.to) return { start: from, end: now };
  const us = parseDuration(s.range || def) ?? parseDuration(def)!;
  return { start: now - us / 1000, end: now };
}

/** toLocalInput renders ms since the epoch for an <input type="datetime-local">. */
export function toLocalInput(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** autoStep picks a query_range step (seconds) giving about `points` points, rounded to a friendly value. */
export function autoStep(rangeMs: number, points = 240): number {
  const raw = rangeMs / 1000 / points;
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
  for (const s of steps) if (s >= raw) return s;
  return Math.ceil(raw / 86400) * 86400;
}
