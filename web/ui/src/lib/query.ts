// Query-string state: every view keeps its state in the URL so that a link
// can be pasted into chat and reopens the same view.

export type QueryState = Record<string, string | string[] | undefined>;

/** encodeQuery builds a query string ("?a=1&b=2", or "" when empty) from state, skipping empty values; keys keep their order. */
export function encodeQuery(state: QueryState): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) {
      for (const x of v) if (x !== '') p.append(k, x);
    } else if (v !== '') {
      p.set(k, v);
    }
  }
  const s = p.toString();
  return s ? '?' + s : '';
}

/** decodeQuery reads a query string into single values (last one wins) and the repeated keys listed in `multi` into arrays. */
export function decodeQuery(search: string, multi: string[] = []): Record<string, string> & { [k: string]: any } {
  const p = new URLSearchParams(search.startsWith('?') ? search.slice(1) : search);
  const out: Record<string, any> = {};
  for (const k of multi) out[k] = [];
  for (const [k, v] of p) {
    if (multi.includes(k)) out[k].push(v);
    else out[k] = v;
  }
  return out;
}

/**
 * parseKeyValues reads "key=value" pairs separated by spaces (logfmt style):
 * a value may be double-quoted to hold spaces, with \" and \\ escapes.
 * It returns the pairs, or an error message naming the bad token.
 */
export function parseKeyValues(s: string): { pairs: [string, string][]; error?: string } {
  const pairs: [string, string][] = [];
  let i = 0;
  const n = s.length;
  while (i < n) {
    while (i < n && /\s/.test(s[i])) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && s[i] !== '=' && !/\s/.test(s[i])) i++;
    const key = s.slice(start, i);
    if (i >= n || s[i] !== '=' || key === '') {
      return { pairs, error: s.slice(start, i) || s.slice(start) };
    }
    i++; // '='
    let value = '';
    if (s[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = s[i];
        if (c === '\\' && i + 1 < n) {
          value += s[i + 1];
          i += 2;
          continue;
        }
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        value += c;
        i++;
      }
      if (!closed) return { pairs, error: s.slice(start) };
    } else {
      const vs = i;
      while (i < n && !/\s/.test(s[i])) i++;
      value = s.slice(vs, i);
    }
    pairs.push([key, value]);
  }
  return { pairs };
}

/** formatKeyValues is the inverse of parseKeyValues. */
export function formatKeyValues(pairs: [string, string][]): string {
  return pairs
    .map(([k, v]) => (v === '' || /[\s"\\]/.test(v) ? `${k}="${v.replace(/[\\"]/g, (c) => '\\' + c)}"` : `${k}=${v}`))
    .join(' ');
}
