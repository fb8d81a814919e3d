import { describe, expect, it } from 'vitest';
import { decodeQuery, encodeQuery, formatKeyValues, parseKeyValues } from './query';
import { completionContext, rankCompletions, seriesName } from './promql';

describe('query-string state', () => {
  it('round-trips state, dropping empty values', () => {
    const s = encodeQuery({ service: 'checkout', operation: '', tags: 'a=1 b="x y"', tag: ['k:v', 'k2:v2'], gone: undefined });
    expect(s).toBe('?service=checkout&tags=a%3D1+b%3D%22x+y%22&tag=k%3Av&tag=k2%3Av2');
    expect(decodeQuery(s, ['tag'])).toEqual({ service: 'checkout', tags: 'a=1 b="x y"', tag: ['k:v', 'k2:v2'] });
    expect(encodeQuery({})).toBe('');
    expect(decodeQuery('', ['tag'])).toEqual({ tag: [] });
  });
  it('keeps unicode and PromQL intact', () => {
    const q = 'sum(rate(http_requests_total{job="用户"}[5m])) by (le)';
    expect(decodeQuery(encodeQuery({ q })).q).toBe(q);
  });
});

describe('key=value pairs', () => {
  it('parses logfmt-style pairs with quotes and escapes', () => {
    expect(parseKeyValues(' http.status_code=500  error=true msg="a b \\"c\\"" empty= ')).toEqual({
      pairs: [['http.status_code', '500'], ['error', 'true'], ['msg', 'a b "c"'], ['empty', '']],
    });
  });
  it('names the bad token', () => {
    expect(parseKeyValues('a=1 oops b=2').error).toBe('oops');
    expect(parseKeyValues('=x').error).toBe('=x');
    expect(parseKeyValues('a="open').error).toBe('a="open');
  });
  it('formats back', () => {
    const pairs: [string, string][] = [['a', '1'], ['b', 'x y'], ['c', 'q"'], ['d', '']];
    expect(parseKeyValues(formatKeyValues(pairs)).pairs).toEqual(pairs);
  });
});

describe('PromQL completion context', () => {
  const at = (s: string) => completionContext(s.replace('|', ''), s.indexOf('|'));
  it('completes metric names and functions', () => {
    expect(at('rate(http_req|')).toMatchObject({ kind: 'metric', prefix: 'http_req', from: 5 });
    expect(at('|')).toMatchObject({ kind: 'none' });
    expect(at('sum(x) + 12|')).toMatchObject({ kind: 'none' });
  });
  it('completes label names inside a selector and in grouping clauses', () => {
    expect(at('http_requests_total{jo|')).toMatchObject({ kind: 'label', prefix: 'jo', metric: 'http_requests_total' });
    expect(at('up{job="a", |}')).toMatchObject({ kind: 'label', prefix: '', metric: 'up' });
    expect(at('sum by (ro|) (x)')).toMatchObject({ kind: 'label', prefix: 'ro' });
    expect(at('sum(x) without (|')).toMatchObject({ kind: 'label', prefix: '' });
  });
  it('completes label values inside quotes', () => {
    expect(at('up{job="che|"}')).toMatchObject({ kind: 'value', label: 'job', prefix: 'che', metric: 'up', from: 8 });
    expect(at('{route=~"/a|')).toMatchObject({ kind: 'value', label: 'route', prefix: '/a', metric: undefined });
    expect(at('up{job=|')).toMatchObject({ kind: 'none' });
  });
  it('completes nothing in a range or a plain string', () => {
    expect(at('rate(x[5|')).toMatchObject({ kind: 'none' });
    expect(at('label_replace(x, "ds|')).toMatchObject({ kind: 'none' });
    expect(at('rate(x[5m]) + foo|')).toMatchObject({ kind: 'metric', prefix: 'foo' });
  });
  it('ranks prefix matches first', () => {
    expect(rankCompletions(['abc_rate', 'rate', 'irate', 'rate_limit', 'x'], 'rate')).toEqual(['rate_limit', 'abc_rate', 'irate']);
    expect(rankCompletions(['b', 'a'], '')).toEqual(['b', 'a']);
  });
  it('names series', () => {
    expect(seriesName({ __name__: 'up', job: 'a"b', instance: 'x' })).toBe('up{instance="x", job="a\\"b"}');
    expect(seriesName({})).toBe('{}');
  });
});
