import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { ErrorCodes, FileCheckpointer, sgd, SilentLogger, TapfitError, Trainer, type Manifest, type PluginState, type TapfitPlugin, type TrainerOptions } from '../src';
import { checkManifest, tensorLabels } from '../src/checkpoint/manifest';
import { TensorReader } from '../src/checkpoint/tensor-file';
import { restoreCheckpoint, type TrainerParts } from '../src/train/snapshot';
import { blobs, counter, tinyMlp, tmpDir, useBackend, rejected as errorOf } from './fixtures';

const values = (t: tf.Tensor) => Array.from(t.dataSync());

/** Saves state; at resume refuses it in `loadState` or `checkState` (or accepts it with 'none'). */
function refusing(how: 'loadState' | 'checkState' | 'none'): TapfitPlugin {
  return {
    name: 'refusing',
    core: '^0.1.0',
    apply() {},
    saveState: (): PluginState => ({ json: { version: 1 } }),
    checkState() {
      if (how === 'checkState') throw new TapfitError(ErrorCodes.CHECKPOINT, "refusing: saved with version 1 but this is version 2; resume with version 1.");
    },
    loadState() {
      if (how === 'loadState') throw new Error('the queue is full');
    },
  };
}

describe('a failed resume changes nothing', () => {
  useBackend('cpu');

  /** A checkpoint trained with Adam and plugins counter + refusing. */
  async function checkpoint(): Promise<{ dir: string; manifestFile: string; binFile: string; manifest: Manifest }> {
    const dir = tmpDir();
    const data = blobs(16);
    const t = new Trainer({ model: tinyMlp(5), loss: 'softmaxCrossEntropy', optimizer: tf.train.adam(0.01), logger: new SilentLogger(), plugins: [counter(), refusing('none')] });
    await t.fit(data, { epochs: 1, batchSize: 8 });
    await t.save(dir);
    t.dispose();
    data.dispose();
    const manifestFile = path.join(dir, 'step-2', 'manifest.json');
    return { dir, manifestFile, binFile: path.join(dir, 'step-2', 'tensors.bin'), manifest: JSON.parse(fs.readFileSync(manifestFile, 'utf8')) };
  }

  /** What a failed resume must leave alone: a model, an Adam and a counter that already trained (own state). */
  async function own() {
    const model = tinyMlp(6);
    const adam = tf.train.adam(0.02);
    const count = counter();
    const data = blobs(24, 3);
    const t = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: adam, logger: new SilentLogger(), plugins: [count] });
    await t.fit(data, { epochs: 1, batchSize: 8 });
    t.dispose(); // a plugin instance serves one live trainer; the model, the Adam and the counter's state stay the caller's
    data.dispose();
    return { model, adam, count };
  }
  async function stateOf({ model, adam, count }: Awaited<ReturnType<typeof own>>) {
    const weights = await adam.getWeights();
    const state = {
      model: model.getWeights().map(values),
      adam: weights.map((w) => [w.name, values(w.tensor)]),
      adamOwn: Object.entries(adam)
        .filter(([, v]) => v instanceof tf.Variable)
        .map(([k, v]) => [k, values(v as tf.Variable)]),
      counter: [count.seen, count.sum && values(count.sum)],
    };
    tf.dispose(weights.filter((w) => w.name === 'iter').map((w) => w.tensor));
    return state;
  }
  const resumeWith = (o: Awaited<ReturnType<typeof own>>, plugin: TapfitPlugin): TrainerOptions => ({
    model: o.model,
    loss: 'softmaxCrossEntropy',
    optimizer: o.adam,
    logger: new SilentLogger(),
    plugins: [o.count, plugin],
  });

  /** Resumes into `o` expecting an error; returns it after checking nothing changed and nothing leaked. */
  async function failingResume(dir: string, plugin: TapfitPlugin): Promise<Error & { code?: string }> {
    const o = await own();
    const before = await stateOf(o);
    expect(before.adam.length).to.be.greaterThan(1);
    expect(before.counter[0]).to.equal(3);
    const tensors = tf.memory().numTensors;
    const err = await errorOf(Trainer.resume(dir, resumeWith(o, plugin)));
    expect(await stateOf(o)).to.deep.equal(before);
    expect(tf.memory().numTensors - tensors, 'tensors leaked').to.equal(0);
    return err;
  }

  it('the checkpoint resumes when nothing is wrong (the control)', async () => {
    const { dir, manifest } = await checkpoint();
    const o = await own();
    const r = await Trainer.resume(dir, resumeWith(o, refusing('none')));
    expect(r.step).to.equal(2);
    expect(o.count.seen).to.equal(2);
    expect((await stateOf(o)).adam).to.have.length((manifest.optimizer as Extract<Manifest['optimizer'], { kind: 'optimizer' }>).weights.length);
    r.dispose();
  });

  it("a plugin whose loadState throws: the variables, the optimizer and the plugins loaded before it are put back", async () => {
    const { dir } = await checkpoint();
    const err = await failingResume(dir, refusing('loadState'));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.match(/plugin 'refusing' refused its saved state in loadState\(\): the queue is full\. Resume with the plugin version and options that wrote the checkpoint/);
  });

  it("a plugin whose checkState refuses: nothing is written", async () => {
    const { dir } = await checkpoint();
    const err = await failingResume(dir, refusing('checkState'));
    expect(err.message).to.match(/refusing: saved with version 1 but this is version 2/);
  });

  // A JavaScript plugin (or a cast) with an async checkState/loadState: nothing awaits it,
  // so its refusal would come after the resume went ahead. The promise is refused at once.
  for (const method of ['checkState', 'loadState'] as const) {
    it(`a plugin whose ${method} is async: refused naming the plugin and the fix, nothing is written, its rejection is handled`, async () => {
      const { dir } = await checkpoint();
      let unhandled = 0;
      const onUnhandled = () => void unhandled++;
      process.on('unhandledRejection', onUnhandled);
      try {
        const later = async (): Promise<void> => {
          await new Promise((r) => setTimeout(r, 5));
          throw new Error('saved with version 1, this is version 2');
        };
        const plugin = { ...refusing('none'), [method]: later } as unknown as TapfitPlugin;
        const err = await failingResume(dir, plugin);
        expect(err.code).to.equal(ErrorCodes.PLUGIN_INVALID);
        expect(err.message).to.contain(`plugin 'refusing': ${method}() returned a promise`);
        expect(err.message).to.contain(`make ${method} synchronous`);
        await new Promise((r) => setTimeout(r, 30)); // the plugin's promise rejects now
        expect(unhandled, 'unhandled rejections').to.equal(0);
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    });
  }

  it('a corrupt tensor (the last one, a plugin tensor): nothing is written', async () => {
    const { dir, binFile } = await checkpoint();
    const bin = fs.readFileSync(binFile);
    bin[bin.length - 2] ^= 0x40;
    fs.writeFileSync(binFile, bin);
    const err = await failingResume(dir, refusing('none'));
    expect(err.message).to.match(/plugin 'counter' state tensor 'sum' in tensors.bin do not match their checksum/);
  });

  it('an optimizer weight of the wrong shape: nothing is written', async () => {
    const { dir, manifestFile, manifest } = await checkpoint();
    const o = manifest.optimizer as Extract<Manifest['optimizer'], { kind: 'optimizer' }>;
    const m = o.weights.find((w) => w.name.endsWith('/m') && manifest.tensors[w.ref.$tensor].shape.length === 2)!;
    manifest.tensors[m.ref.$tensor].shape.reverse(); // [4, 8] -> [8, 4]: same bytes, same checksum
    fs.writeFileSync(manifestFile, JSON.stringify(manifest));
    const err = await failingResume(dir, refusing('none'));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.match(new RegExp(`the Adam optimizer weight '${m.name}' is float32\\[8,4\\] but its variable .* is float32\\[4,8\\]`));
  });

  it('a model variable of the wrong dtype: nothing is written', async () => {
    const { dir, manifestFile, manifest } = await checkpoint();
    const v = manifest.variables[2];
    manifest.tensors[v.ref.$tensor].dtype = 'int32';
    fs.writeFileSync(manifestFile, JSON.stringify(manifest));
    const err = await failingResume(dir, refusing('none'));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.match(new RegExp(`model variable 2 \\('${v.name}'\\) was saved as int32 but this model's .* is float32`));
  });

  it('a trainer whose restore failed (step-transform chain) trains on exactly like its twin that never tried', async () => {
    const dir = tmpDir();
    const options = (plugin: TapfitPlugin, seed: number): TrainerOptions => ({
      model: tinyMlp(seed),
      loss: 'softmaxCrossEntropy',
      optimizer: sgd({ lr: 0.05, momentum: 0.9 }),
      logger: new SilentLogger(),
      plugins: [counter(), plugin],
    });
    const data = blobs(16);
    const saved = new Trainer(options(refusing('none'), 5));
    await saved.fit(data, { epochs: 1, batchSize: 8 });
    await saved.save(dir);
    saved.dispose();

    const [tried, twin] = [new Trainer(options(refusing('loadState'), 6)), new Trainer(options(refusing('loadState'), 6))];
    for (const t of [tried, twin]) await t.fit(data, { epochs: 1, batchSize: 8 });
    const { manifest, tensors } = await new FileCheckpointer().load(dir);
    const m = checkManifest(manifest, 'test');
    const parts = (tried as unknown as { parts(): TrainerParts }).parts();
    const err = await errorOf(restoreCheckpoint(m, new TensorReader(m.tensors, tensors, 'test', tensorLabels(m)), parts, 'test'));
    expect(err.message).to.match(/refused its saved state in loadState/);

    for (const t of [tried, twin]) await t.fit(data, { epochs: 2, batchSize: 8 });
    const stateOf = (t: Trainer) => ({
      variables: Object.values(t.variables).map(values),
      optimizer: Object.values(t.optimizerState!.momentum.velocity as Record<string, tf.Tensor>).map(values),
      counter: [(t.plugins[0] as ReturnType<typeof counter>).seen, values((t.plugins[0] as ReturnType<typeof counter>).sum!)],
    });
    expect(stateOf(tried)).to.deep.equal(stateOf(twin));
    for (const t of [tried, twin]) t.dispose();
    data.dispose();
  });
});
