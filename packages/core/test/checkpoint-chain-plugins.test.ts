import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import {
  clipByGlobalNorm,
  ErrorCodes,
  insertTransform,
  momentum,
  replaceTransform,
  sgd,
  Trainer,
  type Manifest,
  type StepTransform,
  type TapfitPlugin,
  type TrainerOptions,
  type TransformState,
} from '../src';
import { noopPlugin } from '../src/testing';
import { blobs, tinyMlp, tmpDir, useBackend, rejected as errorOf } from './fixtures';

type ChainManifest = Extract<Manifest['optimizer'], { kind: 'chain' }>;

/** momentum with one more state entry (as Adaptive Braking's 'momentum' holds `scale`). */
function countingMomentum(): StepTransform {
  const inner = momentum({ momentum: 0.5 }) as unknown as StepTransform;
  return {
    name: 'momentum',
    hyperparams: inner.hyperparams,
    init: (params) => ({ ...inner.init(params), calls: 0 }),
    update(updates, state, params, ctx) {
      const { calls, ...rest } = state;
      const [out, next] = inner.update(updates, rest as TransformState, params, ctx);
      return [out, { ...next, calls: (calls as number) + 1 }];
    },
  };
}

/**
 * Replaces the chain's 'momentum' keeping the name, as Adaptive Braking does, with a member
 * of another state layout ('other') or of the same one ('same'); 'off' leaves it (an option
 * that turns the replacement off). It saves no state of its own.
 */
function replacing(layout: 'other' | 'same' | 'off' = 'other', name = 'reweigh'): TapfitPlugin {
  return {
    name,
    core: '^0.1.0',
    apply({ hooks }) {
      hooks.stepTransforms.tap(name, (members) =>
        layout === 'off' ? members : replaceTransform(members, 'momentum', layout === 'same' ? momentum({ momentum: 0.5 }) : countingMomentum()),
      );
    },
  };
}

/** Adds a member of its own (a clip before 'lr'). */
function adding(): TapfitPlugin {
  return {
    name: 'clipper',
    core: '^0.1.0',
    apply({ hooks }) {
      hooks.stepTransforms.tap('clipper', (members) => insertTransform(members, clipByGlobalNorm(1, { name: 'clip' }), { before: 'lr' }));
    },
  };
}

