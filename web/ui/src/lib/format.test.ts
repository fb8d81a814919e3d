import { describe, expect, it } from 'vitest';
import { formatDuration, formatNumber, parseDuration, relativeTime, valueText } from './format';
import { niceStep, ticks } from './axis';
import { autoStep, resolveRange } from './timerange';

describe('formatDuration', () => {
  it.each([
    [0, '0ns'],
    [0.5, '500ns'],
    [1, '1µs'],
    [8.123, '8.12µs'],
    [850, '850µs'],
    [1000, '1ms'],
    [1250, '1.25ms'],
    [35900, '35.9ms'],
    [252000, '252ms'],
    [1_000_000, '1s'],
    [3_456_000, '3.46s'],
    [59_900_000, '59.9s'],
    [60_000_000, '1m'],
    [125_000_000, '2m 5s'],
    [3_600_000_000, '1h'],
    [5_430_000_000, '1h 30m'],
    [-1500, '-1.5ms'],
  ])('%s µs → %s', (us, want) => {
    expect(formatDuration(us)).toBe(want);
  });
  it('renders non-finite values as a dash', () => {
    expect(formatDuration(NaN)).toBe('–');
  });
});

describe('parseDuration', () => {
  it.each([
    ['500us', 500],
    ['500µs', 500],
    ['1.5ms', 1500],
    ['2s', 2e6],
    ['1h30m', 5400e6],
    ['1d', 86400e6],
    [' 15m ', 900e6],
  ])('%s', (s, want) => {
    expect(parseDuration(s)).toBe(want);
  });
  it.each(['', 'ms', '10', '10x', '1h 30m', '-5s'])('rejects %j', (s) => {
    expect(parseDuration(s)).toBeNull();
  });
});

describe('ticks', () => {
  it('picks 1, 2, 5 steps', () => {
    expect(niceStep(100, 5)).toBe(20);
    expect(niceStep(35900, 6)).toBe(10000);
    expect(niceStep(0.3, 3)).toBeCloseTo(0.1);
    expect(niceStep(0, 5)).toBe(1);
  });
  it('covers the range from zero', () => {
    expect(ticks(0, 35900, 6)).toEqual([0, 10000, 20000, 30000]);
    expect(ticks(0, 252000, 6)).toEqual([0, 50000, 100000, 150000, 200000, 250000]);
  });
  it('starts at the first multiple at or after min and has no float noise', () => {
    expect(ticks(13, 61, 5)).toEqual([20, 30, 40, 50, 60]);
    expect(ticks(0, 0.3, 3)).toEqual([0, 0.1, 0.2, 0.3]);
  });
  it('handles an empty range', () => {
    expect(ticks(5, 5, 4)).toEqual([5]);
  });
});

describe('time ranges', () => {
  const now = 1_800_000_000_000;
  it('resolves quick picks, custom windows and the default', () => {
    expect(resolveRange({ range: '15m' }, now)).toEqual({ start: now - 900_000, end: now });
    expect(resolveRange({}, now)).toEqual({ start: now - 3_600_000, end: now });
    expect(resolveRange({ from: '1000', to: '5000' }, now)).toEqual({ start: 1000, end: 5000 });
    expect(resolveRange({ from: '1000' }, now)).toEqual({ start: 1000, end: now });
    expect(resolveRange({ range: 'bogus' }, now)).toEqual({ start: now - 3_600_000, end: now });
    expect(resolveRange({ from: '5000', to: '1000' }, now, '5m')).toEqual({ start: now - 300_000, end: now });
  });
  it('chooses friendly steps', () => {
    expect(autoStep(3_600_000)).toBe(15);
    expect(autoStep(900_000)).toBe(5);
    expect(autoStep(7 * 86_400_000)).toBe(3600);
  });
});

describe('values', () => {
  it('renders telemetry values as plain text', () => {
    expect(valueText('<b>x</b>')).toBe('<b>x</b>');
    expect(valueText(42)).toBe('42');
    expect(valueText(false)).toBe('false');
    expect(valueText({ a: [1, 'x'] })).toBe('{"a":[1,"x"]}');
    expect(valueText(null)).toBe('');
  });
  it('formats sample values', () => {
    expect(formatNumber(0.123456789)).toBe('0.123457');
    expect(formatNumber(1234567)).toBe('1234567');
    expect(formatNumber(1e12)).toBe('1e+12');
    expect(formatNumber(0.00001)).toBe('1e-5');
    expect(formatNumber(0)).toBe('0');
  });
  it('says how long ago', () => {
    const words = { now: 'now', ago: (v: string) => v + ' ago' };
    const now = new Date(1_000_000_000);
    expect(relativeTime(new Date(1_000_000_000 - 2000), now, words)).toBe('now');
    expect(relativeTime(new Date(1_000_000_000 - 90_000), now, words)).toBe('1m ago');
    expect(relativeTime(new Date(1_000_000_000 - 3 * 86_400_000), now, words)).toBe('3d ago');
  });
});
