// Time-axis ticks for the waterfall ruler.

/** niceStep returns a step of 1, 2 or 5 times a power of ten that splits span into about `count` parts. */
export function niceStep(span: number, count: number): number {
  if (!(span > 0) || !(count > 0)) return 1;
  const raw = span / count;
  const pow = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / pow;
  const nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return nice * pow;
}

/**
 * ticks returns tick positions covering [min, max] at a nice step, starting
 * at the first multiple of the step at or after min. `count` is the number
 * of intervals wanted (the result holds about count+1 ticks).
 */
export function ticks(min: number, max: number, count: number): number[] {
  if (!(max > min)) return [min];
  const step = niceStep(max - min, count);
  const first = Math.ceil(min / step - 1e-9) * step;
  const out: number[] = [];
  // Round to the step's precision so that 0.1+0.2 does not print as 0.30000000000000004.
  const digits = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  for (let v = first, i = 0; v <= max + step * 1e-9 && i < 1000; i++, v = first + i * step) {
    out.push(Number(v.toFixed(Math.min(digits, 20))));
  }
  return out;
}
