import { describe, expect, it } from 'vitest';
import {
  clip,
  compareStatus,
  findTarget,
  groupTargets,
  instanceAddress,
  instanceLinks,
  instanceUpQuery,
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
  type RegistryState,
} from './targets';

function target(pool: string, url: string, health: ActiveTarget['health'], extra: Partial<ActiveTarget> = {}): ActiveTarget {
  const instance = new URL(url).host;
  return {
    discoveredLabels: { __address__: instance },
    labels: { job: pool, instance },
    scrapePool: pool,
    scrapeUrl: url,
    globalUrl: url,
    lastError: health === 'down' ? 'Get "' + url + '": dial tcp: connection refused' : '',
    lastScrape: '2026-12-07T10:00:00Z',
    lastScrapeDuration: 0.012,
    health,
    scrapeInterval: '15s',
    scrapeTimeout: '10s',
    ...extra,
  };
}

const discovery = normalizeTargets({
  activeTargets: [
    target('node', 'http://10.0.0.2:9100/metrics', 'up'),
    target('api', 'http://10.0.0.5:8080/metrics', 'up', { labels: { job: 'api', instance: '10.0.0.5:8080', env: 'prod' } }),
    target('node', 'http://10.0.0.1:9100/metrics', 'down'),
    target('api', 'http://10.0.0.4:8080/metrics', 'unknown', { lastScrape: '0001-01-01T00:00:00Z' }),
    target('api', 'http://10.0.0.3:8080/metrics', 'down'),
  ],
  droppedTargets: [],
  droppedTargetCounts: { node: 0, kube: 7 },
});

const off = { text: '', unhealthyOnly: false };

describe('groupTargets', () => {
  it('groups by pool in name order, trouble first in each', () => {
    const pools = groupTargets(discovery, off);
    expect(pools.map((p) => p.name)).toEqual(['api', 'kube', 'node']);
    expect(pools[0].targets.map((t) => t.scrapeUrl)).toEqual([
      'http://10.0.0.3:8080/metrics', // down
      'http://10.0.0.4:8080/metrics', // unknown
      'http://10.0.0.5:8080/metrics', // up
    ]);
    expect(pools[0]).toMatchObject({ total: 3, up: 1, dropped: 0 });
    expect(pools[1]).toMatchObject({ name: 'kube', total: 0, dropped: 7, targets: [] });
    expect(pools[2].targets.map((t) => t.health)).toEqual(['down', 'up']);
  });
  it('keeps only the unhealthy targets, and the pools that have some', () => {
    const pools = groupTargets(discovery, { text: '', unhealthyOnly: true });
    expect(pools.map((p) => p.name)).toEqual(['api', 'node']);
    expect(pools.flatMap((p) => p.targets).every((t) => t.health !== 'up')).toBe(true);
    // The counts are of the whole pool.
    expect(pools[0]).toMatchObject({ total: 3, up: 1 });
  });
  it('filters on every word, in URL, pool, labels, health and error', () => {
    const urls = (text: string) => groupTargets(discovery, { text, unhealthyOnly: false }).flatMap((p) => p.targets.map((t) => t.scrapeUrl));
    expect(urls('env=prod')).toEqual(['http://10.0.0.5:8080/metrics']);
    expect(urls('NODE refused')).toEqual(['http://10.0.0.1:9100/metrics']);
    expect(urls('api unknown')).toEqual(['http://10.0.0.4:8080/metrics']);
    expect(urls('10.0.0.2')).toEqual(['http://10.0.0.2:9100/metrics']);
    expect(urls('nothing-like-this')).toEqual([]);
  });
  it('counts the health of all targets', () => {
    expect(targetCounts(discovery)).toEqual({ up: 2, down: 2, unknown: 1 });
  });
});

describe('normalizeTargets', () => {
  it('fills what a server leaves null and reads an odd health as unknown', () => {
    const d = normalizeTargets({ activeTargets: [{ ...target('a', 'http://h:1/m', 'up'), labels: null as any, health: 'weird' as any }], droppedTargets: null as any });
    expect(d.activeTargets[0].labels).toEqual({});
    expect(d.activeTargets[0].health).toBe('unknown');
    expect(d.droppedTargets).toEqual([]);
    expect(d.droppedTargetCounts).toEqual({});
    expect(normalizeTargets(null).activeTargets).toEqual([]);
  });
});

