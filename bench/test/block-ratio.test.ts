import { expect } from 'chai';
import { blockRatio } from '../src/lib/timing';

/**
 * A fake machine: each call of a variant advances the clock by its cost (ms per step times
 * its steps) times the machine's slowdown at that moment, so the ratio blockRatio reports can
 * be checked against the true one.
 */
function fakeMachine(slowdown: (call: number) => number) {
  let now = 0;
  let call = 0;
  const variant = (msPerStep: number, steps = 10) => () => {
    now += msPerStep * steps * slowdown(call++);
    return steps;
  };
  return { variant, clock: () => now };
}

describe('blockRatio (back-to-back blocks a b b a / b a a b)', () => {
  it('a steady machine: the true ratio, and each side\'s ms per step', async () => {
    const m = fakeMachine(() => 1);
    const r = await blockRatio(m.variant(20), m.variant(21), 10, 2, m.clock);
    expect(r.median).to.be.closeTo(1.05, 1e-4);
    expect(r.denominatorMsPerStep).to.be.closeTo(20, 1e-9);
    expect(r.numeratorMsPerStep).to.be.closeTo(21, 1e-9);
    expect(r.ratios).to.have.length(10);
  });

  it('a machine slowing down steadily: the symmetric order cancels the drift within each block', async () => {
    const m = fakeMachine((call) => 1 + 0.01 * call);
    const r = await blockRatio(m.variant(20), m.variant(20), 20, 2, m.clock);
    // a b b a: a at calls 0 and 3, b at 1 and 2 — equal sums of a linear slowdown.
    expect(r.min).to.be.closeTo(1, 1e-9);
    expect(r.max).to.be.closeTo(1, 1e-9);
  });

  it('the machine switching to a slow state now and then moves the blocks it hits, not the median', async () => {
    // 1.8x slower during calls 40-45 and 100-102 (inside a few blocks), otherwise steady.
    const m = fakeMachine((call) => ((call >= 40 && call < 46) || (call >= 100 && call < 103) ? 1.8 : 1));
    const r = await blockRatio(m.variant(20), m.variant(20.2), 30, 2, m.clock);
    const hit = r.ratios.filter((x) => Math.abs(x - 1.01) > 0.1);
    expect(hit.length).to.be.within(1, 4); // the hit blocks show in the spread
    expect(r.median).to.be.closeTo(1.01, 1e-4);
  });
});
