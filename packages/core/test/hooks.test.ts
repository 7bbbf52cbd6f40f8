import { expect } from 'chai';
import { resolveOrder, Stage, type OrderedTap } from '../src/hooks/order';
import { SeriesHook, WaterfallHook } from '../src/hooks/hook-point';
import { TapfitError } from '../src/errors';

const tap = (name: string, index: number, o: Partial<OrderedTap> = {}): OrderedTap => ({ name, index, stage: 0, before: [], after: [], ...o });
const names = (ts: OrderedTap[]) => ts.map((t) => t.name);

describe('hook ordering', () => {
  const known = new Set(['a', 'b', 'c', 'd']);

  it('keeps registration order within a stage and sorts stages ascending', () => {
    const ts = [tap('a', 0, { stage: Stage.REPORT }), tap('b', 1), tap('c', 2, { stage: Stage.PREPARE }), tap('d', 3)];
    expect(names(resolveOrder('h', ts, known))).to.deep.equal(['c', 'b', 'd', 'a']);
  });

  it('before/after override stages', () => {
    const ts = [tap('a', 0, { stage: Stage.FIRST, after: ['b'] }), tap('b', 1, { stage: Stage.LAST }), tap('c', 2, { before: ['b'] })];
    expect(names(resolveOrder('h', ts, known))).to.deep.equal(['c', 'b', 'a']);
  });

  it('ignores constraints on known plugins that do not tap this hook', () => {
    const ts = [tap('a', 0, { after: ['d'] }), tap('b', 1)];
    expect(names(resolveOrder('h', ts, known))).to.deep.equal(['a', 'b']);
  });

  it('rejects unknown names, naming the hook, the tap and the name', () => {
    expect(() => resolveOrder('backward', [tap('a', 0, { before: ['nope'] })], known))
      .to.throw(TapfitError, /hook 'backward': tap 'a' asks to run before 'nope'/)
      .with.property('code', 'TAPFIT_E_ORDER_UNKNOWN');
  });

  it('rejects cycles, naming the taps involved', () => {
    const ts = [tap('a', 0, { before: ['b'] }), tap('b', 1, { before: ['c'] }), tap('c', 2, { before: ['a'] }), tap('d', 3)];
    expect(() => resolveOrder('forward', ts, known)).to.throw(TapfitError, /'a', 'b', 'c' form a cycle/).with.property('code', 'TAPFIT_E_ORDER_CYCLE');
  });
});

describe('hook points', () => {
  it('a waterfall threads the value through taps in resolved order', () => {
    const h = new WaterfallHook<string, number>('w', '');
    h.tap('p1', { stage: 10 }, (v, i) => `${v}>p1:${i}`);
    h.tap('p2', 'p2', (v) => `${v}>p2`);
    h.seal(new Set(['p1', 'p2']));
    expect(h.call('x', 7)).to.equal('x>p2>p1:7');
    expect(h.order()).to.deep.equal(['p2', 'p1']);
  });

  it('an untapped waterfall returns its value', () => {
    const h = new WaterfallHook<number, null>('w', '');
    h.seal(new Set());
    expect(h.call(3, null)).to.equal(3);
    expect(h.isUsed).to.equal(false);
  });

  it('errors name the plugin and the hook, keeping the cause', async () => {
    const boom = new Error('boom');
    const w = new WaterfallHook<number, null>('backward', '');
    w.tap('bad-plugin', {}, () => {
      throw boom;
    });
    w.seal(new Set(['bad-plugin']));
    expect(() => w.call(1, null)).to.throw(/plugin 'bad-plugin' failed in hook 'backward': boom/).with.property('cause', boom);

    const s = new SeriesHook<null>('epochEnd', '');
    s.tap('slow-bad', {}, async () => {
      throw boom;
    });
    s.seal(new Set(['slow-bad']));
    let caught: unknown;
    await s.run(null).catch((e) => (caught = e));
    expect(String(caught)).to.match(/plugin 'slow-bad' failed in hook 'epochEnd': boom/);
  });

  it('series taps run one after another, awaited', async () => {
    const h = new SeriesHook<string[]>('s', '');
    h.tap('a', {}, async (log) => {
      await new Promise((r) => setTimeout(r, 5));
      log.push('a');
    });
    h.tap('b', {}, (log) => void log.push('b'));
    h.seal(new Set(['a', 'b']));
    const log: string[] = [];
    await h.run(log);
    expect(log).to.deep.equal(['a', 'b']);
  });

  it('refuses taps after sealing', () => {
    const h = new SeriesHook<null>('fitStart', '');
    h.seal(new Set());
    expect(() => h.tap('late', {}, () => {})).to.throw(/tapped hook 'fitStart' after the trainer was set up/);
  });
});
