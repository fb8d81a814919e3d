// Data shaping for the targets page: the scrape targets of
// /api/v1/targets (Prometheus's JSON) grouped by scrape pool, the
// registered services of /api/vigil/registry, the filter and the
// "unhealthy only" toggle both share, the order that puts trouble first,
// and the links from a registered instance to its metrics and traces.
import { encodeQuery } from './query';
import { promString } from './servicemap';

/* ---------- scrape targets ---------- */

export type Health = 'up' | 'down' | 'unknown';

/** ActiveTarget is one target of /api/v1/targets, as Prometheus answers it. */
export interface ActiveTarget {
  discoveredLabels: Record<string, string>;
  labels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
  globalUrl: string;
  lastError: string;
  /** RFC 3339; Prometheus's zero time (year 1) when never scraped. */
  lastScrape: string;
  /** seconds */
  lastScrapeDuration: number;
  health: Health;
  scrapeInterval: string;
  scrapeTimeout: string;
}

export interface DroppedTarget {
  discoveredLabels: Record<string, string>;
  scrapePool?: string;
}

export interface TargetDiscovery {
  activeTargets: ActiveTarget[];
  droppedTargets: DroppedTarget[];
  droppedTargetCounts: Record<string, number>;
}

/** HEADER_SCRAPE_LEADER says whether the replica that answered scrapes ("true") or not ("false"). */
export const HEADER_SCRAPE_LEADER = 'X-Vigil-Scrape-Leader';

/**
 * scrapeLeader reads HEADER_SCRAPE_LEADER: false only when the replica
 * says it does not scrape, true when it says it does, undefined when the
 * header is absent (a server that does not send it: assume it scrapes).
 */
export function scrapeLeader(headers: Pick<Headers, 'get'> | undefined): boolean | undefined {
  const v = headers?.get(HEADER_SCRAPE_LEADER)?.trim().toLowerCase();
  if (v === 'false') return false;
  if (v === 'true') return true;
  return undefined;
}

/** normalizeTargets fills what a server may leave null or out, so that the page needs no checks. */
export function normalizeTargets(d: Partial<TargetDiscovery> | null | undefined): TargetDiscovery {
  return {
    activeTargets: (d?.activeTargets ?? []).map((t) => ({
      ...t,
      labels: t.labels ?? {},
      discoveredLabels: t.discoveredLabels ?? {},
      lastError: t.lastError ?? '',
      health: t.health === 'up' || t.health === 'down' ? t.health : 'unknown',
    })),
    droppedTargets: d?.droppedTargets ?? [],
    droppedTargetCounts: d?.droppedTargetCounts ?? {},
  };
}

const healthOrder: Record<Health, number> = { down: 0, unknown: 1, up: 2 };

/** compareTargets orders targets down first, then unknown, then up; then by scrape URL. */
export function compareTargets(a: ActiveTarget, b: ActiveTarget): number {
  return healthOrder[a.health] - healthOrder[b.health] || a.scrapeUrl.localeCompare(b.scrapeUrl);
}

/** filterTerms splits a filter box into lower-case words; every word must match. */
export function filterTerms(filter: string): string[] {
  return filter.toLowerCase().split(/\s+/).filter(Boolean);
}

function matchesAll(haystack: string[], terms: string[]): boolean {
  const text = haystack.join('\n').toLowerCase();
  return terms.every((w) => text.includes(w));
}

/** targetMatches reports whether every filter word is in the target's URL, pool, health, error or one of its labels (as key=value). */
export function targetMatches(t: ActiveTarget, terms: string[]): boolean {
  if (!terms.length) return true;
  const labels = Object.entries(t.labels).map(([k, v]) => `${k}=${v}`);
  return matchesAll([t.scrapeUrl, t.scrapePool, t.health, t.lastError, ...labels], terms);
}

/** TargetPool is the targets of one scrape pool with the counts of all of them, filtered or not. */
export interface TargetPool {
  name: string;
  /** the targets shown: filtered, trouble first */
  targets: ActiveTarget[];
  total: number;
  up: number;
  dropped: number;
}

export interface Filter {
  /** the filter box */
  text: string;
  /** show only targets that are not up, services that are not passing */
  unhealthyOnly: boolean;
}

/**
 * groupTargets groups the active targets by scrape pool, pools sorted by
 * name; a pool whose targets are all filtered out is left out when a
 * filter is set, and kept (empty) otherwise, so that a pool of dropped
 * targets only still shows.
 */
