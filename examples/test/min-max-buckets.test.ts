import { expect } from 'chai';
import { bucketNote, minMaxBuckets } from '../src/report/min-max-buckets';

const series = (values: (number | undefined)[]) =>
  [values.length, { field: 'step', at: (i: number) => 100 + i }, { field: 'loss', at: (i: number) => values[i] }] as const;

describe('report charts: min/max per bucket', () => {
  it('a series that fits is kept whole, less its non-finite values', () => {
    expect(minMaxBuckets(...series([1, NaN, 3, undefined, Infinity, 2]), 10)).to.deep.equal([
      { step: 100, loss: 1 },
      { step: 102, loss: 3 },
      { step: 105, loss: 2 },
    ]);
    expect(bucketNote(10, 'step', 10)).to.equal(undefined);
  });

  it("past maxPoints: each bucket's lowest and highest value in step order, and the series' first and last, so a one-step spike keeps its height", () => {
    // 4 buckets of 5 (maxPoints 10): a spike at 7, a dip at 13, a NaN bucket
    const values = [5, 4, 6, 5, 5, 5, 5, 99, 5, 5, NaN, NaN, NaN, NaN, NaN, 5, 5, 5, 0.5, 5];
    const rows = minMaxBuckets(...series(values), 10);
    expect(rows).to.deep.equal([
      { step: 100, loss: 5 }, // the first
      { step: 101, loss: 4 },
      { step: 102, loss: 6 },
      { step: 105, loss: 5 },
      { step: 107, loss: 99 },
      { step: 115, loss: 5 },
      { step: 118, loss: 0.5 },
      { step: 119, loss: 5 }, // the last
    ]);
    expect(rows.length).to.be.at.most(10);
    expect(bucketNote(20, 'step', 10)).to.equal('20 steps in 4 buckets of 5, each drawn by its lowest and highest value');
    expect(bucketNote(21, 'step', 10)).to.equal('21 steps in 4 buckets of 5 or 6, each drawn by its lowest and highest value');
  });

  it('never more than maxPoints, however long the series', () => {
    for (const n of [4003, 10_007, 1_000_000]) {
      const rows = minMaxBuckets(n, { field: 'step', at: (i) => i }, { field: 'ms', at: (i) => Math.sin(i) });
      expect(rows.length, `${n} rows`).to.be.within(3000, 4002);
      expect([rows[0].step, rows.at(-1)!.step]).to.deep.equal([0, n - 1]);
    }
  });
});
