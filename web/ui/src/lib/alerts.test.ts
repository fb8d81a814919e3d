import { describe, expect, it } from 'vitest';
import { alertLinks, exploreLink, formatMatchers, parseMatchers, silenceMatchers } from './alerts';

describe('parseMatchers', () => {
  it('reads every operator, quoted and bare values', () => {
    expect(parseMatchers('{alertname="HighErrorRate", job=~"api|web", env!=prod, x!~"a\\"b"}')).toEqual([
      { name: 'alertname', value: 'HighErrorRate', isRegex: false, isEqual: true },
      { name: 'job', value: 'api|web', isRegex: true, isEqual: true },
      { name: 'env', value: 'prod', isRegex: false, isEqual: false },
      { name: 'x', value: 'a"b', isRegex: true, isEqual: false },
    ]);
  });
  it('round-trips through formatMatchers', () => {
    const ms = parseMatchers('service="用户服务", path=~"/api/.*"');
    expect(parseMatchers(formatMatchers(ms))).toEqual(ms);
  });
  it('names the offending part', () => {
    expect(() => parseMatchers('1abc="x"')).toThrow(/label name/);
    expect(() => parseMatchers('a~"x"')).toThrow(/a: expected/);
    expect(() => parseMatchers('a="x')).toThrow(/unterminated/);
    expect(() => parseMatchers('')).toThrow(/at least one/);
  });
  it('refuses matchers that match everything', () => {
    expect(() => parseMatchers('a=~".*"')).toThrow(/every alert/);
    expect(() => parseMatchers('a=""')).toThrow(/every alert/);
  });
});

describe('silenceMatchers', () => {
  it('puts alertname first and sorts the rest', () => {
    const ms = silenceMatchers({ severity: 'critical', alertname: 'ServiceDown', instance: 'a:1' });
    expect(ms.map((m) => m.name)).toEqual(['alertname', 'instance', 'severity']);
    expect(ms.every((m) => m.isEqual && !m.isRegex)).toBe(true);
  });
});

describe('alertLinks', () => {
  it('links the service traces and logs around the alert', () => {
    const now = Date.parse('2026-12-07T10:00:00Z');
    const l = alertLinks({ job: 'user-service' }, '2026-12-07T09:30:00Z', '0001-01-01T00:00:00Z', now);
    const from = String(Date.parse('2026-12-07T09:15:00Z'));
    expect(l.traces).toBe(`/traces?service=user-service&from=${from}&to=${now}`);
    expect(l.logs).toContain('/logs?service=user-service');
  });
  it('gives nothing without a service', () => {
    expect(alertLinks({ alertname: 'x' }, '2026-12-07T09:30:00Z', undefined, Date.now())).toEqual({});
  });
  it('opens expressions in the explorer', () => {
    expect(exploreLink('up == 0')).toBe('/explore?q=up+%3D%3D+0&range=1h');
  });
});