export function groupTargets(d: TargetDiscovery, f: Filter): TargetPool[] {
  const terms = filterTerms(f.text);
  const pools = new Map<string, TargetPool>();
  const pool = (name: string) => {
    let p = pools.get(name);
    if (!p) pools.set(name, (p = { name, targets: [], total: 0, up: 0, dropped: 0 }));
    return p;
  };
  for (const t of d.activeTargets) {
    const p = pool(t.scrapePool);
    p.total++;
    if (t.health === 'up') p.up++;
    if (f.unhealthyOnly && t.health === 'up') continue;
    if (targetMatches(t, terms)) p.targets.push(t);
  }
  for (const [name, n] of Object.entries(d.droppedTargetCounts)) if (n > 0) pool(name).dropped = n;
  const filtered = terms.length > 0 || f.unhealthyOnly;
  return [...pools.values()]
    .filter((p) => (filtered ? p.targets.length > 0 : true))
    .map((p) => ({ ...p, targets: p.targets.sort(compareTargets) }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** targetCounts sums the health of all active targets. */
export function targetCounts(d: TargetDiscovery): Record<Health, number> {
  const c: Record<Health, number> = { up: 0, down: 0, unknown: 0 };
  for (const t of d.activeTargets) c[t.health]++;
  return c;
}

/** validTime parses an RFC 3339 time; null for none, an invalid one, or Prometheus's zero time (never). */
export function validTime(iso: string | null | undefined): Date | null {
  if (!iso) return null;
  const d = new Date(iso);
  if (!Number.isFinite(d.getTime()) || d.getUTCFullYear() < 1971) return null;
  return d;
}

/** labelsShown are a target's labels without the ones its row shows otherwise (job is the pool, instance the endpoint). */
export function labelsShown(t: ActiveTarget): [string, string][] {
  return Object.entries(t.labels)
    .filter(([k]) => k !== 'job' || t.labels.job !== t.scrapePool)
    .sort(([a], [b]) => a.localeCompare(b));
}

/* ---------- registered services ---------- */

export type CheckStatus = 'passing' | 'warning' | 'critical' | 'maintenance';

export interface RegistryCheck {
  id: string;
  name: string;
  /** http, tcp, grpc, ttl or maintenance */
  type: string;
  status: CheckStatus;
  output: string;
  notes: string;
  /** the URL, host:port or gRPC target checked; '' for TTL and maintenance */
  target: string;
  lastCheck: string | null;
  statusSince: string | null;
  interval: string;
  timeout: string;
  ttl: string;
}

export interface RegistryInstance {
  id: string;
  name: string;
  /** '' when registered without one: the node's address applies */
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  status: CheckStatus;
  checks: RegistryCheck[];
}

export interface RegistryService {
  name: string;
  status: CheckStatus;
  instances: RegistryInstance[];
}

export interface RegistryNode {
  name: string;
  address: string;
  datacenter: string;
}

export interface RegistryState {
  /** false when the registry is off in this Vigil */
  enabled: boolean;
  index: number;
  node: RegistryNode | null;
  services: RegistryService[];
}

export interface Transition {
  serviceID: string;
  status: CheckStatus;
  output: string;
  at: string;
}

const statuses: CheckStatus[] = ['passing', 'warning', 'critical', 'maintenance'];

/** checkStatus reads a status, an unknown one as critical. */
export function checkStatus(s: string | undefined): CheckStatus {
  return (statuses as string[]).includes(s ?? '') ? (s as CheckStatus) : 'critical';
}

// The display order puts trouble first: critical, then warning, then the
// deliberate maintenance, then passing.
const displayOrder: Record<CheckStatus, number> = { critical: 0, warning: 1, maintenance: 2, passing: 3 };

/** compareStatus orders statuses for display: critical, warning, maintenance, passing. */
export function compareStatus(a: CheckStatus, b: CheckStatus): number {
  return displayOrder[a] - displayOrder[b];
}

/** normalizeRegistry fills what a server may leave null or out and reads unknown statuses as critical. */
export function normalizeRegistry(d: Partial<RegistryState> | null | undefined): RegistryState {
  return {
    enabled: d?.enabled ?? false,
    index: d?.index ?? 0,
    node: d?.node ?? null,
    services: (d?.services ?? []).map((s) => ({
      ...s,
      status: checkStatus(s.status),
      instances: (s.instances ?? []).map((i) => ({
        ...i,
        address: i.address ?? '',
        tags: i.tags ?? [],
        meta: i.meta ?? {},
        status: checkStatus(i.status),
        checks: (i.checks ?? []).map((c) => ({ ...c, status: checkStatus(c.status), output: c.output ?? '' })),
      })),
    })),
  };
}

function instanceMatches(s: RegistryService, i: RegistryInstance, terms: string[], node: RegistryNode | null): boolean {
  if (!terms.length) return true;
  const meta = Object.entries(i.meta).map(([k, v]) => `${k}=${v}`);
  const checks = i.checks.flatMap((c) => [c.id, c.name, c.output, c.status]);
  return matchesAll([s.name, i.id, instanceAddress(i, node), i.status, ...i.tags, ...meta, ...checks], terms);
}

/**
 * shapeServices applies the filter to the registered services and puts
 * trouble first: services by status then name, their instances by status
 * then ID, their checks by status then ID. A service is kept when any of
 * its instances is (the filter matches the service name, the instance's
 * ID, address, tags, meta, and its checks' IDs, names, outputs and
 * statuses); "unhealthy only" keeps the instances that are not passing.
 */
export function shapeServices(d: RegistryState, f: Filter): RegistryService[] {
  const terms = filterTerms(f.text);
  const out: RegistryService[] = [];
  for (const s of d.services) {
    const instances = s.instances
      .filter((i) => !(f.unhealthyOnly && i.status === 'passing') && instanceMatches(s, i, terms, d.node))
      .map((i) => ({ ...i, checks: i.checks.slice().sort((a, b) => compareStatus(a.status, b.status) || a.id.localeCompare(b.id)) }))
      .sort((a, b) => compareStatus(a.status, b.status) || a.id.localeCompare(b.id));
    if (instances.length) out.push({ ...s, instances });
  }
  return out.sort((a, b) => compareStatus(a.status, b.status) || a.name.localeCompare(b.name));
}

/** serviceCounts counts the instances of every status. */
export function serviceCounts(d: RegistryState): Record<CheckStatus, number> {
  const c: Record<CheckStatus, number> = { passing: 0, warning: 0, critical: 0, maintenance: 0 };
  for (const s of d.services) for (const i of s.instances) c[i.status]++;
  return c;
}

/**
 * instanceAddress is where an instance is reached, host:port, as
 * Prometheus's consul_sd_configs makes its __address__: the instance's
 * address, else the node's; an IPv6 address in brackets. '' without an
 * address.
 */
export function instanceAddress(i: Pick<RegistryInstance, 'address' | 'port'>, node: RegistryNode | null): string {
  const host = i.address || node?.address || '';
  if (!host) return '';
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return i.port ? `${h}:${i.port}` : h;
}

/** instanceUpQuery is the PromQL of an instance's scrape health: up{job="<service>",instance="<host:port>"}. */
export function instanceUpQuery(service: string, address: string): string {
  return `up{job=${promString(service)},instance=${promString(address)}}`;
}

/** instanceLinks are an instance's metrics in the explorer and its service's traces. */
export function instanceLinks(service: string, address: string): { metrics: string; traces: string } {
  return {
    metrics: '/explore' + encodeQuery({ q: instanceUpQuery(service, address), range: '1h' }),
    traces: '/traces' + encodeQuery({ service }),
  };
}

/** findTarget finds the scrape target of an instance: the active target whose instance label is its address. */
export function findTarget(d: TargetDiscovery | undefined, address: string): ActiveTarget | undefined {
  if (!d || !address) return undefined;
  return d.activeTargets.find((t) => t.labels.instance === address);
}

/** clip cuts text to at most maxLines lines and maxChars characters, reporting whether it did. */
export function clip(text: string, maxLines = 4, maxChars = 400): { text: string; clipped: boolean } {
  let s = text;
  const lines = s.split('\n');
  if (lines.length > maxLines) s = lines.slice(0, maxLines).join('\n');
  if (s.length > maxChars) s = s.slice(0, maxChars);
  const clipped = s.length < text.length;
  return { text: clipped ? s.replace(/\s+$/, '') + '…' : s, clipped };
}

/* ---------- page state ---------- */

export type Tab = 'targets' | 'services';

export interface PageState extends Filter {
  tab: Tab;
}

/** pageState reads the page's URL state: ?tab=targets|services&q=<filter>&unhealthy=1. */
export function pageState(q: Record<string, string | undefined>): PageState {
  return {
    tab: q.tab === 'services' ? 'services' : 'targets',
    text: q.q ?? '',
    unhealthyOnly: q.unhealthy === '1' || q.unhealthy === 'true',
  };
}

/** pageSearch is the query string of a page state; the tab is always there, the filter and toggle when set. */
export function pageSearch(s: PageState): string {
  return encodeQuery({ tab: s.tab, q: s.text, unhealthy: s.unhealthyOnly ? '1' : undefined });
}
