// Alert and silence helpers for the alerts page: Alertmanager matchers
// to and from text, a silence pre-filled from an alert, and the links
// from an alert to the traces, logs and metrics of its service.
import { encodeQuery } from './query';

/** Matcher is an Alertmanager v2 API matcher. */
export interface Matcher {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual: boolean;
}

const opText = (m: Matcher) => (m.isEqual ? (m.isRegex ? '=~' : '=') : m.isRegex ? '!~' : '!=');

function quote(v: string): string {
  return '"' + v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') + '"';
}

/** formatMatchers renders matchers as `{a="b", c=~"d.*"}`. */
export function formatMatchers(ms: Matcher[]): string {
  return '{' + ms.map((m) => m.name + opText(m) + quote(m.value)).join(', ') + '}';
}

/**
 * parseMatchers reads `a="b", c=~"d"` (braces optional, values quoted or
 * bare) into matchers. It throws an Error naming the offending part.
 */
export function parseMatchers(text: string): Matcher[] {
  let s = text.trim();
  if (s.startsWith('{') && s.endsWith('}')) s = s.slice(1, -1);
  const out: Matcher[] = [];
  let i = 0;
  const skip = () => {
    while (i < s.length && /[\s,]/.test(s[i])) i++;
  };
  skip();
  while (i < s.length) {
    const start = i;
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(s.slice(i));
    if (!name) throw new Error(`matcher ${s.slice(start, start + 20)}: expected a label name`);
    i += name[0].length;
    while (s[i] === ' ') i++;
    const op = /^(=~|!~|!=|=)/.exec(s.slice(i));
    if (!op) throw new Error(`matcher ${name[0]}: expected =, !=, =~ or !~`);
    i += op[0].length;
    while (s[i] === ' ') i++;
    let value = '';
    if (s[i] === '"') {
      i++;
      let closed = false;
      while (i < s.length) {
        const c = s[i++];
        if (c === '\\' && i < s.length) {
          const n = s[i++];
          value += n === 'n' ? '\n' : n;
        } else if (c === '"') {
          closed = true;
          break;
        } else value += c;
      }
      if (!closed) throw new Error(`matcher ${name[0]}: unterminated quote`);
    } else {
      const m = /^[^,\s]*/.exec(s.slice(i))!;
      value = m[0];
      i += m[0].length;
    }
    const o = op[0];
    out.push({ name: name[0], value, isRegex: o.includes('~'), isEqual: !o.startsWith('!') });
    skip();
  }
  if (!out.length) throw new Error('at least one matcher is needed');
  if (out.every((m) => (m.isRegex ? new RegExp('^(?:' + m.value + ')$').test('') : m.value === '') === m.isEqual)) {
    throw new Error('the matchers would match every alert');
  }
  return out;
}

/** silenceMatchers gives equality matchers for an alert's labels (the silence a user starts from). */
export function silenceMatchers(labels: Record<string, string>): Matcher[] {
  return Object.keys(labels)
    .sort((a, b) => (a === 'alertname' ? -1 : b === 'alertname' ? 1 : a.localeCompare(b)))
    .map((name) => ({ name, value: labels[name], isRegex: false, isEqual: true }));
}

/** serviceOf picks the service an alert is about: service, service_name, then job. */
export function serviceOf(labels: Record<string, string>): string {
  return labels.service || labels.service_name || labels.job || '';
}

/**
 * alertLinks returns the traces and logs of the alert's service around its
 * start (15 minutes before to now, or to its end), or nothing without a service.
 */
export function alertLinks(labels: Record<string, string>, startsAt: string, endsAt: string | undefined, now: number): { traces?: string; logs?: string } {
  const service = serviceOf(labels);
  if (!service) return {};
  const start = Date.parse(startsAt);
  if (!Number.isFinite(start)) return {};
  // A zero or unset end (Alertmanager sends 0001-01-01 for firing alerts) means "still going".
  const ended = endsAt ? Date.parse(endsAt) : NaN;
  const end = Number.isFinite(ended) && ended >= start && ended < now ? ended : now;
  const from = String(start - 15 * 60 * 1000);
  const to = String(Math.max(end, start + 60 * 1000));
  return {
    traces: '/traces' + encodeQuery({ service, from, to }),
    logs: '/logs' + encodeQuery({ service, from, to }),
  };
}

/** exploreLink opens a PromQL expression in the metrics explorer. */
export function exploreLink(expr: string): string {
  return '/explore' + encodeQuery({ q: expr, range: '1h' });
}
