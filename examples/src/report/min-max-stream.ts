import { bucketCount, MAX_POINTS_PER_SERIES } from './min-max-buckets';

/** A kept row: its place in the series, its x and its y. */
interface Point {
  i: number;
  x: number;
  y: number;
}

/** A bucket's lowest and highest finite rows (the same row when it holds one). */
interface Bucket {
  lo: Point;
  hi: Point;
}

/**
 * minMaxBuckets for a series that arrives one row at a time and is never held whole (a
 * report's step series: a run of a million steps). It keeps a fixed number of buckets of
 * `width` consecutive rows, each with its lowest and highest finite row; when a row falls
 * past the last bucket, neighbouring buckets merge in pairs and the width doubles. A merge
 * keeps the lower of the two lows and the higher of the two highs, so every bucket holds
 * the exact extremes of its rows: a one-step spike keeps its full height however long
 * the series. The width starts at 2 (a bucket's two points are then its two rows), so a
 * series of up to twice the bucket count is drawn whole. What it holds depends on
 * `maxPoints` only, never on how many rows were pushed.
 */
export class MinMaxStream {
  /** Bucket b holds rows b*width .. (b+1)*width - 1; undefined when none of them is finite. */
  private buckets: (Bucket | undefined)[] = [];
  private rowsPerBucket = 2;
  private first: Point | undefined;
  private last: Point | undefined;
  private readonly capacity: number;
  /** Rows pushed, finite or not. */
  count = 0;

  constructor(readonly maxPoints = MAX_POINTS_PER_SERIES) {
    this.capacity = bucketCount(maxPoints);
    if (this.capacity < 1) throw new RangeError(`MinMaxStream: maxPoints must be at least 4, got ${maxPoints}`);
  }

  /** Adds the next row (x in increasing order). A row without a finite y is counted, not drawn (the chart's filter leaves it out). */
  push(x: number, y: number | undefined): void {
    const i = this.count++;
    if (y === undefined || !Number.isFinite(y)) return;
    const p = { i, x, y };
    this.first ??= p;
    this.last = p;
    while (Math.floor(i / this.rowsPerBucket) >= this.capacity) this.mergePairs();
    const b = Math.floor(i / this.rowsPerBucket);
    const bucket = this.buckets[b];
    if (!bucket) this.buckets[b] = { lo: p, hi: p };
    else {
      // Ties: the low stays the earlier row, the high becomes the later one: a bucket of two equal rows keeps both.
      if (y < bucket.lo.y) bucket.lo = p;
      if (y >= bucket.hi.y) bucket.hi = p;
    }
  }

  private mergePairs(): void {
    const merged: (Bucket | undefined)[] = [];
    for (let b = 0; b < this.buckets.length; b += 2) {
      const [a, c] = [this.buckets[b], this.buckets[b + 1]];
      merged.push(a && c ? { lo: c.lo.y < a.lo.y ? c.lo : a.lo, hi: c.hi.y >= a.hi.y ? c.hi : a.hi } : (a ?? c));
    }
    this.buckets = merged;
    this.rowsPerBucket *= 2;
  }

  /** Rows per bucket now: 2, doubled at each merge. */
  get width(): number {
    return this.rowsPerBucket;
  }

  /** Buckets held now: at most bucketCount(maxPoints), however many rows were pushed. */
  get heldBuckets(): number {
    return this.buckets.length;
  }

  /** Whether rows were left out of the drawing (the width grew past 2). */
  get bucketed(): boolean {
    return this.rowsPerBucket > 2;
  }

  /**
   * The points to draw, in x order, at most `maxPoints`: each bucket's lowest and highest
   * row, plus the series' first and last finite rows so the x axis spans the whole series.
   */
  rows(xField: string, yField: string): Record<string, number>[] {
    const points: Point[] = [];
    const keep = (p: Point | undefined) => {
      if (p && (points.length === 0 || p.i > points[points.length - 1].i)) points.push(p);
    };
    keep(this.first);
    for (const b of this.buckets) {
      if (!b) continue;
      const [a, c] = b.lo.i <= b.hi.i ? [b.lo, b.hi] : [b.hi, b.lo];
      keep(a);
      keep(c);
    }
    keep(this.last);
    return points.map((p) => ({ [xField]: p.x, [yField]: p.y }));
  }

  /** What a chart of this series says under its title when rows were left out, else nothing. */
  note(unit: string): string | undefined {
    if (!this.bucketed) return undefined;
    const buckets = Math.ceil(this.count / this.rowsPerBucket);
    const lastSize = this.count - (buckets - 1) * this.rowsPerBucket;
    const last = lastSize === this.rowsPerBucket ? '' : ` (the last of ${lastSize.toLocaleString('en-US')})`;
    return `${this.count.toLocaleString('en-US')} ${unit}s in ${buckets.toLocaleString('en-US')} buckets of ${this.rowsPerBucket.toLocaleString('en-US')}${last}, each drawn by its lowest and highest value`;
  }
}