describe('scrapeLeader', () => {
  it('reads the header, absent meaning unknown', () => {
    expect(scrapeLeader(new Headers({ 'X-Vigil-Scrape-Leader': 'false' }))).toBe(false);
    expect(scrapeLeader(new Headers({ 'x-vigil-scrape-leader': 'True' }))).toBe(true);
    expect(scrapeLeader(new Headers())).toBeUndefined();
    expect(scrapeLeader(new Headers({ 'X-Vigil-Scrape-Leader': 'maybe' }))).toBeUndefined();
    expect(scrapeLeader(undefined)).toBeUndefined();
  });
});

describe('validTime and labelsShown', () => {
  it('reads Prometheus zero time as never', () => {
    expect(validTime('0001-01-01T00:00:00Z')).toBeNull();
    expect(validTime('')).toBeNull();
    expect(validTime(null)).toBeNull();
    expect(validTime('garbage')).toBeNull();
    expect(validTime('2026-12-07T10:00:00Z')?.toISOString()).toBe('2026-12-07T10:00:00.000Z');
  });
  it('leaves out the job when it is the pool, sorted by name', () => {
    const t = target('api', 'http://10.0.0.5:8080/metrics', 'up', { labels: { zone: 'b', job: 'api', instance: '10.0.0.5:8080' } });
    expect(labelsShown(t)).toEqual([
      ['instance', '10.0.0.5:8080'],
      ['zone', 'b'],
    ]);
    expect(labelsShown({ ...t, labels: { job: 'other' } })).toEqual([['job', 'other']]);
  });
});

const registry: RegistryState = normalizeRegistry({
  enabled: true,
  index: 7,
  node: { name: 'vigil', address: '127.0.0.1', datacenter: 'dc1' },
  services: [
    {
      name: 'cache',
      status: 'passing',
      instances: [{ id: 'cache', name: 'cache', address: '10.0.0.9', port: 6379, tags: [], meta: {}, status: 'passing', checks: [] }],
    },
    {
      name: 'checkout',
      status: 'maintenance',
      instances: [
        {
          id: 'checkout-1', name: 'checkout', address: '10.0.0.1', port: 8080, tags: ['v2'], meta: { version: '2.4.1' }, status: 'passing',
          checks: [{ id: 'service:checkout-1', name: 'HTTP /health', type: 'http', status: 'passing', output: 'HTTP GET: 200 OK', notes: '', target: 'http://10.0.0.1:8080/health', lastCheck: '2026-12-07T09:59:56Z', statusSince: '2026-12-07T09:00:00Z', interval: '10s', timeout: '2s', ttl: '' }],
        },
        {
          id: 'checkout-2', name: 'checkout', address: '', port: 8081, tags: null as any, meta: null as any, status: 'maintenance',
          checks: [
            { id: 'service:checkout-2', name: 'TCP', type: 'tcp', status: 'critical', output: 'connection refused', notes: '', target: '127.0.0.1:8081', lastCheck: null, statusSince: null, interval: '1m', timeout: '10s', ttl: '' },
            { id: '_service_maintenance:checkout-2', name: 'Service Maintenance Mode', type: 'maintenance', status: 'maintenance', output: '', notes: 'upgrade', target: '', lastCheck: null, statusSince: null, interval: '', timeout: '', ttl: '' },
          ],
        },
      ],
    },
    {
      name: 'payments',
      status: 'warning',
      instances: [
        {
          id: 'payments-1', name: 'payments', address: '10.0.0.3', port: 9090, tags: [], meta: {}, status: 'warning',
          checks: [{ id: 'ttl', name: 'queue lag', type: 'ttl', status: 'warning', output: 'lag 12s', notes: '', target: '', lastCheck: null, statusSince: null, interval: '', timeout: '', ttl: '30s' }],
        },
      ],
    },
    { name: 'ghost', status: 'weird' as any, instances: null as any },
  ],
});

