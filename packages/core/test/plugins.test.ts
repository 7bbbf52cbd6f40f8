import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as os from 'node:os';
import { AutodiffBackprop, CORE_VERSION, Stage, TapfitError, Tokens, Trainer, type Logger, type Metric, type PluginApi, type Segment, type TapfitPlugin } from '../src';
import { injectable, inject, singleton } from 'tsyringe';
import { blobs, tinyMlp, tinyTrainer, tmpDir, useBackend } from './fixtures';

const plugin = (name: string, extra: Partial<TapfitPlugin> = {}, apply: (api: PluginApi) => void = () => {}): TapfitPlugin => ({
  name,
  core: '^0.1.0',
  apply,
  ...extra,
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as TapfitError).code;
  }
  return undefined;
}

describe('plugin registration', () => {
  useBackend('cpu');

  it('rejects a plugin whose core range excludes this core, naming both', () => {
    expect(() => tinyTrainer({ plugins: [plugin('old', { core: '^0.0.1' })] })).to.throw(
      new RegExp(`plugin 'old' supports @tapfit/core \\^0.0.1, but this is ${CORE_VERSION.replace(/\./g, '\\.')}`),
    );
  });

  it('rejects malformed plugins with what is missing', () => {
    expect(codeOf(() => tinyTrainer({ plugins: [{ name: 'x' } as unknown as TapfitPlugin] }))).to.equal('TAPFIT_E_PLUGIN_INVALID');
    expect(() => tinyTrainer({ plugins: [{ name: 'x', apply() {}, core: 'not a range' } as TapfitPlugin] })).to.throw(/must declare `core` as a semver range/);
  });

  it('rejects duplicates, missing requirements and conflicts before applying anything', () => {
    let applied = 0;
    const counting = (name: string, extra: Partial<TapfitPlugin> = {}) => plugin(name, extra, () => void applied++);
    expect(codeOf(() => tinyTrainer({ plugins: [counting('a'), counting('a')] }))).to.equal('TAPFIT_E_PLUGIN_DUPLICATE');
    expect(() => tinyTrainer({ plugins: [counting('a', { requires: ['b'] })] })).to.throw(/plugin 'a' requires plugin 'b', which is not registered/);
    expect(() => tinyTrainer({ plugins: [counting('a', { conflicts: ['b'] }), counting('b')] })).to.throw(/plugins 'a' and 'b' conflict/);
    expect(applied).to.equal(0);
    expect(() => tinyTrainer({ plugins: [counting('a', { requires: ['b'] }), counting('b')] })).not.to.throw();
    expect(applied).to.equal(2);
  });

  it('a plugin instance serves one live trainer: a second is refused before anything is applied; dispose, a failed build or a failed resume frees it', async () => {
    const events: string[] = [];
    const counting = (name: string, apply: () => void = () => {}) => plugin(name, { dispose: () => void events.push(`dispose ${name}`) }, () => (events.push(`apply ${name}`), apply()));
    const shared = counting('shared');
    const a = tinyTrainer({ plugins: [shared] });
    let err: TapfitError | undefined;
    try {
      tinyTrainer({ plugins: [counting('other'), shared] });
    } catch (e) {
      err = e as TapfitError;
    }
    expect(err?.code).to.equal('TAPFIT_E_STATE');
    expect(err?.message).to.match(/plugin 'shared' is applied to another trainer that has not been disposed.*Give each trainer its own instance.*or dispose\(\) the other trainer first/);
    const refusedResume = await Trainer.resume(tmpDir(), { model: tinyMlp(), loss: 'softmaxCrossEntropy', optimizer: 'sgd', plugins: [shared] }).then(() => undefined, (e: TapfitError) => e);
    expect(refusedResume?.code).to.equal('TAPFIT_E_STATE');
    expect(events).to.deep.equal(['apply shared']); // nothing applied by the refused ones
    const data = blobs(16);
    await a.fit(data, { epochs: 1, batchSize: 8 }); // the first trains on, untouched
    a.dispose();
    // Free again: a build that fails in a plugin's apply() is never returned, and lets go of it.
    expect(codeOf(() => tinyTrainer({ plugins: [shared, counting('broken', () => { throw new Error('boom'); })] }))).to.equal('TAPFIT_E_PLUGIN_FAILED');
    // So is a resume that fails before setup (no checkpoint there).
    const noCheckpoint = await Trainer.resume(tmpDir(), { model: tinyMlp(), loss: 'softmaxCrossEntropy', optimizer: 'sgd', plugins: [shared] }).then(() => undefined, (e: TapfitError) => e);
    expect(noCheckpoint?.code).to.equal('TAPFIT_E_CHECKPOINT');
    const b = tinyTrainer({ plugins: [shared] });
    await b.fit(data, { epochs: 1, batchSize: 8 });
    b.dispose();
    // a.dispose(), the failed resume (its trainer is never returned, so the resume gives the plugins their dispose()), b.dispose().
    expect(events.filter((e) => e === 'dispose shared')).to.have.length(3);
    data.dispose();
  });

  it("a failed Trainer.resume gives every plugin its dispose(); one that throws is logged and the resume's own error is thrown", async () => {
    const events: string[] = [];
    const warnings: string[] = [];
    const logger: Logger = { info() {}, warn: (m) => void warnings.push(m) };
    const throwing = plugin('throwing', { dispose: () => { events.push('dispose throwing'); throw new Error('cannot free'); } });
    const after = plugin('after', { dispose: () => void events.push('dispose after') });
    const err = await Trainer.resume(tmpDir(), { model: tinyMlp(), loss: 'softmaxCrossEntropy', optimizer: 'sgd', logger, plugins: [throwing, after] }).then(() => undefined, (e: TapfitError) => e);
    expect(err?.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(events).to.deep.equal(['dispose throwing', 'dispose after']);
    expect(warnings.join('\n')).to.match(/resume failed, and then plugin 'throwing' failed in dispose\(\): cannot free/);
    const again = tinyTrainer({ plugins: [throwing, after] }); // both free again
    expect(codeOf(() => again.dispose())).to.equal('TAPFIT_E_PLUGIN_FAILED');
  });

  it('a plugin class resolved as a singleton is one instance: a second live trainer is refused', () => {
    @singleton()
    class Single implements TapfitPlugin {
      readonly name = 'single';
      readonly core = '^0.1.0';
      apply(): void {}
    }
    const a = tinyTrainer({ plugins: [Single] });
    expect(codeOf(() => tinyTrainer({ plugins: [Single] }))).to.equal('TAPFIT_E_STATE');
    a.dispose();
    tinyTrainer({ plugins: [Single] }).dispose();
  });

  it("a forward tap that edits the pass in place changes that step only: the model's segments stay, the wrapper does not pile up", async () => {
    let depthSeen = 0;
    const t = tinyTrainer({
      plugins: [
        plugin('in-place', {}, ({ hooks }) =>
          hooks.forward.tap('in-place', (pass) => {
            const inner = pass.segments[0] as Segment & { depth?: number };
            const depth = (inner.depth ?? 0) + 1;
            depthSeen = Math.max(depthSeen, depth);
            (pass.segments as Segment[])[0] = { ...inner, depth, forward: (xs, ctx) => inner.forward(xs, ctx) } as Segment;
            return pass;
          }),
        ),
      ],
    });
    const data = blobs(32);
    const segments = [...t.model.segments];
    await t.fit(data, { epochs: 1, batchSize: 8 });
    expect(t.step).to.equal(4);
    expect(depthSeen).to.equal(1);
    expect(t.model.segments).to.deep.equal(segments);
    t.dispose();
    data.dispose();
  });

  it('a conflict declared with a reason quotes it, from either side of the list; malformed entries are refused', () => {
    let applied = 0;
    const counting = (name: string, extra: Partial<TapfitPlugin> = {}) => plugin(name, extra, () => void applied++);
    const reasoned = { conflicts: [{ plugin: 'b', reason: 'both replace the Backprop.' }] };
    for (const plugins of [[counting('a', reasoned), counting('b')], [counting('b'), counting('a', reasoned)]]) {
      let err: TapfitError | undefined;
      try {
        tinyTrainer({ plugins });
      } catch (e) {
        err = e as TapfitError;
      }
      expect(err?.code).to.equal('TAPFIT_E_PLUGIN_CONFLICTS');
      expect(err?.message).to.equal("plugins 'a' and 'b' cannot be used together: both replace the Backprop. Remove one of them.");
    }
    expect(applied).to.equal(0);
    expect(() => tinyTrainer({ plugins: [counting('a', { conflicts: [{ plugin: 'b' }] as never })] })).to.throw(/plugin 'a': `conflicts` must be a list of plugin names or \{ plugin, reason \} entries/);
    expect(() => tinyTrainer({ plugins: [counting('a', { requires: 'b' as never })] })).to.throw(/plugin 'a': `requires` must be a list of plugin names/);
    expect(() => tinyTrainer({ plugins: [counting('a', reasoned)] })).not.to.throw();
  });

  it('gives plugins a tap-only view of the hooks', () => {
    let seen: Record<string, unknown> = {};
    tinyTrainer({ plugins: [plugin('p', {}, (api) => (seen = api.hooks.backward as unknown as Record<string, unknown>))] });
    expect(Object.keys(seen)).to.deep.equal(['tap']);
    expect(Object.isFrozen(seen)).to.equal(true);
  });

  it('reports an unknown before/after name and a cycle at setup', async () => {
    const t1 = tinyTrainer({ plugins: [plugin('a', {}, (api) => api.hooks.backward.tap({ before: 'ghost' }, (g) => g))] });
    let err: unknown;
    await t1.setup().catch((e) => (err = e));
    expect((err as TapfitError).code).to.equal('TAPFIT_E_ORDER_UNKNOWN');
    const t2 = tinyTrainer({
      plugins: [
        plugin('a', {}, (api) => api.hooks.forward.tap({ before: 'b' }, (f) => f)),
        plugin('b', {}, (api) => api.hooks.forward.tap({ before: 'a' }, (f) => f)),
      ],
    });
    err = undefined;
    await t2.setup().catch((e) => (err = e));
    expect((err as TapfitError).code).to.equal('TAPFIT_E_ORDER_CYCLE');
  });

  it('a plugin throwing in apply() or in a hook is named with the hook', async () => {
    expect(() =>
      tinyTrainer({
        plugins: [
          plugin('explodes', {}, () => {
            throw new Error('bad config');
          }),
        ],
      }),
    ).to.throw(/plugin 'explodes' failed in apply\(\): bad config/);
    const data = blobs(32);
    const t = tinyTrainer({
      plugins: [
        plugin('grumpy', {}, (api) =>
          api.hooks.backward.tap('grumpy', () => {
            throw new Error('no gradients today');
          }),
        ),
      ],
    });
    await t.setup();
    const before = tf.memory().numTensors;
    const w0 = Object.values(t.variables)[0].arraySync();
    let err: unknown;
    await t.fit(data, { epochs: 1, batchSize: 8 }).catch((e) => (err = e));
    expect(String(err)).to.match(/plugin 'grumpy' failed in hook 'backward': no gradients today/);
    expect(Object.values(t.variables)[0].arraySync()).to.deep.equal(w0);
    expect(tf.memory().numTensors).to.equal(before);
    t.dispose();
    data.dispose();
  });

  it('describe() lists every hook in resolved order and the update chain', async () => {
    const t = tinyTrainer({
      plugins: [
        plugin('late', {}, (api) => api.hooks.backward.tap({ stage: Stage.GUARD }, (g) => g)),
        plugin('early', {}, (api) => {
          api.hooks.backward.tap({ stage: Stage.PREPARE }, (g) => g);
          api.hooks.batchEnd.tap('early', () => {});
        }),
        plugin('middle', {}, (api) => api.hooks.backward.tap({ before: 'late', after: 'early' }, (g) => g)),
      ],
    });
    await t.setup();
    const d = t.describe({ print: false });
    expect(d.hooks.backward).to.deep.equal(['early', 'middle', 'late']);
    expect(d.hooks.batchEnd).to.deep.equal(['early']);
    expect(d.hooks.forward).to.deep.equal([]);
    expect(d.stepTransforms).to.deep.equal(['momentum', 'lr']);
    expect(d.memoryPlan!.segments.map((s) => s.policy)).to.deep.equal(['store', 'store']);
    t.dispose();
  });

  it('describe() names what replaced an update member and who runs the backward; a Backprop that does not realise the plan gets no per-segment plan', async () => {
    /** What describe() prints for a tiny trainer with `plugins`. */
    const printed = async (plugins: TapfitPlugin[]): Promise<string> => {
      const lines: string[] = [];
      const t = tinyTrainer({ plugins, logger: { info: (m: string) => void lines.push(m), warn: () => {} } });
      await t.setup();
      t.describe();
      t.dispose();
      return lines[lines.length - 1];
    };
    // A plugin that swaps the momentum member for a delay compensation keeping its name (as Adaptive Braking, Spike Compensation do).
    const compensating = plugin('compensating', {}, (api) =>
      api.hooks.stepTransforms.tap('compensating', (members) =>
        members.map((m) => (m.name === 'momentum' ? { ...m, hyperparams: { ...m.hyperparams, compensation: 'test-compensation' } } : m)),
      ),
    );
    const recomputing = plugin('recomputing', {}, (api) => api.hooks.planMemory.tap('recomputing', (p) => ({ ...p, segments: p.segments.map((s, i) => (i === 0 ? { ...s, policy: 'recompute' as const } : s)) })));
    const text = await printed([compensating]);
    expect(text).to.match(/^update: momentum \[test-compensation, by compensating\] -> lr$/m);
    expect(text).to.match(/^backprop: core \(autodiff\)$/m);
    expect(text).to.match(/^memory plan:\n {2}\S+ +store\n {2}\S+ +store$/m);
    expect(await printed([recomputing])).to.match(/^update: momentum -> lr$/m).and.match(/^backprop: core \(segment executor\)$/m).and.match(/ recompute$/m);
    // A provider's Backprop: named, with its description; the plan's policies are not printed unless it realises them.
    const own = (realises?: boolean) =>
      plugin('own-backprop', { provides: [Tokens.Backprop] }, (api) => {
        api.services.register(Tokens.Backprop, { description: 'test simulator', ...(realises === undefined ? {} : { realisesMemoryPlan: realises }), compute: (r) => new AutodiffBackprop().compute(r) });
        api.hooks.planMemory.tap('own-backprop', (p) => ({ ...p, extraBytes: [...p.extraBytes, { source: 'own-backprop: stash', bytes: 48 }] }));
      });
    for (const realises of [undefined, false]) {
      const out = await printed([own(realises)]);
      expect(out).to.match(/^backprop: plugin 'own-backprop' \(test simulator\)$/m);
      expect(out).to.match(/^memory plan: not used by the Backprop of plugin 'own-backprop'; extra memory:\n {2}\+ own-backprop: stash: 48 B$/m);
      expect(out).not.to.match(/ store$/m);
    }
    expect(await printed([own(true)])).to.match(/^memory plan:\n {2}\S+ +store\n {2}\S+ +store\n {2}\+ own-backprop: stash: 48 B$/m);
  });
});

@injectable()
class PrefixLogger implements Logger {
  lines: string[] = [];
  constructor(@inject(Tokens.Metrics) readonly metrics: readonly Metric[]) {}
  info(m: string) {
    this.lines.push(m);
  }
  warn(m: string) {
    this.lines.push(m);
  }
}

describe('dependency injection', () => {
  useBackend('cpu');

  it('each trainer has its own container: a plugin service in one is absent from another', () => {
    const decorated: string[] = [];
    const a = tinyTrainer({
      plugins: [
        plugin('decorator', {}, (api) =>
          api.services.decorate(Tokens.Logger, (prev) => ({ info: (m) => decorated.push(`[a] ${m}`), warn: prev.warn })),
        ),
      ],
    });
    const b = tinyTrainer();
    a.resolve(Tokens.Logger).info('hello');
    b.resolve(Tokens.Logger).info('hello');
    expect(decorated).to.deep.equal(['[a] hello']);
    expect(a.resolve(Tokens.Backprop)).to.not.equal(b.resolve(Tokens.Backprop));
  });

  it('plugins can register classes that get injected services', () => {
    const t = tinyTrainer({ metrics: ['accuracy', 'mse'], plugins: [plugin('cls', {}, (api) => api.services.container.register(Tokens.Logger, { useClass: PrefixLogger }))] });
    const logger = t.resolve(Tokens.Logger) as PrefixLogger;
    expect(logger).to.be.instanceOf(PrefixLogger);
    expect(logger.metrics.map((m) => m.name)).to.deep.equal(['acc', 'mse']);
  });

  it('accepts a plugin class and builds it from the container', () => {
    class ClassPlugin implements TapfitPlugin {
      readonly name = 'class-plugin';
      readonly core = '^0.1.0';
      applied = false;
      apply() {
        this.applied = true;
      }
    }
    const t = tinyTrainer({ plugins: [ClassPlugin] });
    expect((t.plugins[0] as ClassPlugin).applied).to.equal(true);
  });
});

describe('plugin contract: failures and ordering (review findings)', () => {
  useBackend('cpu');

  it('a setup that fails after a plugin swapped the model leaves the model as it was: the retry operates on it once', async () => {
    const received: string[][] = [];
    let fails = 1;
    const surgery = plugin('wrap', {}, ({ hooks }) =>
      hooks.setup.tap('wrap', (ctx) => {
        received.push(ctx.model.segments.map((s) => s.name));
        ctx.replaceModel({ ...ctx.model, segments: ctx.model.segments.map((s) => ({ ...s, name: `${s.name}+w` })) });
      }),
    );
    const flaky = plugin('flaky', {}, ({ hooks }) =>
      hooks.planMemory.tap('flaky', (p) => {
        if (fails-- > 0) throw new Error('transient');
        return p;
      }),
    );
    const t = tinyTrainer({ plugins: [surgery, flaky] });
    const data = blobs(16);
    await t.fit(data, { epochs: 1, batchSize: 8 }).then(
      () => expect.fail('the first setup should fail'),
      (e: Error) => expect(e.message).to.match(/plugin 'flaky' failed in hook 'planMemory': transient/),
    );
    await t.fit(data, { epochs: 1, batchSize: 8 });
    expect(received[1]).to.deep.equal(received[0]);
    expect(t.model.segments.every((s) => s.name.endsWith('+w') && !s.name.endsWith('+w+w'))).to.equal(true);
    t.dispose();
    data.dispose();
  });

  it("before/after naming a plugin reach its named taps, and a tap name with ':' can be named", async () => {
    const ran: string[] = [];
    const masker = plugin('grad-mask', {}, ({ hooks }) => hooks.backward.tap({ name: 'mask', stage: Stage.TRANSFORM }, (g) => (ran.push('mask'), g)));
    const clipper = plugin('clipper', {}, ({ hooks }) => hooks.backward.tap({ name: 'clipper', stage: Stage.GUARD, before: 'grad-mask' }, (g) => (ran.push('clipper'), g)));
    const colon = plugin('lora', {}, ({ hooks }) => hooks.backward.tap({ name: 'lora:mask', stage: Stage.GUARD }, (g) => (ran.push('lora:mask'), g)));
    const after = plugin('after-colon', {}, ({ hooks }) => hooks.backward.tap({ name: 'after-colon', stage: Stage.TRANSFORM, after: 'lora:mask' }, (g) => (ran.push('after-colon'), g)));
    const t = tinyTrainer({ plugins: [masker, clipper, colon, after] });
    const data = blobs(8);
    await t.fit(data, { epochs: 1, batchSize: 8 });
    expect(ran).to.deep.equal(['clipper', 'mask', 'lora:mask', 'after-colon']);
    t.dispose();
    data.dispose();
  });

  it("dispose() runs every plugin's dispose and frees the trainer's own even when one throws, naming it", async () => {
    const freed: string[] = [];
    const bad = plugin('bad-dispose', { dispose: () => { throw new Error('already disposed'); } });
    const good = plugin('good', { dispose: () => void freed.push('good') });
    const t = tinyTrainer({ plugins: [bad, good] });
    await t.setup();
    expect(() => t.dispose()).to.throw(TapfitError, /plugin 'bad-dispose' failed in dispose\(\): already disposed/);
    expect(freed).to.deep.equal(['good']);
  });

  it('a saveState that throws is named', async () => {
    const bad = plugin('bad-save', { saveState: () => { throw new Error('no state yet'); }, loadState: () => {} });
    const t = tinyTrainer({ plugins: [bad] });
    await t.setup();
    const err = await t.save(`${os.tmpdir()}/tapfit-bad-save-${process.pid}`).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/plugin 'bad-save' failed in saveState\(\): no state yet/);
    t.dispose();
  });

  it('a decorator applied before a provider replaces the service wraps the replacement too (plugin order does not drop it)', async () => {
    for (const providerFirst of [false, true]) {
      const calls = { decorated: 0, provided: 0 };
      const spy = plugin('backprop-spy', {}, ({ services }) => services.decorate(Tokens.Backprop, (prev) => ({ compute: (r) => (calls.decorated++, prev.compute(r)) })));
      const provider = plugin('my-backprop', { provides: [Tokens.Backprop] }, ({ services }) => {
        const inner = new AutodiffBackprop();
        services.register(Tokens.Backprop, { compute: (r) => (calls.provided++, inner.compute(r)) });
      });
      const t = tinyTrainer({ plugins: providerFirst ? [provider, spy] : [spy, provider] });
      const data = blobs(16);
      await t.fit(data, { epochs: 1, batchSize: 8 });
      expect(calls, `provider ${providerFirst ? 'first' : 'second'}`).to.deep.equal({ decorated: 2, provided: 2 });
      t.dispose();
      data.dispose();
    }
  });

  it('services are fixed once the trainer is set up: a later decorate or register is refused, naming the plugin', async () => {
    const late = plugin('late-smoothing', {}, ({ hooks, services }) => hooks.fitStart.tap('late-smoothing', () => services.decorate(Tokens.Loss, (prev) => prev)));
    const t = tinyTrainer({ plugins: [late] });
    const data = blobs(16);
    const err = await t.fit(data, { epochs: 1, batchSize: 8 }).then(
      () => null,
      (e: TapfitError) => e,
    );
    expect(String((err?.cause as Error | undefined)?.message ?? err?.message)).to.match(/plugin 'late-smoothing' tried to decorate the service 'Loss' after the trainer was set up.*Do it inside plugin\.apply\(\)/);
    t.dispose();
    data.dispose();
  });

  it('what planMemory and stepTransforms taps return is checked at setup, naming the plugin', async () => {
    const cases: [TapfitPlugin, RegExp][] = [
      [plugin('bad-plan', {}, ({ hooks }) => hooks.planMemory.tap('bad-plan', (p) => ({ ...p, segments: p.segments.slice(1) }))), /plugin 'bad-plan' returned a memory plan that lists segments .* where the model has/],
      [plugin('typo-plan', {}, ({ hooks }) => hooks.planMemory.tap('typo-plan', (p) => ({ ...p, segments: p.segments.map((x) => ({ ...x, policy: 'recomput' as never })) }))), /plugin 'typo-plan' returned a memory plan that gives segment '.*' the unknown policy 'recomput'/],
      [plugin('dup-member', {}, ({ hooks }) => hooks.stepTransforms.tap('dup-member', (m) => [...m, m[m.length - 1]])), /plugin 'dup-member' returned chain members with the name '.*' twice from hook 'stepTransforms'/],
    ];
    for (const [p, pattern] of cases) {
      const t = tinyTrainer({ plugins: [p] });
      await t.setup().then(
        () => expect.fail(`${p.name} was accepted`),
        (e: Error) => expect(e.message).to.match(pattern),
      );
      t.dispose();
    }
  });
});
