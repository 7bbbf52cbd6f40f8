/**
 * At most this many points per series of a chart (2,000 buckets, two points each, and the
 * ends): a chart of a million steps stays a few hundred KB of HTML and draws at once.
 */
export const MAX_POINTS_PER_SERIES = 4002;

/** One axis of a series: its field in the chart's rows, and its value at row i. */
export interface Axis {
  field: string;
  at(i: number): number | undefined;
}

/** How many buckets a series of more than `maxPoints` rows is cut into: two points each, plus the series' first and last. */
export const bucketCount = (maxPoints: number) => Math.floor((maxPoints - 2) / 2);

/**
 * The points of one series of `count` rows (in x order), at most `maxPoints`: every row
 * when they fit; else min/max per bucket: the rows cut into buckets of consecutive rows
 * (see bucketCount), each drawn by its lowest and its highest value, in x order, plus the
 * series' first and last rows so the x axis still spans the whole run. Unlike a mean or
 * every k-th row, a one-step spike (a loss blow-up, a slow step, a memory peak) stays in
 * the chart at its full height. Rows without a finite value are left out, as the chart's
 * filter leaves them out (JSON writes NaN as null).
 */
export function minMaxBuckets(count: number, x: Axis, y: Axis, maxPoints = MAX_POINTS_PER_SERIES): Record<string, number>[] {
  const value = (i: number) => y.at(i)!;
  const row = (i: number) => ({ [x.field]: x.at(i)!, [y.field]: value(i) });
  const finite = (i: number) => Number.isFinite(y.at(i));
  const rows: Record<string, number>[] = [];
  if (count <= maxPoints) {
    for (let i = 0; i < count; i++) if (finite(i)) rows.push(row(i));
    return rows;
  }
  const buckets = bucketCount(maxPoints);
  for (let b = 0; b < buckets; b++) {
    const start = Math.floor((b * count) / buckets);
    const end = Math.floor(((b + 1) * count) / buckets);
    let [first, last, lo, hi] = [-1, -1, -1, -1];
    for (let i = start; i < end; i++) {
      if (!finite(i)) continue;
      if (first < 0) first = i;
      last = i;
      if (lo < 0 || value(i) < value(lo)) lo = i;
      if (hi < 0 || value(i) > value(hi)) hi = i;
    }
    if (lo < 0) continue;
    const keep = new Set([...(b === 0 ? [first] : []), lo, hi, ...(b === buckets - 1 ? [last] : [])]);
    for (const i of [...keep].sort((a, c) => a - c)) rows.push(row(i));
  }
  return rows;
}

/** What a chart of `count` rows says under its title when its series were bucketed, else nothing. */
export function bucketNote(count: number, unit: string, maxPoints = MAX_POINTS_PER_SERIES): string | undefined {
  if (count <= maxPoints) return undefined;
  const buckets = bucketCount(maxPoints);
  const size = Math.floor(count / buckets);
  const sizes = count % buckets === 0 ? `${size}` : `${size} or ${size + 1}`;
  return `${count.toLocaleString('en-US')} ${unit}s in ${buckets.toLocaleString('en-US')} buckets of ${sizes}, each drawn by its lowest and highest value`;
}
