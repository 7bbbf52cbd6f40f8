import { expect } from 'chai';
import { seededRandom } from '@tapfit/core/testing';
import { minMaxBuckets } from '../src/report/min-max-buckets';
import { MinMaxStream } from '../src/report/min-max-stream';

/** The stream of `values` (x = 100 + i). */
function streamOf(values: (number | undefined)[], maxPoints?: number): MinMaxStream {
  const stream = new MinMaxStream(maxPoints);
  values.forEach((y, i) => stream.push(100 + i, y));
  return stream;
}

/**
 * The oracle, from the whole series: cut into consecutive buckets of `width` rows, each
 * drawn by its lowest (the earliest of equal lows) and highest (the latest of equal highs)
 * finite row, plus the first and last finite rows; in x order.
 */
function wholeSeriesBuckets(values: (number | undefined)[], width: number): { step: number; loss: number }[] {
  const finite = values.map((y, i) => ({ i, y })).filter((p): p is { i: number; y: number } => Number.isFinite(p.y));
  const keep = new Set<number>();
  if (finite.length) keep.add(finite[0].i).add(finite.at(-1)!.i);
  const buckets = new Map<number, { i: number; y: number }[]>();
  for (const p of finite) buckets.set(Math.floor(p.i / width), [...(buckets.get(Math.floor(p.i / width)) ?? []), p]);
  for (const rows of buckets.values()) {
    keep.add(rows.reduce((lo, p) => (p.y < lo.y ? p : lo)).i);
    keep.add(rows.reduce((hi, p) => (p.y >= hi.y ? p : hi)).i);
  }
  return [...keep].sort((a, b) => a - b).map((i) => ({ step: 100 + i, loss: values[i]! }));
}

describe('report charts: min/max per bucket, streamed (a series never held whole)', () => {
  it('a series of up to twice the bucket count is drawn whole, as minMaxBuckets draws it', () => {
    const values = [1, NaN, 3, undefined, Infinity, 2, 2, 7];
    const stream = streamOf(values, 10); // 4 buckets: 8 rows fit
    const whole = minMaxBuckets(values.length, { field: 'step', at: (i) => 100 + i }, { field: 'loss', at: (i) => values[i] }, 10);
    expect(stream.rows('step', 'loss')).to.deep.equal(whole);
    expect(stream.note('step')).to.equal(undefined);
  });

  it('past that, each bucket keeps the exact lowest and highest row of its rows however often buckets merged (oracle: the whole series)', () => {
    const random = seededRandom(7);
    for (const [n, maxPoints] of [
      [9, 10],
      [37, 10],
      [1000, 10],
      [5000, 22],
      [123_457, 4002],
    ]) {
      // Small integers: many equal values, so the tie rules are exercised; some NaN and missing rows.
      const values = Array.from({ length: n }, () => {
        const r = random();
        return r < 0.03 ? NaN : r < 0.05 ? undefined : Math.floor(random() * 20) - (r > 0.999 ? 1000 : 0);
      });
      const stream = streamOf(values, maxPoints);
      const rows = stream.rows('step', 'loss');
      expect(rows, `${n} rows, maxPoints ${maxPoints}`).to.deep.equal(wholeSeriesBuckets(values, stream.width));
      expect(rows.length).to.be.at.most(maxPoints);
      expect(stream.heldBuckets).to.be.at.most(Math.floor((maxPoints - 2) / 2));
      // The extremes of the whole series are in the chart.
      const finite = values.filter((v): v is number => Number.isFinite(v));
      expect([Math.min(...rows.map((r) => r.loss)), Math.max(...rows.map((r) => r.loss))]).to.deep.equal([Math.min(...finite), Math.max(...finite)]);
    }
  });

  it('holds the same number of buckets after a million rows as after a few thousand, and says how it bucketed', () => {
    const held = (n: number) => {
      const stream = new MinMaxStream();
      for (let i = 0; i < n; i++) stream.push(i, Math.sin(i));
      return stream;
    };
    const [small, large] = [held(4096 * 3), held(2 ** 20 * 3)]; // the same place in the doubling: 1,536 of 2,000 buckets
    expect(small.heldBuckets).to.equal(large.heldBuckets).and.to.be.at.most(2000);
    expect(large.note('step')).to.equal('3,145,728 steps in 1,536 buckets of 2,048, each drawn by its lowest and highest value');
    expect(held(1001).note('step')).to.equal(undefined);
    expect(held(4001).note('step')).to.equal('4,001 steps in 1,001 buckets of 4 (the last of 1), each drawn by its lowest and highest value');
  });
});
