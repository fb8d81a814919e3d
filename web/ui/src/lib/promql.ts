// What the PromQL editor should complete at the cursor.

export type CompletionKind = 'metric' | 'label' | 'value' | 'none';

export interface CompletionContext {
  kind: CompletionKind;
  /** prefix typed so far (for a value, the text after the opening quote). */
  prefix: string;
  /** from is the index in the text where the completed token starts. */
  from: number;
  /** metric is the selector's metric name, when known (label and value completion). */
  metric?: string;
  /** label is the label whose value is being typed. */
  label?: string;
}

const identChar = /[A-Za-z0-9_:]/;

/**
 * completionContext inspects text up to cursor: inside a quoted value after
 * `label=`, `!=`, `=~` or `!~` within braces it completes a label value;
 * elsewhere within braces, or inside `by (…)`/`without (…)`/`on (…)`/`ignoring (…)`,
 * a label name; in a range `[…]` nothing; otherwise a metric or function name.
 */
export function completionContext(text: string, cursor: number): CompletionContext {
  const before = text.slice(0, cursor);
  // Track brace, bracket and string state from the start.
  let brace = -1; // index of the open '{'
  let bracket = false;
  let quote: string | null = null;
  let quoteStart = -1;
  const parens: number[] = [];
  for (let i = 0; i < before.length; i++) {
    const c = before[i];
    if (quote) {
      if (c === '\\') {
        i++;
        continue;
      }
      if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      quote = c;
      quoteStart = i;
    } else if (c === '{') brace = i;
    else if (c === '}') brace = -1;
    else if (c === '[') bracket = true;
    else if (c === ']') bracket = false;
    else if (c === '(') parens.push(i);
    else if (c === ')') parens.pop();
  }
  if (bracket) return { kind: 'none', prefix: '', from: cursor };
  const metricBefore = (openIdx: number) => {
    let j = openIdx - 1;
    while (j >= 0 && /\s/.test(text[j])) j--;
    let k = j;
    while (k >= 0 && identChar.test(text[k])) k--;
    const name = text.slice(k + 1, j + 1);
    return name && !/^\d/.test(name) ? name : undefined;
  };
  if (quote) {
    if (brace < 0) return { kind: 'none', prefix: '', from: cursor };
    // label <op> "value…
    const m = /([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*$/.exec(before.slice(0, quoteStart));
    if (!m) return { kind: 'none', prefix: '', from: cursor };
    return { kind: 'value', prefix: before.slice(quoteStart + 1), from: quoteStart + 1, label: m[1], metric: metricBefore(brace) };
  }
  let s = before.length;
  while (s > 0 && identChar.test(before[s - 1])) s--;
  const word = before.slice(s);
  if (/^\d/.test(word)) return { kind: 'none', prefix: '', from: cursor };
  if (brace >= 0) {
    // After an operator we are at a value without a quote yet: nothing to complete.
    if (/(=~|!~|!=|=)\s*$/.test(before.slice(0, s))) return { kind: 'none', prefix: '', from: cursor };
    return { kind: 'label', prefix: word, from: s, metric: metricBefore(brace) };
  }
  if (parens.length) {
    const open = parens[parens.length - 1];
    if (/\b(by|without|on|ignoring|group_left|group_right)\s*$/i.test(before.slice(0, open))) {
      return { kind: 'label', prefix: word, from: s };
    }
  }
  if (!word) return { kind: 'none', prefix: '', from: cursor };
  return { kind: 'metric', prefix: word, from: s };
}

/** PromQL functions and aggregations offered next to metric names. */
export const promFunctions = [
  'abs', 'absent', 'absent_over_time', 'avg', 'avg_over_time', 'bottomk', 'ceil', 'changes', 'clamp', 'clamp_max',
  'clamp_min', 'count', 'count_over_time', 'count_values', 'day_of_month', 'day_of_week', 'delta', 'deriv', 'exp',
  'floor', 'group', 'histogram_avg', 'histogram_count', 'histogram_fraction', 'histogram_quantile', 'histogram_sum',
  'holt_winters', 'hour', 'idelta', 'increase', 'irate', 'label_join', 'label_replace', 'last_over_time', 'ln', 'log10',
  'log2', 'max', 'max_over_time', 'min', 'min_over_time', 'minute', 'month', 'predict_linear', 'present_over_time',
  'quantile', 'quantile_over_time', 'rate', 'resets', 'round', 'scalar', 'sgn', 'sort', 'sort_desc', 'sqrt', 'stddev',
  'stddev_over_time', 'stdvar', 'stdvar_over_time', 'sum', 'sum_over_time', 'time', 'timestamp', 'topk', 'vector', 'year',
];

/** rankCompletions returns the candidates that contain prefix (case-insensitive), prefix matches first, at most limit. */
export function rankCompletions(candidates: string[], prefix: string, limit = 50): string[] {
  const p = prefix.toLowerCase();
  const starts: string[] = [];
  const contains: string[] = [];
  for (const c of candidates) {
    const l = c.toLowerCase();
    if (l === p) continue;
    if (l.startsWith(p)) starts.push(c);
    else if (p && l.includes(p)) contains.push(c);
    if (starts.length >= limit) break;
  }
  return starts.concat(contains).slice(0, limit);
}

/** seriesName renders a label set as metric{a="b", …}. */
export function seriesName(metric: Record<string, string>): string {
  const name = metric.__name__ ?? '';
  const labels = Object.keys(metric).filter((k) => k !== '__name__').sort()
    .map((k) => `${k}="${metric[k].replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`);
  return labels.length ? `${name}{${labels.join(', ')}}` : name || '{}';
}