describe('resuming with a plugin that supplied an update-chain member added or removed', () => {
  useBackend('cpu');
  const warnings: string[] = [];
  const options = (plugins: TapfitPlugin[]): TrainerOptions => ({
    model: tinyMlp(5),
    loss: 'softmaxCrossEntropy',
    optimizer: sgd({ lr: 0.05, momentum: 0.9 }),
    logger: { info() {}, warn: (m) => warnings.push(m) },
    plugins,
  });
  const weights = (t: Trainer) => Object.values(t.variables).map((v) => Array.from(v.dataSync()));

  async function saved(plugins: TapfitPlugin[]): Promise<{ dir: string; manifestFile: string; manifest: Manifest; expected: number[][] }> {
    const dir = tmpDir();
    const data = blobs(16);
    const t = new Trainer(options(plugins));
    await t.fit(data, { epochs: 1, batchSize: 8 });
    await t.save(dir);
    const expected = weights(t);
    t.dispose();
    data.dispose();
    warnings.length = 0;
    const manifestFile = path.join(dir, 'step-2', 'manifest.json');
    return { dir, manifestFile, manifest: JSON.parse(fs.readFileSync(manifestFile, 'utf8')), expected };
  }

  it('the manifest records which plugin supplied each member (the optimizer\'s own and pass-through taps are not listed)', async () => {
    const { manifest } = await saved([noopPlugin(), replacing(), adding()]);
    expect((manifest.optimizer as ChainManifest).suppliedBy).to.deep.equal({ momentum: ['reweigh'], clip: ['clipper'] });
    const plain = await saved([noopPlugin()]);
    expect((plain.manifest.optimizer as ChainManifest).suppliedBy).to.deep.equal({});
  });

  it('resumes with the same plugins (the control)', async () => {
    const { dir, expected } = await saved([replacing()]);
    const r = await Trainer.resume(dir, options([replacing()]));
    expect(r.step).to.equal(2);
    expect(weights(r)).to.deep.equal(expected);
    expect(warnings).to.deep.equal([]);
    r.dispose();
  });

  it('removed: refused naming the plugin and the member, without a "saved no state" warning', async () => {
    const { dir } = await saved([replacing()]);
    const err = await errorOf(Trainer.resume(dir, options([])));
    expect(err.code).to.equal(ErrorCodes.CHECKPOINT);
    expect(err.message).to.match(
      /chain member 'momentum' was supplied by plugin 'reweigh' when saved but is the optimizer's own now.*Resume with the plugins the run was saved with \(add 'reweigh'\), or start a fresh run/,
    );
    expect(warnings.join('\n')).not.to.match(/saved no state/);
  });

  it('a tap that replaces the member in place (members[i] = x; return members) is recorded too: removed, refused', async () => {
    const inPlace: TapfitPlugin = {
      name: 'in-place',
      core: '^0.1.0',
      apply({ hooks }) {
        hooks.stepTransforms.tap('in-place', (members) => {
          const list = members as StepTransform[];
          list[list.findIndex((m) => m.name === 'momentum')] = momentum({ momentum: 0.5 }) as unknown as StepTransform;
          return list;
        });
      },
    };
    const { dir, manifest } = await saved([inPlace]);
    expect((manifest.optimizer as ChainManifest).suppliedBy).to.deep.equal({ momentum: ['in-place'] });
    const err = await errorOf(Trainer.resume(dir, options([])));
    expect(err.message).to.match(/chain member 'momentum' was supplied by plugin 'in-place' when saved/);
  });

  for (const layout of ['other', 'same'] as const) {
    it(`added (a replacement of ${layout === 'same' ? 'the same' : 'another'} state layout): refused naming the plugin and the member`, async () => {
      const { dir } = await saved([]);
      const err = await errorOf(Trainer.resume(dir, options([replacing(layout)])));
      expect(err.code).to.equal(ErrorCodes.CHECKPOINT);
      expect(err.message).to.match(
        /chain member 'momentum' was the optimizer's own when saved but is supplied by plugin 'reweigh' now.*Resume with the plugins the run was saved with \(remove 'reweigh'\), or start a fresh run/,
      );
    });
  }

  it('another plugin replacing the member in its place: refused naming both', async () => {
    const { dir } = await saved([replacing('other', 'reweigh')]);
    const err = await errorOf(Trainer.resume(dir, options([replacing('other', 'rescale')])));
    expect(err.message).to.match(/chain member 'momentum' was supplied by plugin 'reweigh' when saved but is supplied by plugin 'rescale' now.*\(add 'reweigh', remove 'rescale'\)/);
  });

  it('the same plugin with an option that turns its replacement off (or on): refused, saying to use the saved options', async () => {
    const on = await saved([replacing()]);
    expect((await errorOf(Trainer.resume(on.dir, options([replacing('off')])))).message).to.match(
      /chain member 'momentum' was supplied by plugin 'reweigh' when saved but is the optimizer's own now.*\(with the options they were saved with\)/,
    );
    const off = await saved([replacing('off')]);
    expect((await errorOf(Trainer.resume(off.dir, options([replacing('same')])))).message).to.match(/was the optimizer's own when saved but is supplied by plugin 'reweigh' now/);
  });

  it('a plugin that added a member of its own, removed: refused naming it', async () => {
    const { dir } = await saved([adding()]);
    const err = await errorOf(Trainer.resume(dir, options([])));
    expect(err.message).to.match(/chain member 'clip' was supplied by plugin 'clipper' when saved but is not in the chain now.*\(add 'clipper'\)/);
  });

  it('a plugin that saved no state and supplied no member, removed: resumes with the warning', async () => {
    const { dir, expected } = await saved([noopPlugin()]);
    const r = await Trainer.resume(dir, options([]));
    expect(weights(r)).to.deep.equal(expected);
    expect(warnings.join('\n')).to.match(/resuming without plugin\(s\) noop that were registered when saving \(they saved no state\)/);
    r.dispose();
  });

  describe('a checkpoint written before the manifest recorded suppliedBy', () => {
    async function old(plugins: TapfitPlugin[]) {
      const run = await saved(plugins);
      delete (run.manifest.optimizer as ChainManifest).suppliedBy;
      fs.writeFileSync(run.manifestFile, JSON.stringify(run.manifest));
      return run;
    }

    it('still resumes with the same plugins, bit for bit', async () => {
      const { dir, expected } = await old([replacing()]);
      const r = await Trainer.resume(dir, options([replacing()]));
      expect(r.step).to.equal(2);
      expect(weights(r)).to.deep.equal(expected);
      r.dispose();
      const plain = await old([]);
      const p = await Trainer.resume(plain.dir, options([]));
      expect(weights(p)).to.deep.equal(plain.expected);
      p.dispose();
    });

    it('with the plugin removed or added, the layout mismatch names the plugin that may be why', async () => {
      const removed = await old([replacing()]);
      const err = await errorOf(Trainer.resume(removed.dir, options([])));
      expect(err.code).to.equal(ErrorCodes.CHECKPOINT);
      expect(err.message).to.match(/momentum\.calls: unexpected entry.*plugin\(s\) 'reweigh' registered when saving are not registered now\. Resume with the plugins the run was saved with/);
      expect(warnings.join('\n')).not.to.match(/saved no state/);
      const added = await old([]);
      expect((await errorOf(Trainer.resume(added.dir, options([replacing()])))).message).to.match(/chain member 'momentum' is supplied by plugin 'reweigh' now/);
    });
  });

  it('a malformed suppliedBy is refused as corrupt', async () => {
    const { dir, manifestFile, manifest } = await saved([]);
    (manifest.optimizer as ChainManifest).suppliedBy = { momentum: 'reweigh' } as unknown as Record<string, string[]>;
    fs.writeFileSync(manifestFile, JSON.stringify(manifest));
    expect((await errorOf(Trainer.resume(dir, options([])))).message).to.match(/manifest\.json field 'optimizer\.suppliedBy\.momentum' is malformed: .*; the checkpoint is corrupt/);
  });

  it('a failed resume leaks nothing', async () => {
    const { dir } = await saved([replacing()]);
    await errorOf(Trainer.resume(dir, options([]))); // warm-up: tfjs caches a few scalars on first use
    const before = tf.memory().numTensors;
    const o = options([]);
    const made = tf.memory().numTensors;
    await errorOf(Trainer.resume(dir, o));
    expect(tf.memory().numTensors).to.equal(made);
    (o.model as tf.LayersModel).dispose();
    expect(tf.memory().numTensors).to.equal(before);
  });
});