describe('shapeServices', () => {
  it('orders services, instances and checks trouble first: critical, warning, maintenance, passing', () => {
    const s = shapeServices(registry, off);
    // ghost has no instance left to show.
    expect(s.map((x) => `${x.name}:${x.status}`)).toEqual(['payments:warning', 'checkout:maintenance', 'cache:passing']);
    expect(s[1].instances.map((i) => i.id)).toEqual(['checkout-2', 'checkout-1']);
    expect(s[1].instances[0].checks.map((c) => c.status)).toEqual(['critical', 'maintenance']);
  });
  it('keeps only what is not passing with the toggle', () => {
    const s = shapeServices(registry, { text: '', unhealthyOnly: true });
    expect(s.map((x) => x.name)).toEqual(['payments', 'checkout']);
    expect(s[1].instances.map((i) => i.id)).toEqual(['checkout-2']);
  });
  it('filters on service, instance, address, tags, meta and checks', () => {
    const ids = (text: string) => shapeServices(registry, { text, unhealthyOnly: false }).flatMap((s) => s.instances.map((i) => i.id));
    expect(ids('checkout')).toEqual(['checkout-2', 'checkout-1']);
    expect(ids('v2')).toEqual(['checkout-1']);
    expect(ids('version=2.4.1')).toEqual(['checkout-1']);
    expect(ids('refused')).toEqual(['checkout-2']);
    expect(ids('127.0.0.1:8081')).toEqual(['checkout-2']); // the node's address
    expect(ids('lag payments')).toEqual(['payments-1']);
    expect(ids('nope')).toEqual([]);
  });
  it('normalizes nulls and unknown statuses', () => {
    const ghost = registry.services.find((s) => s.name === 'ghost')!;
    expect(ghost.status).toBe('critical');
    expect(ghost.instances).toEqual([]);
    const c2 = registry.services[1].instances[1];
    expect(c2.tags).toEqual([]);
    expect(c2.meta).toEqual({});
    expect(normalizeRegistry(null)).toEqual({ enabled: false, index: 0, node: null, services: [] });
  });
  it('counts instances by status', () => {
    expect(serviceCounts(registry)).toEqual({ passing: 2, warning: 1, critical: 0, maintenance: 1 });
  });
  it('compares statuses for display', () => {
    const order = (['passing', 'maintenance', 'critical', 'warning'] as const).slice().sort(compareStatus);
    expect(order).toEqual(['critical', 'warning', 'maintenance', 'passing']);
  });
});

describe('instance links', () => {
  it('takes the node address for an instance without one, brackets IPv6', () => {
    const node = { name: 'vigil', address: '127.0.0.1', datacenter: 'dc1' };
    expect(instanceAddress({ address: '10.0.0.1', port: 8080 }, node)).toBe('10.0.0.1:8080');
    expect(instanceAddress({ address: '', port: 8081 }, node)).toBe('127.0.0.1:8081');
    expect(instanceAddress({ address: '::1', port: 80 }, null)).toBe('[::1]:80');
    expect(instanceAddress({ address: 'db.local', port: 0 }, null)).toBe('db.local');
    expect(instanceAddress({ address: '', port: 80 }, null)).toBe('');
  });
  it('queries up for the job and instance, escaping quotes', () => {
    expect(instanceUpQuery('checkout', '10.0.0.1:8080')).toBe('up{job="checkout",instance="10.0.0.1:8080"}');
    expect(instanceUpQuery('a"b', 'h:1')).toBe('up{job="a\\"b",instance="h:1"}');
    const l = instanceLinks('checkout', '10.0.0.1:8080');
    expect(new URLSearchParams(l.metrics.split('?')[1]).get('q')).toBe('up{job="checkout",instance="10.0.0.1:8080"}');
    expect(l.metrics.startsWith('/explore?q=')).toBe(true);
    expect(l.traces).toBe('/traces?service=checkout');
  });
  it('finds the scrape target of an instance by its instance label', () => {
    expect(findTarget(discovery, '10.0.0.5:8080')?.scrapeUrl).toBe('http://10.0.0.5:8080/metrics');
    expect(findTarget(discovery, '10.9.9.9:1')).toBeUndefined();
    expect(findTarget(undefined, '10.0.0.5:8080')).toBeUndefined();
    expect(findTarget(discovery, '')).toBeUndefined();
  });
});

describe('clip', () => {
  it('cuts long outputs by lines and characters', () => {
    expect(clip('short')).toEqual({ text: 'short', clipped: false });
    expect(clip('a\nb\nc\nd\ne', 2)).toEqual({ text: 'a\nb…', clipped: true });
    const long = 'x'.repeat(500);
    const c = clip(long, 4, 100);
    expect(c.clipped).toBe(true);
    expect(c.text).toBe('x'.repeat(100) + '…');
  });
});

describe('page state', () => {
  it('reads and writes the URL state', () => {
    expect(pageState({})).toEqual({ tab: 'targets', text: '', unhealthyOnly: false });
    expect(pageState({ tab: 'services', q: 'checkout', unhealthy: '1' })).toEqual({ tab: 'services', text: 'checkout', unhealthyOnly: true });
    expect(pageState({ tab: 'bogus' }).tab).toBe('targets');
    expect(pageSearch({ tab: 'services', text: 'a b', unhealthyOnly: true })).toBe('?tab=services&q=a+b&unhealthy=1');
    expect(pageSearch({ tab: 'targets', text: '', unhealthyOnly: false })).toBe('?tab=targets');
  });
});
